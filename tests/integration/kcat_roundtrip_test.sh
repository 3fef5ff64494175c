#!/usr/bin/env bash
# End-to-end produce/consume round trip through a real broker with kcat, across a restart.
#
#   kcat_roundtrip_test.sh STREAMHOUSE_BINARY
#   kcat_roundtrip_test.sh --mock SH_MOCK_KAFKA_BINARY   # harness self-check against librdkafka's
#                                                        # mock cluster (no restart: it is in-memory)
#   kcat_roundtrip_test.sh --s3-postgres STREAMHOUSE_BINARY
#       metadata in PostgreSQL and data in S3 (Swift), from tests/services/test-services.sh's
#       PG_URL and S3_*; a bucket and a database of its own. Exits 77 (skipped) without them.
#
# 1. Starts `streamhouse broker --config F` on a free loopback port with a fresh data.dir.
# 2. Creates a 4-partition topic (CreateTopics through kafka-python's admin client; if that fails,
#    the broker's auto-creation with num.partitions=4).
# 3. Produces SH_TEST_MESSAGES (default 10000) keyed records with headers, 4 partitions in
#    parallel, each partition in chunks of one kcat -P each: every codec (none, gzip, snappy, lz4,
#    zstd), empty and NULL keys and values, repeated/empty/NULL headers, a few 60 KB values.
# 4. Consumes everything with kcat -C (CRC checks on) and verifies each record is there exactly
#    once, unaltered (key, value, headers; timestamp within the produce window), with offsets
#    0..n-1 per partition in order.
# 5. SIGTERMs the broker (must exit 0), restarts it on the same data.dir, consumes again with small
#    fetch sizes: identical, timestamps included. Produces 10 more per partition: they must get
#    the next offsets (the high watermark survived), and a last consume sees all of it.
# Any problem fails the test with a report of what differs and the broker's log. Every step is
# time-bound. SH_TEST_KEEP=1 keeps the work directory.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PY=/usr/bin/python3 # Debian's, which has kafka-python; the first python3 on PATH may not
RECORDS="$PY $HERE/roundtrip_records.py"
MESSAGES=${SH_TEST_MESSAGES:-10000}
PARTITIONS=4
CHUNKS=5
POST=10
TOPIC=roundtrip
FORMAT='%p\t%o\t%K\t%k\t%S\t%s\t%T\t%h\n'

MOCK=0
REMOTE=0
case ${1:-} in
  --mock) MOCK=1 && shift ;;
  --s3-postgres) REMOTE=1 && shift ;;
