// Reads a Parquet file with DuckDB (npm @duckdb/node-api, an independent reader) and prints one
// JSON object on stdout, so tests in any language can compare what DuckDB sees with what they
// wrote.
//
//   node read_parquet.mjs FILE [--describe] [--rows] [--metadata] [--schema] [--count]
//                              [--sql QUERY]...
//
// With no flag: --describe --rows --metadata. Output keys:
//   describe: [{name, type, nullable}]          DESCRIBE SELECT * FROM read_parquet(FILE)
//   rows:     [{column: value}]                 SELECT * in file order
//   metadata: [{row_group_id, row_group_num_rows, path_in_schema, type, stats_min_value,
//               stats_max_value, stats_null_count, compression, ...}]  parquet_metadata(FILE)
//   schema:   [...]                             parquet_schema(FILE)
//   count:    number of rows
//   sql:      [[{column: value}]]               each --sql QUERY, where $FILE is replaced by the
//                                               quoted file path
// Values: BLOB -> lowercase hex string (exact, unlike DuckDB's escaped text form); BIGINT/HUGEINT
// -> decimal string (exact); timestamps -> {"epoch_ms": "..."} plus "text"; lists -> arrays;
// structs -> objects; NULL -> null. Exit status 1 with a message on stderr when DuckDB fails.
import {
  DuckDBBlobValue,
  DuckDBInstance,
  DuckDBListValue,
  DuckDBMapValue,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
} from '@duckdb/node-api';

function toJson(v) {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint') return v.toString();
  if (typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean') return v;
  if (v instanceof DuckDBBlobValue) return Buffer.from(v.bytes).toString('hex');
  if (v instanceof DuckDBListValue) return v.items.map(toJson);
  if (v instanceof DuckDBStructValue) {
    const o = {};
    for (const [k, x] of Object.entries(v.entries)) o[k] = toJson(x);
    return o;
  }
  if (v instanceof DuckDBMapValue) return v.entries.map((e) => ({ key: toJson(e.key), value: toJson(e.value) }));
  if (v instanceof DuckDBTimestampTZValue || v instanceof DuckDBTimestampValue) {
    // micros since the epoch; our files are millisecond precision.
    return { epoch_ms: (v.micros / 1000n).toString(), text: v.toString() };
  }
  if (v instanceof DuckDBTimestampMillisecondsValue) {
    return { epoch_ms: v.milliseconds.toString(), text: v.toString() };
  }
  if (typeof v.toString === 'function') return v.toString();
  return String(v);
}

async function query(conn, sql) {
  const reader = await conn.runAndReadAll(sql);
  const names = reader.columnNames();
  return reader.getRows().map((row) => {
    const o = {};
    row.forEach((x, i) => {
      o[names[i]] = toJson(x);
    });
    return o;
  });
}

function quote(s) {
  return "'" + s.replaceAll("'", "''") + "'";
}

async function main() {
  const args = process.argv.slice(2);
  if (args.length < 1) {
    console.error('usage: read_parquet.mjs FILE [--describe] [--rows] [--metadata] [--schema] [--count] [--sql Q]...');
    process.exit(2);
  }
  const file = args[0];
  const want = new Set();
  const sqls = [];
  for (let i = 1; i < args.length; i++) {
    if (args[i] === '--sql') sqls.push(args[++i]);
    else want.add(args[i].replace(/^--/, ''));
  }
  if (want.size === 0 && sqls.length === 0) ['describe', 'rows', 'metadata'].forEach((w) => want.add(w));
  const f = quote(file);
  const instance = await DuckDBInstance.create(':memory:');
  const conn = await instance.connect();
  const out = {};
  if (want.has('describe')) {
    const d = await query(conn, `DESCRIBE SELECT * FROM read_parquet(${f})`);
    out.describe = d.map((r) => ({ name: r.column_name, type: r.column_type, nullable: r.null }));
  }
  if (want.has('count')) {
    const c = await query(conn, `SELECT count(*) AS n FROM read_parquet(${f})`);
    out.count = Number(c[0].n);
  }
  if (want.has('rows')) out.rows = await query(conn, `SELECT * FROM read_parquet(${f})`);
  if (want.has('metadata')) {
    out.metadata = await query(
      conn,
      `SELECT * FROM parquet_metadata(${f}) ORDER BY row_group_id, column_id`,
    );
  }
  if (want.has('schema')) out.schema = await query(conn, `SELECT * FROM parquet_schema(${f})`);
  if (want.has('kv')) out.kv = await query(conn, `SELECT * FROM parquet_file_metadata(${f})`);
  if (sqls.length) {
    out.sql = [];
    for (const s of sqls) out.sql.push(await query(conn, s.replaceAll('$FILE', f)));
  }
  conn.closeSync();
  process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch((e) => {
  console.error(`read_parquet: ${e && e.message ? e.message : e}`);
  process.exit(1);
});
