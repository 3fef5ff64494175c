-- StreamHouse metadata schema, version 1 (PostgreSQL dialect). Same tables, columns and meaning
-- as migrations/sqlite/0001_initial.sql; keep the two in step.
-- Applied by the migration runner inside one transaction, under an advisory lock so that brokers
-- starting together migrate once; the runner records the version in schema_version.
-- Never edit a released migration: add a new numbered file instead.
--
-- Conventions: times are milliseconds since the Unix epoch (BIGINT, suffix _ms); offsets are
-- Kafka offsets (BIGINT); a topic is referenced by its internal topic_key so that a deleted and
-- re-created topic of the same name never mixes with the old one.

CREATE TABLE topics (
  topic_key       BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- internal, never reused
  name            TEXT    NOT NULL,
  topic_id        BYTEA   NOT NULL UNIQUE CHECK (length(topic_id) = 16),  -- Kafka topic id
  partition_count INTEGER NOT NULL CHECK (partition_count >= 1),
  created_at_ms   BIGINT  NOT NULL,
  deleted_at_ms   BIGINT                               -- set when deletion starts (later)
);
-- A name is unique among live topics; deleted ones keep their rows until cleaned up.
CREATE UNIQUE INDEX topics_live_name ON topics (name) WHERE deleted_at_ms IS NULL;

CREATE TABLE topic_configs (
  topic_key BIGINT NOT NULL REFERENCES topics (topic_key) ON DELETE CASCADE,
  name      TEXT   NOT NULL,
  value     TEXT   NOT NULL,
  PRIMARY KEY (topic_key, name)
);

-- One row per partition. Commits lock these rows (SELECT ... FOR UPDATE, in (topic_key,
-- partition) order) to serialize offset assignment per partition across brokers.
CREATE TABLE partitions (
  topic_key        BIGINT  NOT NULL REFERENCES topics (topic_key) ON DELETE CASCADE,
  partition        INTEGER NOT NULL CHECK (partition >= 0),
  log_start_offset BIGINT  NOT NULL DEFAULT 0,
  high_watermark   BIGINT  NOT NULL DEFAULT 0,
  PRIMARY KEY (topic_key, partition),
  CHECK (log_start_offset <= high_watermark)
);

-- Every object in object storage that the index may reference: ingest objects (many partitions)
-- and, later, per-partition segments. state 'deleting': no longer referenced, waiting for the
-- grace period that covers in-flight reads.
CREATE TABLE objects (
  object_key      TEXT   NOT NULL PRIMARY KEY,
  object_size     BIGINT NOT NULL CHECK (object_size >= 0),
  kind            TEXT   NOT NULL DEFAULT 'ingest' CHECK (kind IN ('ingest', 'segment')),
  state           TEXT   NOT NULL DEFAULT 'live' CHECK (state IN ('live', 'deleting')),
  created_at_ms   BIGINT NOT NULL,
  delete_after_ms BIGINT
);
CREATE INDEX objects_deleting ON objects (state, delete_after_ms) WHERE state = 'deleting';

-- The batch index: one row per committed byte range. Ranges of one partition never overlap, so
-- base_offset order is also last_offset order and a lookup by offset is a primary-key range scan.
CREATE TABLE index_entries (
  topic_key     BIGINT  NOT NULL,
  partition     INTEGER NOT NULL,
  base_offset   BIGINT  NOT NULL,
  last_offset   BIGINT  NOT NULL,
  max_timestamp BIGINT  NOT NULL,
  record_count  BIGINT  NOT NULL,                     -- offset count of the range
  object_key    TEXT    NOT NULL REFERENCES objects (object_key),
  byte_offset   BIGINT  NOT NULL CHECK (byte_offset >= 0),
  byte_length   BIGINT  NOT NULL CHECK (byte_length > 0),
  PRIMARY KEY (topic_key, partition, base_offset),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE,
  CHECK (last_offset >= base_offset)
);
-- Finds the rows of an object: commit retries, compaction and garbage collection.
CREATE INDEX index_entries_object ON index_entries (object_key);

-- ---- Tables for later stages (created now so the schema is designed as a whole) ------------

CREATE TABLE consumer_groups (
  group_id      TEXT    NOT NULL PRIMARY KEY,
  protocol_type TEXT    NOT NULL DEFAULT '',
  protocol_name TEXT    NOT NULL DEFAULT '',
  generation_id INTEGER NOT NULL DEFAULT 0,
  leader_id     TEXT    NOT NULL DEFAULT '',
  state         TEXT    NOT NULL DEFAULT 'empty',
  created_at_ms BIGINT  NOT NULL,
  updated_at_ms BIGINT  NOT NULL
);

CREATE TABLE group_offsets (
  group_id         TEXT    NOT NULL REFERENCES consumer_groups (group_id) ON DELETE CASCADE,
  topic_key        BIGINT  NOT NULL,
  partition        INTEGER NOT NULL,
  committed_offset BIGINT  NOT NULL,
  leader_epoch     INTEGER NOT NULL DEFAULT -1,
  metadata         TEXT,
  commit_ts_ms     BIGINT  NOT NULL,
  expire_ts_ms     BIGINT,
  PRIMARY KEY (group_id, topic_key, partition),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
);
CREATE INDEX group_offsets_partition ON group_offsets (topic_key, partition);

CREATE TABLE producers (
  producer_id      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  producer_epoch   INTEGER NOT NULL DEFAULT 0,
  transactional_id TEXT UNIQUE,
  created_at_ms    BIGINT  NOT NULL,
  updated_at_ms    BIGINT  NOT NULL
);

CREATE TABLE producer_sequences (
  producer_id    BIGINT  NOT NULL REFERENCES producers (producer_id) ON DELETE CASCADE,
  topic_key      BIGINT  NOT NULL,
  partition      INTEGER NOT NULL,
  producer_epoch INTEGER NOT NULL,
  first_sequence INTEGER NOT NULL,
  last_sequence  INTEGER NOT NULL,
  base_offset    BIGINT  NOT NULL,
  last_offset    BIGINT  NOT NULL,
  updated_at_ms  BIGINT  NOT NULL,
  PRIMARY KEY (producer_id, topic_key, partition, first_sequence),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
);
CREATE INDEX producer_sequences_partition ON producer_sequences (topic_key, partition);

CREATE TABLE brokers (
  node_id          INTEGER PRIMARY KEY,
  endpoints        TEXT    NOT NULL,
  rack             TEXT,
  incarnation      TEXT    NOT NULL,
  registered_at_ms BIGINT  NOT NULL,
  heartbeat_at_ms  BIGINT  NOT NULL
);

CREATE TABLE leases (
  name           TEXT   NOT NULL PRIMARY KEY,
  owner          TEXT   NOT NULL,
  epoch          BIGINT NOT NULL,
  acquired_at_ms BIGINT NOT NULL,
  expires_at_ms  BIGINT NOT NULL
);

CREATE TABLE mirror_checkpoints (
  mirror_name        TEXT    NOT NULL,
  source_topic       TEXT    NOT NULL,
  source_partition   INTEGER NOT NULL,
  topic_key          BIGINT  NOT NULL,
  partition          INTEGER NOT NULL,
  next_source_offset BIGINT  NOT NULL,
  lease_epoch        BIGINT  NOT NULL DEFAULT 0,
  updated_at_ms      BIGINT  NOT NULL,
  PRIMARY KEY (mirror_name, source_topic, source_partition),
  FOREIGN KEY (topic_key, partition) REFERENCES partitions (topic_key, partition) ON DELETE CASCADE
);
