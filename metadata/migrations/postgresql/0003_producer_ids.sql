-- Version 3: producer ids come from one counter shared by idempotent and transactional producers,
-- so an idempotent producer needs no row of its own; `producers` keeps transactional ids only
-- (its ids are now assigned from the counter, hence no identity column any more).
CREATE TABLE id_counters (
  name  TEXT   NOT NULL PRIMARY KEY,
  value BIGINT NOT NULL
);
INSERT INTO id_counters (name, value) VALUES ('producer_id', 0);
ALTER TABLE producers ALTER COLUMN producer_id DROP IDENTITY;
