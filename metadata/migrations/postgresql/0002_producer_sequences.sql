-- Version 2: producer sequence state no longer requires a producers row (idempotent producers
-- may have ids allocated before a broker upgrade, or by another cluster for mirrored data), and
-- its key leads with the partition so per-partition cleanup is a range scan. The table was unused
-- before this version, so it is rebuilt empty.
DROP TABLE producer_sequences;
CREATE TABLE producer_sequences (
  topic_key      BIGINT  NOT NULL,
  partition      INTEGER NOT NULL,
  producer_id    BIGINT  NOT NULL,
  first_sequence INTEGER NOT NULL,
  producer_epoch SMALLINT NOT NULL,
  last_sequence  INTEGER NOT NULL,
  base_offset    BIGINT  NOT NULL,
  last_offset    BIGINT  NOT NULL,
  updated_at_ms  BIGINT  NOT NULL,
  PRIMARY KEY (topic_key, partition, producer_id, first_sequence),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
);
-- For expiring the state of producers idle longer than producer.id.expiration.ms.
CREATE INDEX producer_sequences_updated ON producer_sequences (updated_at_ms);
