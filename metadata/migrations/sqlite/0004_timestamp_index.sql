-- Version 4: timestamp lookups without scans. partitions.max_timestamp is the largest batch
-- timestamp ever committed to the partition (ListOffsets MAX_TIMESTAMP); each index entry's
-- timestamp_watermark is the largest max_timestamp of it and every entry before it, so it never
-- decreases with the offset and "the first entry whose max_timestamp >= T" (ListOffsets by time)
-- is an index seek on (topic_key, partition, timestamp_watermark).
ALTER TABLE partitions ADD COLUMN max_timestamp INTEGER NOT NULL DEFAULT -1;
ALTER TABLE index_entries ADD COLUMN timestamp_watermark INTEGER NOT NULL DEFAULT -1;
UPDATE index_entries SET timestamp_watermark = w.wm FROM (
  SELECT topic_key AS k, partition AS q, base_offset AS b,
         MAX(max_timestamp) OVER (PARTITION BY topic_key, partition ORDER BY base_offset) AS wm
  FROM index_entries) AS w
WHERE index_entries.topic_key = w.k AND index_entries.partition = w.q
  AND index_entries.base_offset = w.b;
UPDATE partitions SET max_timestamp = m.mx FROM (
  SELECT topic_key AS k, partition AS q, MAX(max_timestamp) AS mx FROM index_entries
  GROUP BY topic_key, partition) AS m
WHERE partitions.topic_key = m.k AND partitions.partition = m.q;
CREATE INDEX index_entries_time ON index_entries (topic_key, partition, timestamp_watermark,
  base_offset);
