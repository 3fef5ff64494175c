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
import { DuckDBInstance } from '@duckdb/node-api';
import { query, quote } from './duckdb_json.mjs';

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
