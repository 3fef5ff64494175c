#!/usr/bin/env bash
# shellcheck source-path=SCRIPTDIR
# End-to-end load: sh_load (librdkafka) against a StreamHouse broker and against librdkafka's
# in-process mock cluster, in the same run, with the same load; prints the ratios. Builds nothing.
#
#   bench/run_load.sh BUILD_DIR [--remote]
#
# BUILD_DIR must hold bench/sh_load and broker/streamhouse (SH_BROKER_BIN overrides the latter).
# 1. Starts `streamhouse broker` on the embedded default (fresh temp data.dir: SQLite metadata,
#    local-directory objects) on a free loopback port.
# 2. Throughput run: SH_LOAD_MESSAGES (default 300000) messages of SH_LOAD_SIZE (default 1024)
#    bytes, acks=all, as fast as the client goes, to a SH_LOAD_PARTITIONS (default 4) partition
#    topic; then consumes them all. Same against the mock.
#    Then SH_LOAD_CONSUME_REPEAT (default 3) more consume-only runs of the same topic, now served
#    from the broker's read cache (read.cache.bytes=SH_LOAD_CACHE_BYTES, default 1 GiB), each
#    with the client's and the broker's CPU time (the machine may be shared: CPU per byte is the
#    steadier number).
# 3. Latency run: SH_LOAD_RATE (default 2000) msgs/s for SH_LOAD_LATENCY_MESSAGES (default 10000)
#    messages, produce only: p50/p99/p99.9 below saturation (at full speed the client's own
#    queue dominates latency).
# --remote: also starts the test services (tests/services/test-services.sh: Swift s3api,
#    PostgreSQL) and runs both runs against a second broker with storage.url=s3://... and
#    metadata.url=postgresql://... (a bucket and a database of its own).
# Extra sh_load arguments for every run: SH_LOAD_ARGS. SH_BENCH_KEEP=1 keeps the work directory.
set -euo pipefail

