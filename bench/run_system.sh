#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# Storage and metadata benchmarks against the real backends: local directory + SQLite, and
# Swift s3api + PostgreSQL 15 started by tests/services/test-services.sh. Builds nothing.
#
#   bench/run_system.sh BUILD_DIR        (BUILD_DIR holds bench/storage_bench, bench/metadata_bench)
#
# The test services run PostgreSQL with fsync=off. Because a commit-latency number without
# fsync says little about production, this script also starts a second throwaway PostgreSQL 15
# with durable settings (fsync=on, synchronous_commit=on, full_page_writes=on) and runs the
# metadata benchmark against it too. SH_BENCH_SKIP_DURABLE_PG=1 skips that.
# Service ports default away from the test defaults so a concurrent test run doesn't collide:
# SH_S3_PORT (28080), SH_SWIFT_PORT_BASE (26200), SH_MOTO_PORT (25000), SH_PG_PORT (5533),
# SH_BENCH_PG_DURABLE_PORT (5534). Extra arguments for the binaries: STORAGE_ARGS, METADATA_ARGS.
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 BUILD_DIR" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
for b in storage_bench metadata_bench; do
  [[ -x $BUILD/bench/$b ]] || {
    echo "missing $BUILD/bench/$b (cmake --build $BUILD --target $b)" >&2
    exit 1
  }
done

export SH_S3_PORT=${SH_S3_PORT:-28080}
export SH_SWIFT_PORT_BASE=${SH_SWIFT_PORT_BASE:-26200}
export SH_MOTO_PORT=${SH_MOTO_PORT:-25000}
export SH_PG_PORT=${SH_PG_PORT:-5533}
DURABLE_PORT=${SH_BENCH_PG_DURABLE_PORT:-5534}

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
# shellcheck source=../tests/services/test-services.sh
source "$ROOT/tests/services/test-services.sh"

DURABLE_DIR=""
stop_all() {
  local rc=$?
  if [[ -n $DURABLE_DIR && -f $DURABLE_DIR/data/postmaster.pid ]]; then
    sh_svc_as_pg "$SH_PG_BIN/pg_ctl" -D "$DURABLE_DIR/data" -m fast -w -t 30 stop >/dev/null 2>&1 ||
      true
  fi
  [[ -n $DURABLE_DIR ]] && rm -rf "$DURABLE_DIR"
  sh_services_stop
  exit "$rc"
}
trap stop_all EXIT

echo
echo "== storage_bench (8 MiB objects)"
# shellcheck disable=SC2086
"$BUILD/bench/storage_bench" --threads 4 ${STORAGE_ARGS:-}

echo
echo "== metadata_bench (test services: PostgreSQL fsync=off)"
# shellcheck disable=SC2086
"$BUILD/bench/metadata_bench" ${METADATA_ARGS:-}

if [[ ${SH_BENCH_SKIP_DURABLE_PG:-0} != 1 ]]; then
  DURABLE_DIR=$(mktemp -d -t sh-bench-pg.XXXXXX)
  chmod 755 "$DURABLE_DIR"
  ((EUID == 0)) && chown postgres:postgres "$DURABLE_DIR"
  sh_svc_as_pg "$SH_PG_BIN/initdb" -D "$DURABLE_DIR/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 >"$DURABLE_DIR/initdb.log" 2>&1
  sh_svc_as_pg "$SH_PG_BIN/pg_ctl" -D "$DURABLE_DIR/data" -l "$DURABLE_DIR/server.log" -w -t 60 \
    -o "-p $DURABLE_PORT -k $DURABLE_DIR -c listen_addresses=127.0.0.1 -c fsync=on \
        -c synchronous_commit=on -c full_page_writes=on" start >"$DURABLE_DIR/pg_ctl.log" 2>&1
  "$SH_PG_BIN/createdb" -h 127.0.0.1 -p "$DURABLE_PORT" -U postgres bench >/dev/null
  echo
  echo "== metadata_bench (durable PostgreSQL: fsync=on, synchronous_commit=on)"
  # shellcheck disable=SC2086
  PG_URL="postgresql://postgres@127.0.0.1:$DURABLE_PORT/bench" \
    "$BUILD/bench/metadata_bench" --pg-only ${METADATA_ARGS:-}
fi