esac
if (($# != 1)); then
  echo "usage: $0 [--mock | --s3-postgres] BINARY" >&2
  exit 2
fi
BIN=$1
SKIP=77 # ctest's SKIP_RETURN_CODE for this test
if ((REMOTE)); then
  for v in S3_ENDPOINT S3_REGION S3_ACCESS_KEY S3_SECRET_KEY PG_URL; do
    if [[ -z ${!v:-} ]]; then
      echo "SKIP: $v is not set (run under tests/services/test-services.sh)"
      exit "$SKIP"
    fi
  done
  command -v psql >/dev/null || {
    echo "FAIL: psql not found (postgresql-client)" >&2
    exit 1
  }
fi
# Checked before anything is created, so these failures are one clear line.
if [[ ! -x $BIN ]]; then
  echo "FAIL: broker binary not found or not executable: $BIN (is the target built?)" >&2
  exit 1
fi
for tool in kcat timeout "$PY"; do
  if ! command -v "$tool" >/dev/null; then
    echo "FAIL: $tool is not installed (tests/services/install-deps.sh installs it)" >&2
    exit 1
  fi
done

WORK=$(mktemp -d -t sh-kcat-roundtrip.XXXXXX)
BROKER_PID=""
PG_DB=""
BROKER_LOGS=()
STARTS=0
BOOTSTRAP=""
T_START=$(date +%s)

log() { printf '[%4ss] %s\n' "$(($(date +%s) - T_START))" "$*"; }

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$? l
  set +e
  if [[ -n $BROKER_PID ]] && kill -0 "$BROKER_PID" 2>/dev/null; then
    kill -TERM "$BROKER_PID"
    timeout 15 tail --pid="$BROKER_PID" -f /dev/null
    kill -KILL "$BROKER_PID" 2>/dev/null
    wait "$BROKER_PID" 2>/dev/null
  fi
  if [[ -n $PG_DB ]]; then
    timeout 30 psql "$PG_URL" -qAt -c "DROP DATABASE IF EXISTS $PG_DB" >/dev/null 2>&1
  fi
  if ((rc != 0)); then
    for l in "${BROKER_LOGS[@]}"; do
      echo "----- broker log $l (last 150 lines) -----"
      tail -n 150 "$l"
    done
    echo "----- end of broker logs; work directory: $WORK -----"
  fi
  if ((rc == 0)) && [[ ${SH_TEST_KEEP:-0} != 1 ]]; then
    rm -rf "$WORK"
  else
    echo "work directory kept: $WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'fail "interrupted"' INT TERM


free_port() {
  "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

PORT=$(free_port)
DATA=$WORK/data
CONFIG=$WORK/broker.properties
cat >"$CONFIG" <<EOF
listeners=PLAINTEXT://127.0.0.1:$PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$PORT
node.id=1
data.dir=$DATA
num.partitions=$PARTITIONS
auto.create.topics.enable=true
EOF

if ((REMOTE)); then
  # A bucket and a database of its own: the services are shared by every test of the run.
  suffix=$(basename "$WORK" | tr -dc 'a-zA-Z0-9' | tr '[:upper:]' '[:lower:]')
  BUCKET=sh-it-$suffix
  printf 'machine 127.0.0.1 login %s password %s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" \
    >"$WORK/s3.netrc"
  code=$(curl -s -m 20 -o "$WORK/bucket.out" -w '%{http_code}' -X PUT \
    --aws-sigv4 "aws:amz:$S3_REGION:s3" --netrc-file "$WORK/s3.netrc" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$BUCKET" || true)
  [[ $code == 200 ]] ||
    fail "creating bucket $BUCKET at $S3_ENDPOINT: HTTP $code $(cat "$WORK/bucket.out")"
  PG_DB=sh_it_$suffix
  timeout 30 psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $PG_DB" \
    >"$WORK/createdb.log" 2>&1 || fail "CREATE DATABASE $PG_DB: $(cat "$WORK/createdb.log")"
  PG_DB_URL=${PG_URL%/*}/$PG_DB
  cat >>"$CONFIG" <<EOF
metadata.url=$PG_DB_URL
storage.url=s3://$BUCKET/roundtrip
s3.endpoint=$S3_ENDPOINT
s3.region=$S3_REGION
s3.access.key=$S3_ACCESS_KEY
s3.secret.key=$S3_SECRET_KEY
EOF
  log "backends: metadata $PG_DB_URL, storage s3://$BUCKET/roundtrip at $S3_ENDPOINT"
fi

# Starts the broker (or the mock) and waits until it accepts connections.
start_broker() {
  STARTS=$((STARTS + 1))
  local l=$WORK/broker-$STARTS.log i
  BROKER_LOGS+=("$l")
  if ((MOCK)); then
    timeout -s KILL 900 "$BIN" >"$WORK/mock.out" 2>"$l" &
    BROKER_PID=$!
    for ((i = 0; i < 100; i++)); do
      BOOTSTRAP=$(head -n 1 "$WORK/mock.out" 2>/dev/null || true)
      [[ -n $BOOTSTRAP ]] && break
      sleep 0.1
    done
    [[ -n $BOOTSTRAP ]] || fail "mock cluster printed no bootstrap address"
    PORT=${BOOTSTRAP##*:}
  else
    # Under timeout: should this script be killed outright, the broker still ends eventually.
    # timeout passes our SIGTERM on and exits with the broker's status.
    timeout -s KILL 900 "$BIN" broker --config "$CONFIG" </dev/null >"$l" 2>&1 &
    BROKER_PID=$!
    BOOTSTRAP=127.0.0.1:$PORT
  fi
  for ((i = 0; i < 300; i++)); do
    port_open "$PORT" && break
    if ! kill -0 "$BROKER_PID" 2>/dev/null; then
      local rc=0
      wait "$BROKER_PID" || rc=$?
      BROKER_PID=""
      fail "broker exited with status $rc during start-up (start #$STARTS)"
    fi
    sleep 0.1
  done
  port_open "$PORT" || fail "broker not listening on $BOOTSTRAP after 30 s (start #$STARTS)"
  log "broker up on $BOOTSTRAP (start #$STARTS, pid $BROKER_PID)"
}

# SIGTERM, then the broker must finish its graceful shutdown and exit 0 within 30 s.
stop_broker() {
  local rc=0
  kill -TERM "$BROKER_PID"
  if ! timeout 30 tail --pid="$BROKER_PID" -f /dev/null; then
    fail "broker did not exit within 30 s of SIGTERM"
  fi
  wait "$BROKER_PID" || rc=$?
  BROKER_PID=""
  ((rc == 0)) || fail "broker exited with status $rc after SIGTERM (want 0)"
  log "broker stopped cleanly"
}

KCAT=(kcat -b "" -m 15 -X socket.timeout.ms=30000)
kcat_() { KCAT[2]=$BOOTSTRAP; timeout -k 5 "$1" "${KCAT[@]}" "${@:2}"; }

create_topic() {
  local out=$WORK/create-topic.log
  if timeout -k 5 60 "$PY" - "$BOOTSTRAP" "$TOPIC" "$PARTITIONS" >"$out" 2>&1 <<'EOF'; then
import sys
from kafka.admin import KafkaAdminClient, NewTopic
admin = KafkaAdminClient(bootstrap_servers=sys.argv[1], request_timeout_ms=30000,
                         client_id="kcat-roundtrip-test")
admin.create_topics([NewTopic(sys.argv[2], int(sys.argv[3]), 1)], timeout_ms=30000)
admin.close()
EOF
    log "topic $TOPIC created with CreateTopics"
  else
    log "CreateTopics through kafka-python failed; relying on auto-creation. Its output:"
    sed 's/^/    /' "$out" | tail -n 5
  fi
  # Metadata for the topic (kcat's producer handle asks with auto-creation allowed) until all
  # partitions have a leader.
  local i n=""
  for ((i = 0; i < 60; i++)); do
    n=$(kcat_ 20 -L -J -t "$TOPIC" 2>"$WORK/metadata.err" | "$PY" -c '
import json, sys
t = [t for t in json.load(sys.stdin)["topics"] if t["topic"] == sys.argv[1]]
ok = t and "error" not in t[0] and all(p.get("leader", -1) >= 0 and "error" not in p
                                        for p in t[0]["partitions"])
print(len(t[0]["partitions"]) if ok else "")' "$TOPIC" 2>>"$WORK/metadata.err" || true)
    [[ -n $n ]] && break
    sleep 0.5
  done
  [[ -n $n ]] || fail "topic $TOPIC has no usable metadata after 30 s: $(tail -n 5 "$WORK/metadata.err")"
  ((n == PARTITIONS)) || fail "topic $TOPIC has $n partitions, want $PARTITIONS"
  log "metadata: $TOPIC has $n partitions, all with a leader"
}

# produce CHUNK... : each partition in parallel, its chunks in order (one kcat -P per chunk).
produce() {
  local p c pids=() failed=0 i
  for ((p = 0; p < PARTITIONS; p++)); do
    (
      for c in "$@"; do
        [[ -f $WORK/gen/in-$p-$c.txt ]] || continue
        mapfile -t flags <"$WORK/gen/flags-$p-$c"
        # acks=all; the broker answers only once the data is durable and committed.
        if ! kcat_ 120 -P -t "$TOPIC" -p "$p" -K: -X request.required.acks=-1 \
          -X message.timeout.ms=60000 "${flags[@]}" <"$WORK/gen/in-$p-$c.txt" \
          2>"$WORK/produce-$p-$c.err"; then
          echo "kcat -P partition $p chunk $c failed (flags: ${flags[*]}):" >&2
          tail -n 20 "$WORK/produce-$p-$c.err" >&2
          exit 1
        fi
        if grep -qiE 'fail|error' "$WORK/produce-$p-$c.err"; then
          echo "kcat -P partition $p chunk $c reported errors:" >&2
          tail -n 20 "$WORK/produce-$p-$c.err" >&2
          exit 1
        fi
      done
    ) &
    pids+=($!)
  done
  for i in "${pids[@]}"; do wait "$i" || failed=1; done
  ((failed == 0)) || fail "producing failed"
}

# consume OUTFILE [kcat options...]: everything from the beginning until the end of each partition.
consume() {
  local out=$1
  shift
  kcat_ 180 -C -t "$TOPIC" -o beginning -e -q -X check.crcs=true -f "$FORMAT" "$@" \
    >"$out" 2>"$out.err" || fail "kcat -C failed (exit $?): $(tail -n 20 "$out.err")"
  log "consumed $(wc -l <"$out") records into $(basename "$out")"
}

verify() {
  # shellcheck disable=SC2086 # RECORDS is "python script"
  timeout -k 5 120 $RECORDS verify --expected "$WORK/gen/expected.tsv" "$@" ||
    fail "consumed records differ from what was produced (see above)"
}

per_partition=$(((MESSAGES + PARTITIONS - 1) / PARTITIONS))
$RECORDS generate --dir "$WORK/gen" --partitions "$PARTITIONS" --per-partition "$per_partition" \
  --chunks "$CHUNKS" --post "$POST"
log "generated $((per_partition * PARTITIONS)) records ($per_partition per partition) + $POST per partition for after the restart"

start_broker
create_topic

chunks=()
for ((c = 0; c < CHUNKS; c++)); do chunks+=("$c"); done
ts0=$(($(date +%s%3N)))
produce "${chunks[@]}"
ts1=$(($(date +%s%3N)))
log "produced $((per_partition * PARTITIONS)) records in $(((ts1 - ts0) / 1000)).$(((ts1 - ts0) % 1000 / 100)) s"

consume "$WORK/consumed-1.tsv"
verify --actual "$WORK/consumed-1.tsv" --ts-window "$ts0" "$ts1"

if ((MOCK)); then
  log "mock: skipping the restart (the mock keeps nothing)"
else
  stop_broker
  start_broker
  # Small fetches: many round trips, and records bigger than the limit must still come back.
  consume "$WORK/consumed-2.tsv" -X fetch.message.max.bytes=4096
  verify --actual "$WORK/consumed-2.tsv" --same-as "$WORK/consumed-1.tsv" --ts-window "$ts0" "$ts1"
fi

# The high watermark must have survived: these get offsets right after the first records.
produce post
ts2=$(($(date +%s%3N)))
consume "$WORK/consumed-3.tsv"
verify --actual "$WORK/consumed-3.tsv" --same-as "$WORK/consumed-1.tsv" --upto-post \
  --ts-window "$ts0" "$ts2"

if ((!MOCK)); then stop_broker; fi
log "PASS"
