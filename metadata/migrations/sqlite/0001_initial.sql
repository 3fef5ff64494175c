-- StreamHouse metadata schema, version 1 (SQLite dialect).
-- Applied by the migration runner inside one transaction; the runner records the version in
-- schema_version. Never edit a released migration: add a new numbered file instead.
--
-- Conventions: times are milliseconds since the Unix epoch (INTEGER, suffix _ms); offsets are
-- Kafka offsets (INTEGER); a topic is referenced by its internal integer topic_key so that a
-- deleted and re-created topic of the same name never mixes with the old one.

CREATE TABLE topics (
  topic_key       INTEGER PRIMARY KEY AUTOINCREMENT,  -- internal, never reused
  name            TEXT    NOT NULL,
  topic_id        BLOB    NOT NULL UNIQUE CHECK (length(topic_id) = 16),  -- Kafka topic id
  partition_count INTEGER NOT NULL CHECK (partition_count >= 1),
  created_at_ms   INTEGER NOT NULL,
  deleted_at_ms   INTEGER                            -- set when deletion starts (later)
) STRICT;
-- A name is unique among live topics; deleted ones keep their rows until cleaned up.
CREATE UNIQUE INDEX topics_live_name ON topics (name) WHERE deleted_at_ms IS NULL;

CREATE TABLE topic_configs (
  topic_key INTEGER NOT NULL REFERENCES topics (topic_key) ON DELETE CASCADE,
  name      TEXT    NOT NULL,
  value     TEXT    NOT NULL,
  PRIMARY KEY (topic_key, name)
) STRICT, WITHOUT ROWID;

CREATE TABLE partitions (
  topic_key        INTEGER NOT NULL REFERENCES topics (topic_key) ON DELETE CASCADE,
  partition        INTEGER NOT NULL CHECK (partition >= 0),
  log_start_offset INTEGER NOT NULL DEFAULT 0,
  high_watermark   INTEGER NOT NULL DEFAULT 0,
  PRIMARY KEY (topic_key, partition),
  CHECK (log_start_offset <= high_watermark)
) STRICT, WITHOUT ROWID;

-- Every object in object storage that the index may reference: ingest objects (many partitions)
-- and, later, per-partition segments. state: 'live' | 'deleting' (no longer referenced, waiting
-- for the grace period that covers in-flight reads) .
CREATE TABLE objects (
  object_key    TEXT    NOT NULL PRIMARY KEY,
  object_size   INTEGER NOT NULL CHECK (object_size >= 0),
  kind          TEXT    NOT NULL DEFAULT 'ingest' CHECK (kind IN ('ingest', 'segment')),
  state         TEXT    NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
  created_at_ms INTEGER NOT NULL,
  delete_after_ms INTEGER
) STRICT, WITHOUT ROWID;
CREATE INDEX objects_deleting ON objects (state, delete_after_ms) WHERE state = 'deleting';

-- The batch index: one row per committed byte range. Ranges of one partition never overlap, so
-- base_offset order is also last_offset order and a lookup by offset is a primary-key range scan.
CREATE TABLE index_entries (
  topic_key     INTEGER NOT NULL,
  partition     INTEGER NOT NULL,
  base_offset   INTEGER NOT NULL,
  last_offset   INTEGER NOT NULL,
  max_timestamp INTEGER NOT NULL,
  record_count  INTEGER NOT NULL,                    -- offset count of the range
  object_key    TEXT    NOT NULL REFERENCES objects (object_key),
  byte_offset   INTEGER NOT NULL CHECK (byte_offset >= 0),
  byte_length   INTEGER NOT NULL CHECK (byte_length > 0),
  PRIMARY KEY (topic_key, partition, base_offset),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE,
  CHECK (last_offset >= base_offset)
) STRICT, WITHOUT ROWID;
-- Finds the rows of an object: commit retries, compaction and garbage collection.
CREATE INDEX index_entries_object ON index_entries (object_key);

-- ---- Tables for later stages (created now so the schema is designed as a whole) ------------

