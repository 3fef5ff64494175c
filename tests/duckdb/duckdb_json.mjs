// Shared by read_parquet.mjs and the check scripts: DuckDB values as exact JSON.
// BLOB -> lowercase hex; BIGINT -> decimal string; TIMESTAMP(TZ) -> {epoch_ms, text}; lists ->
// arrays; structs -> objects; maps -> [{key, value}]; NULL -> null.
import {
  DuckDBBlobValue,
  DuckDBListValue,
  DuckDBMapValue,
  DuckDBStructValue,
  DuckDBTimestampMillisecondsValue,
  DuckDBTimestampTZValue,
  DuckDBTimestampValue,
} from '@duckdb/node-api';

export function toJson(v) {
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
    // micros since the epoch; floor division so pre-1970 milliseconds come out right.
    const us = v.micros;
    const ms = us >= 0n ? us / 1000n : -((-us + 999n) / 1000n);
    return { epoch_ms: ms.toString(), text: v.toString() };
  }
  if (v instanceof DuckDBTimestampMillisecondsValue) {
    return { epoch_ms: v.milliseconds.toString(), text: v.toString() };
  }
  if (typeof v.toString === 'function') return v.toString();
  return String(v);
}

export async function query(conn, sql) {
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

export function quote(s) {
  return "'" + s.replaceAll("'", "''") + "'";
}
