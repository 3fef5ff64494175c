-- Version 3: producer ids come from one counter shared by idempotent and transactional producers,
-- so an idempotent producer needs no row of its own; `producers` keeps transactional ids only.
CREATE TABLE id_counters (
  name  TEXT    NOT NULL PRIMARY KEY,
  value INTEGER NOT NULL
) STRICT, WITHOUT ROWID;
INSERT INTO id_counters (name, value) VALUES ('producer_id', 0);