-- Consumer groups (classic protocol). The member list lives in the coordinator's memory; what is
-- stored survives a coordinator change.
CREATE TABLE consumer_groups (
  group_id      TEXT    NOT NULL PRIMARY KEY,
  protocol_type TEXT    NOT NULL DEFAULT '',
  protocol_name TEXT    NOT NULL DEFAULT '',
  generation_id INTEGER NOT NULL DEFAULT 0,
  leader_id     TEXT    NOT NULL DEFAULT '',
  state         TEXT    NOT NULL DEFAULT 'empty',
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

CREATE TABLE group_offsets (
  group_id         TEXT    NOT NULL REFERENCES consumer_groups (group_id) ON DELETE CASCADE,
  topic_key        INTEGER NOT NULL,
  partition        INTEGER NOT NULL,
  committed_offset INTEGER NOT NULL,
  leader_epoch     INTEGER NOT NULL DEFAULT -1,
  metadata         TEXT,
  commit_ts_ms     INTEGER NOT NULL,
  expire_ts_ms     INTEGER,
  PRIMARY KEY (group_id, topic_key, partition),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX group_offsets_partition ON group_offsets (topic_key, partition);

-- Producer ids handed out by InitProducerId (idempotent and transactional producers).
CREATE TABLE producers (
  producer_id      INTEGER PRIMARY KEY AUTOINCREMENT,
  producer_epoch   INTEGER NOT NULL DEFAULT 0,
  transactional_id TEXT UNIQUE,
  created_at_ms    INTEGER NOT NULL,
  updated_at_ms    INTEGER NOT NULL
) STRICT;

-- Sequence state per (producer, partition): the last few batches, so that a retried batch is
-- answered with its original offsets (Kafka keeps 5, matching max.in.flight <= 5).
CREATE TABLE producer_sequences (
  producer_id    INTEGER NOT NULL REFERENCES producers (producer_id) ON DELETE CASCADE,
  topic_key      INTEGER NOT NULL,
  partition      INTEGER NOT NULL,
  producer_epoch INTEGER NOT NULL,
  first_sequence INTEGER NOT NULL,
  last_sequence  INTEGER NOT NULL,
  base_offset    INTEGER NOT NULL,
  last_offset    INTEGER NOT NULL,
  updated_at_ms  INTEGER NOT NULL,
  PRIMARY KEY (producer_id, topic_key, partition, first_sequence),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
CREATE INDEX producer_sequences_partition ON producer_sequences (topic_key, partition);

-- Live brokers: registration and heartbeat. endpoints is a JSON array of listeners.
CREATE TABLE brokers (
  node_id          INTEGER PRIMARY KEY,
  endpoints        TEXT    NOT NULL,
  rack             TEXT,
  incarnation      TEXT    NOT NULL,
  registered_at_ms INTEGER NOT NULL,
  heartbeat_at_ms  INTEGER NOT NULL
) STRICT;

-- Leases with epochs: one owner for a group's coordination, a partition's compaction and
-- retention, a mirrored partition's copy task. Every acquisition by a new owner bumps the epoch;
-- writes made under a lease carry its epoch and are refused once the epoch moved on (fencing).
CREATE TABLE leases (
  name           TEXT    NOT NULL PRIMARY KEY,
  owner          TEXT    NOT NULL,
  epoch          INTEGER NOT NULL,
  acquired_at_ms INTEGER NOT NULL,
  expires_at_ms  INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

-- Mirror bridge position per mirrored partition, committed in the same transaction as the data.
CREATE TABLE mirror_checkpoints (
  mirror_name        TEXT    NOT NULL,
  source_topic       TEXT    NOT NULL,
  source_partition   INTEGER NOT NULL,
  topic_key          INTEGER NOT NULL,
  partition          INTEGER NOT NULL,
  next_source_offset INTEGER NOT NULL,
  lease_epoch        INTEGER NOT NULL DEFAULT 0,
  updated_at_ms      INTEGER NOT NULL,
  PRIMARY KEY (mirror_name, source_topic, source_partition),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
) STRICT, WITHOUT ROWID;