REMOTE=0
if (($# == 2)) && [[ $2 == --remote ]]; then
  REMOTE=1
elif (($# != 1)); then
  echo "usage: $0 BUILD_DIR [--remote]" >&2
  exit 2
fi
BUILD=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
LOAD=$BUILD/bench/sh_load
BROKER=${SH_BROKER_BIN:-$BUILD/broker/streamhouse}
MESSAGES=${SH_LOAD_MESSAGES:-300000}
SIZE=${SH_LOAD_SIZE:-1024}
PARTITIONS=${SH_LOAD_PARTITIONS:-4}
RATE=${SH_LOAD_RATE:-2000}
LAT_MESSAGES=${SH_LOAD_LATENCY_MESSAGES:-10000}
# The throughput run's data must fit the broker's read cache for the cache-consume runs.
CACHE_BYTES=${SH_LOAD_CACHE_BYTES:-1073741824}
CONSUME_REPEAT=${SH_LOAD_CONSUME_REPEAT:-3}
PY=/usr/bin/python3

for b in "$LOAD" "$BROKER"; do
  [[ -x $b ]] || {
    echo "missing $b (build it: cmake --build $BUILD --target sh_load streamhouse)" >&2
    exit 1
  }
done

WORK=$(mktemp -d -t sh-bench-load.XXXXXX)
BROKER_PID=""
BROKER_LOG=""
PG_DB=""

stop_broker() {
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID" 2>/dev/null || true
    timeout 30 tail --pid="$BROKER_PID" -f /dev/null || kill -KILL "$BROKER_PID" 2>/dev/null || true
    wait "$BROKER_PID" 2>/dev/null || true
  fi
  BROKER_PID=""
}

cleanup() {
  local rc=$?
  set +e
  stop_broker
  if ((rc != 0)) && [[ -n $BROKER_LOG && -f $BROKER_LOG ]]; then
    echo "----- broker log (last 40 lines) -----" >&2
    tail -n 40 "$BROKER_LOG" >&2
  fi
  if [[ -n $PG_DB ]]; then
    timeout 30 psql "$PG_URL" -qAt -c "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1
  fi
  if [[ ${SH_BENCH_KEEP:-0} == 1 ]]; then
    echo "work directory kept: $WORK"
  else
    rm -rf "$WORK"
  fi
  if declare -F sh_services_stop >/dev/null; then
    sh_services_stop
  fi
  exit "$rc"
}
trap cleanup EXIT

free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# start_broker NAME [extra properties...]: sets BOOTSTRAP.
start_broker() {
  local name=$1 port i
  shift
  port=$(free_port)
  local cfg=$WORK/$name.properties
  {
    echo "listeners=PLAINTEXT://127.0.0.1:$port"
    echo "node.id=1"
    echo "data.dir=$WORK/$name-data"
    echo "num.partitions=$PARTITIONS"
    echo "log.level=warn"
    printf '%s\n' "$@"
  } >"$cfg"
  BROKER_LOG=$WORK/$name.log
  timeout -s KILL 1800 "$BROKER" broker --config "$cfg" </dev/null >"$BROKER_LOG" 2>&1 &
  BROKER_PID=$!
  for ((i = 0; i < 300; i++)); do
    port_open "$port" && break
    kill -0 "$BROKER_PID" 2>/dev/null || {
      echo "broker $name exited during start-up" >&2
      exit 1
    }
    sleep 0.1
  done
  port_open "$port" || {
    echo "broker $name not listening after 30 s" >&2
    exit 1
  }
  BOOTSTRAP=127.0.0.1:$port
}

# run_load LABEL OUTFILE sh_load-args...: prints the run and keeps its RESULT line in OUTFILE.
run_load() {
  local label=$1 out=$2
  shift 2
  # shellcheck disable=SC2086
  "$LOAD" --label "$label" "$@" ${SH_LOAD_ARGS:-} | tee "$WORK/$label.out"
  grep '^RESULT ' "$WORK/$label.out" >"$out"
}

field() { sed -n "s/.* $2=\([^ ]*\).*/\1/p" "$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }'; }

compare() {
  local a=$1 b=$2 k
  printf '%-14s %12s %12s %8s\n' "" "$(field "$a" label)" "$(field "$b" label)" ratio
  for k in produce_MBps produce_msgps consume_MBps consume_msgps; do
    printf '%-14s %12s %12s %8s\n' "$k" "$(field "$a" "$k")" "$(field "$b" "$k")" \
      "$(ratio "$(field "$a" "$k")" "$(field "$b" "$k")")"
  done
}
compare_latency() {
  local a=$1 b=$2 k
  printf '%-14s %12s %12s %8s\n' "" "$(field "$a" label)" "$(field "$b" label)" ratio
  for k in p50_ms p99_ms p999_ms; do
    printf '%-14s %12s %12s %8s\n' "$k" "$(field "$a" "$k")" "$(field "$b" "$k")" \
      "$(ratio "$(field "$a" "$k")" "$(field "$b" "$k")")"
  done
}

echo "== $(date -u '+%Y-%m-%d %H:%M:%S UTC'), $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "== $MESSAGES x $SIZE B, $PARTITIONS partitions; latency run $LAT_MESSAGES msgs at $RATE msg/s"

# cache_consume LABEL: SH_LOAD_CONSUME_REPEAT consume-only runs of load-tp against the running
# broker (its data now in the read cache), each with the broker's CPU time from /proc.
cache_consume() {
  local label=$1 r c0 c1 line pid
  # BROKER_PID is timeout(1)'s; the broker is its child.
  pid=$(awk '{print $1}' "/proc/$BROKER_PID/task/$BROKER_PID/children")
  for ((r = 1; r <= CONSUME_REPEAT; r++)); do
    c0=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    line=$("$LOAD" --label "$label" --bootstrap "$BOOTSTRAP" --topic load-tp --messages "$MESSAGES" \
      --consume-only | grep ' consume: ')
    c1=$(awk '{print $14 + $15}' "/proc/$pid/stat")
    echo "$line; broker CPU $(awk -v a="$c0" -v b="$c1" -v t="$(getconf CLK_TCK)" \
      'BEGIN { printf "%.2f", (b - a) / t }') s"
  done | tee "$WORK/$label-cache.out"
}

# --- embedded default broker vs mock ---
start_broker embedded "read.cache.bytes=$CACHE_BYTES"
echo "== streamhouse (embedded: SQLite + local dir) on $BOOTSTRAP"
run_load broker "$WORK/broker.res" --bootstrap "$BOOTSTRAP" --topic load-tp --messages "$MESSAGES" \
  --size "$SIZE" --partitions "$PARTITIONS"
echo "== consume from the read cache ($CONSUME_REPEAT runs; client and broker CPU per run)"
cache_consume broker-cache
run_load broker-lat "$WORK/broker-lat.res" --bootstrap "$BOOTSTRAP" --topic load-lat \
  --messages "$LAT_MESSAGES" --size "$SIZE" --partitions "$PARTITIONS" --rate "$RATE" --no-consume
stop_broker
echo "== librdkafka mock cluster (in-process)"
run_load mock "$WORK/mock.res" --mock --topic load-tp --messages "$MESSAGES" --size "$SIZE" \
  --partitions "$PARTITIONS"
run_load mock-lat "$WORK/mock-lat.res" --mock --topic load-lat --messages "$LAT_MESSAGES" \
  --size "$SIZE" --partitions "$PARTITIONS" --rate "$RATE" --no-consume

# --- PostgreSQL + S3 ---
if ((REMOTE)); then
  export SH_S3_PORT=${SH_S3_PORT:-28080} SH_SWIFT_PORT_BASE=${SH_SWIFT_PORT_BASE:-26200}
  export SH_MOTO_PORT=${SH_MOTO_PORT:-25000} SH_PG_PORT=${SH_PG_PORT:-5533}
  # shellcheck source=../tests/services/test-services.sh
  source "$ROOT/tests/services/test-services.sh"
  trap cleanup EXIT # the services installed their own trap; ours calls sh_services_stop
  suffix=$(basename "$WORK" | tr -dc '[:alnum:]' | tr '[:upper:]' '[:lower:]')
  BUCKET=sh-bench-$suffix
  printf 'machine 127.0.0.1 login %s password %s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" \
    >"$WORK/s3.netrc"
  code=$(curl -s -m 20 -o "$WORK/bucket.out" -w '%{http_code}' -X PUT \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --netrc-file "$WORK/s3.netrc" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$BUCKET" || true)
  [[ $code == 200 ]] || {
    echo "creating bucket $BUCKET: HTTP $code $(cat "$WORK/bucket.out")" >&2
    exit 1
  }
  PG_DB=sh_bench_$suffix
  psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" >/dev/null
  start_broker remote "metadata.url=${PG_URL%/*}/$PG_DB" "storage.url=s3://$BUCKET/load" \
    "s3.endpoint=$S3_ENDPOINT" "s3.region=$S3_REGION" "s3.access.key=$S3_ACCESS_KEY" \
    "s3.secret.key=$S3_SECRET_KEY" "read.cache.bytes=$CACHE_BYTES"
  echo "== streamhouse (PostgreSQL fsync=off + Swift s3api) on $BOOTSTRAP"
  run_load remote "$WORK/remote.res" --bootstrap "$BOOTSTRAP" --topic load-tp \
    --messages "$MESSAGES" --size "$SIZE" --partitions "$PARTITIONS"
  echo "== consume from the read cache, PostgreSQL + S3 broker ($CONSUME_REPEAT runs)"
  cache_consume remote-cache
  run_load remote-lat "$WORK/remote-lat.res" --bootstrap "$BOOTSTRAP" --topic load-lat \
    --messages "$LAT_MESSAGES" --size "$SIZE" --partitions "$PARTITIONS" --rate "$RATE" \
    --no-consume
  stop_broker
fi

echo
echo "== throughput (MB/s and msgs/s; ratio = first / second)"
compare "$WORK/broker.res" "$WORK/mock.res"
echo "== produce latency at $RATE msg/s (ms; ratio = first / second)"
compare_latency "$WORK/broker-lat.res" "$WORK/mock-lat.res"
if ((REMOTE)); then
  echo "== throughput, PostgreSQL+S3 broker vs embedded broker"
  compare "$WORK/remote.res" "$WORK/broker.res"
  echo "== produce latency at $RATE msg/s, PostgreSQL+S3 broker vs mock"
  compare_latency "$WORK/remote-lat.res" "$WORK/mock-lat.res"
fi
echo "== done; load now: $(cut -d' ' -f1-3 /proc/loadavg)"
