#!/usr/bin/env bash
# Writes Parquet files with record_writer (parquet_duckdb_gen) and has DuckDB read them back
# (tests/duckdb/check_record_writer.mjs): types, every value, row groups, statistics.
# Usage: duckdb_roundtrip_test.sh GEN_BINARY DUCKDB_DIR. Exits 77 without node or DuckDB.
set -euo pipefail
gen=$1
duckdb_dir=$2
if ! command -v node >/dev/null || [[ ! -d $duckdb_dir/node_modules/@duckdb/node-api ]]; then
  echo "SKIP: node or $duckdb_dir/node_modules/@duckdb/node-api missing (npm ci --prefix $duckdb_dir)"
  exit 77
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$gen" "$work"
node "$duckdb_dir/check_record_writer.mjs" "$work"
