// Checks the files parquet_duckdb_gen wrote against its expected.json, reading them with DuckDB:
// DESCRIBE types, every row and value, row group count and sizes, and the column chunk statistics
// (min/max of partition, offset, timestamp per row group; null counts of key/value).
// Usage: node check_record_writer.mjs DIR   (exit 0 when everything matches)
import { readFileSync } from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { query, quote } from './duckdb_json.mjs';

const dir = process.argv[2];
const expected = JSON.parse(readFileSync(`${dir}/expected.json`, 'utf8'));
const instance = await DuckDBInstance.create(':memory:');
const conn = await instance.connect();
await conn.run("SET TimeZone = 'UTC'");

let failures = 0;
function check(cond, what) {
  if (!cond) {
    failures++;
    if (failures <= 30) console.error(`FAIL ${what}`);
  }
}
const eq = (a, b) => JSON.stringify(a) === JSON.stringify(b);
const utf8hex = (s) => (s === null ? null : Buffer.from(s, 'utf8').toString('hex'));

const wantTypes = {
  topic: 'VARCHAR',
  partition: 'INTEGER',
  offset: 'BIGINT',
  timestamp: 'TIMESTAMP WITH TIME ZONE',
  timestamp_type: 'INTEGER',
  key: 'BLOB',
  value: 'BLOB',
  key_utf8: 'VARCHAR',
  value_utf8: 'VARCHAR',
  headers: 'STRUCT("key" VARCHAR, "value" BLOB)[]',
};

for (const file of expected) {
  const path = `${dir}/${file.file}`;
  const f = quote(path);
  const tag = file.file;
  const describe = await query(conn, `DESCRIBE SELECT * FROM read_parquet(${f})`);
  check(
    eq(describe.map((d) => [d.column_name, d.column_type]), Object.entries(wantTypes)),
    `${tag}: DESCRIBE ${JSON.stringify(describe.map((d) => [d.column_name, d.column_type]))}`,
  );

  // Rows in file order (DuckDB keeps insertion order for a single file).
  const rows = await query(conn, `SELECT * FROM read_parquet(${f})`);
  check(rows.length === file.rows.length, `${tag}: ${rows.length} rows, expected ${file.rows.length}`);
  for (let i = 0; i < Math.min(rows.length, file.rows.length); i++) {
    const got = rows[i];
    const want = file.rows[i];
    const g = {
      topic: utf8hex(got.topic),
      partition: got.partition,
      offset: got.offset,
      timestamp: got.timestamp.epoch_ms,
      timestamp_type: got.timestamp_type,
      key: got.key,
      value: got.value,
      key_utf8: utf8hex(got.key_utf8),
      value_utf8: utf8hex(got.value_utf8),
      headers: got.headers === null ? null : got.headers.map((h) => ({ key: utf8hex(h.key), value: h.value })),
    };
    check(eq(g, want), `${tag} row ${i}: got ${JSON.stringify(g).slice(0, 600)} want ${JSON.stringify(want).slice(0, 600)}`);
  }

  // Row groups: count within the expected bounds, sizes add up, statistics match the rows.
  const meta = await query(
    conn,
    `SELECT row_group_id, row_group_num_rows, path_in_schema, stats_min_value, stats_max_value,
            stats_null_count, compression
       FROM parquet_metadata(${f}) ORDER BY row_group_id, column_id`,
  );
  const groups = new Map();
  for (const m of meta) {
    if (!groups.has(m.row_group_id)) groups.set(m.row_group_id, { rows: Number(m.row_group_num_rows), cols: {} });
    groups.get(m.row_group_id).cols[m.path_in_schema] = m;
  }
  check(
    groups.size >= file.min_row_groups && groups.size <= file.max_row_groups,
    `${tag}: ${groups.size} row groups, expected ${file.min_row_groups}..${file.max_row_groups}`,
  );
  let start = 0;
  for (const [id, g] of groups) {
    const slice = file.rows.slice(start, start + g.rows);
    start += g.rows;
    const minmax = (k) => {
      const v = slice.map((r) => BigInt(r[k]));
      return [v.reduce((a, b) => (b < a ? b : a)), v.reduce((a, b) => (b > a ? b : a))];
    };
    for (const k of ['partition', 'offset']) {
      const [mn, mx] = minmax(k);
      const c = g.cols[k];
      check(
        c && c.stats_min_value === mn.toString() && c.stats_max_value === mx.toString(),
        `${tag} group ${id} ${k}: stats ${c && c.stats_min_value}..${c && c.stats_max_value}, rows ${mn}..${mx}`,
      );
      check(c && c.stats_null_count === '0', `${tag} group ${id} ${k}: null_count ${c && c.stats_null_count}`);
    }
    // Timestamps: DuckDB prints the statistics as TIMESTAMPTZ text; compare as epoch ms.
    const [tmn, tmx] = minmax('timestamp');
    const ts = g.cols.timestamp;
    const back = await query(
      conn,
      `SELECT epoch_ms(${quote(ts.stats_min_value)}::TIMESTAMPTZ) AS mn,
              epoch_ms(${quote(ts.stats_max_value)}::TIMESTAMPTZ) AS mx`,
    );
    check(
      back[0].mn === tmn.toString() && back[0].mx === tmx.toString(),
      `${tag} group ${id} timestamp: stats ${back[0].mn}..${back[0].mx}, rows ${tmn}..${tmx}`,
    );
    const nulls = (k) => slice.filter((r) => r[k] === null).length.toString();
    for (const k of ['key', 'value', 'key_utf8', 'value_utf8']) {
      check(g.cols[k].stats_null_count === nulls(k), `${tag} group ${id} ${k}: null_count ${g.cols[k].stats_null_count}, expected ${nulls(k)}`);
    }
    const topics = slice.map((r) => Buffer.from(r.topic, 'hex'));
    topics.sort(Buffer.compare);
    check(
      utf8hex(g.cols.topic.stats_min_value) === topics[0].toString('hex') &&
        utf8hex(g.cols.topic.stats_max_value) === topics[topics.length - 1].toString('hex'),
      `${tag} group ${id} topic: stats ${g.cols.topic.stats_min_value}..${g.cols.topic.stats_max_value}`,
    );
    for (const [k, c] of Object.entries(g.cols)) {
      check(c.compression === file.compression, `${tag} group ${id} ${k}: compression ${c.compression}, expected ${file.compression}`);
    }
  }
  check(start === file.rows.length, `${tag}: row groups hold ${start} rows, expected ${file.rows.length}`);

  // Pruning works off those statistics: a filtered count is right (and DuckDB skips groups).
  if (file.rows.length > 0) {
    const lo = BigInt(file.rows[Math.floor(file.rows.length / 3)].offset);
    const hi = lo + 30n;
    const want = file.rows.filter((r) => BigInt(r.offset) >= lo && BigInt(r.offset) <= hi).length;
    const got = await query(conn, `SELECT count(*) AS n FROM read_parquet(${f}) WHERE "offset" BETWEEN ${lo} AND ${hi}`);
    check(Number(got[0].n) === want, `${tag}: offset range count ${got[0].n}, expected ${want}`);
  }
  console.log(`${tag}: ${rows.length} rows, ${groups.size} row groups checked`);
}
conn.closeSync();
if (failures > 0) {
  console.error(`${failures} check(s) failed`);
  process.exit(1);
}
console.log('all files match');
