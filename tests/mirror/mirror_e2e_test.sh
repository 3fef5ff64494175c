#!/usr/bin/env bash
# Mirror end to end on the embedded archive (SQLite + local directory):
#  1. fidelity: a 3-partition topic on librdkafka's mock cluster (keys, null keys, empty keys and
#     values, tombstones, headers with duplicates / empty / null values, all codecs) is mirrored,
#     then read back through `streamhouse broker` with kcat and compared, line for line, with
#     what kcat reads from the mock: partitions, offsets, keys, values, headers, timestamps; and
#     with an exact librdkafka dump (null vs empty keys, values, header values; timestamp type).
#  2. kill -9: a bigger topic mirrored in tiny flushes, the mirror SIGKILLed three times at
#     random moments and restarted; the final archive must equal the source (no loss, no
#     duplicate: a duplicate commit would be refused below the high watermark and fail the run).
#     `streamhouse mirror verify` agrees on an identical archive and catches a planted byte flip.
#  3. takeover: a second process with the same mirror.name stands by on the lease and finishes
#     the copy after the first is SIGKILLed, within the lease timeout.
# usage: mirror_e2e_test.sh STREAMHOUSE_BIN MOCK_SOURCE_BIN
set -euo pipefail
SH_BIN=$1
MOCK_BIN=$2
WORK=$(mktemp -d /tmp/sh-mirror-e2e.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -9 "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

FMT='%t %p %o %k|%s|%h|%T\n'

free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_mock() {  # $1 = name, rest = mock args; sets MOCK_BOOT
  local name=$1; shift
  "$MOCK_BIN" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 1 300); do
    if [[ -s "$WORK/$name.out" ]]; then MOCK_BOOT=$(head -1 "$WORK/$name.out"); return; fi
    sleep 0.1
  done
  fail "mock source did not start: $(cat "$WORK/$name.err")"
}

dump() {  # $1 = bootstrap, $2 = topic, $3 = output (kcat's view, and the exact one in .exact)
  kcat -b "$1" -C -t "$2" -o beginning -e -q -Z -f "$FMT" 2> "$3.err" | sort -k2,2n -k3,3n > "$3"
  "$MOCK_BIN" --dump "$1" "$2" 2>> "$3.err" | sort -k1,1n -k2,2n > "$3.exact" ||
    fail "exact dump of $2 at $1 failed: $(cat "$3.err")"
}

write_mirror_config() {  # $1 = dir, $2 = bootstrap, extra lines from stdin
  {
    echo "mirror.name=e2e"
    echo "source.bootstrap.servers=$2"
    echo "topics=mirrored"
    echo "metadata.url=$1/metadata.db"
    echo "storage.url=$1/objects"
    cat
  } > "$1/mirror.properties"
}

mirrored_total() {  # $1 = archive dir
  sqlite3 "$1/metadata.db" \
    "select coalesce(sum(next_source_offset),0) from mirror_checkpoints where mirror_name='e2e'" \
    2>/dev/null || echo 0
}

expected_total() {  # $1 = dump file: sum over partitions of (max offset + 1)
  awk '{ if ($3 + 1 > m[$2]) m[$2] = $3 + 1 } END { s = 0; for (p in m) s += m[p]; print s }' "$1"
}

wait_started() {  # $1 = log, $2 = "starts at" lines expected in it
  for _ in $(seq 1 300); do
    local n
    n=$(grep -c "starts at" "$1" 2>/dev/null || true)
    (( ${n:-0} >= $2 )) && return 0
    sleep 0.05
  done
  fail "mirror did not start: $(tail -3 "$1")"
}

wait_total() {  # $1 = archive dir, $2 = expected, $3 = mirror pid
  for _ in $(seq 1 1200); do
    [[ "$(mirrored_total "$1")" == "$2" ]] && return 0
    kill -0 "$3" 2>/dev/null || fail "mirror exited early: $(tail -5 "$1/mirror.log")"
    sleep 0.1
  done
  fail "mirror did not reach $2 (at $(mirrored_total "$1"))"
}

check_through_broker() {  # $1 = archive dir, $2 = source dump
  local port
  port=$(free_port)
  cat > "$1/broker.properties" <<EOC
listeners=PLAINTEXT://127.0.0.1:$port
metadata.url=$1/metadata.db
storage.url=$1/objects
auto.create.topics.enable=false
EOC
  "$SH_BIN" broker --config "$1/broker.properties" > "$1/broker.log" 2>&1 &
  local bpid=$!
  PIDS+=($bpid)
  for _ in $(seq 1 100); do
    kcat -b "127.0.0.1:$port" -L -t mirrored > /dev/null 2>&1 && break
    sleep 0.1
  done
  dump "127.0.0.1:$port" mirrored "$1/archive.dump"
  kill "$bpid"; wait "$bpid" || true
  [[ -s "$2" ]] || fail "empty source dump"
  if ! diff -q "$2" "$1/archive.dump" > /dev/null; then
    diff "$2" "$1/archive.dump" | head -20 >&2
    fail "archive differs from the source ($(wc -l < "$2") vs $(wc -l < "$1/archive.dump") lines)"
  fi
  if ! diff -q "$2.exact" "$1/archive.dump.exact" > /dev/null; then
    diff "$2.exact" "$1/archive.dump.exact" | head -20 >&2
    fail "archive differs from the source in the exact dump"
  fi
  echo "  $(wc -l < "$2") records identical through the broker (kcat and exact dump)"
}

# ---- 1. fidelity ----
echo "fidelity: mirror a 3-partition topic with every codec"
start_mock mock1 --partitions 3 --rounds 20
A=$WORK/a; mkdir -p "$A"
dump "$MOCK_BOOT" mirrored "$WORK/source1.dump"
grep -q '^mirrored 2 ' "$WORK/source1.dump" || fail "source dump has no partition 2"
write_mirror_config "$A" "$MOCK_BOOT" < /dev/null
"$SH_BIN" mirror --config "$A/mirror.properties" > "$A/mirror.log" 2>&1 &
MPID=$!; PIDS+=($MPID)
wait_total "$A" "$(expected_total "$WORK/source1.dump")" $MPID
kill -TERM $MPID; wait $MPID || fail "mirror exit status $? after SIGTERM"
n_topics=$(sqlite3 "$A/metadata.db" "select count(*) from topics")
[[ "$n_topics" == 1 ]] || fail "expected only the mirrored topic in the archive, got $n_topics"
parts=$(sqlite3 "$A/metadata.db" "select partition_count from topics where name='mirrored'")
[[ "$parts" == 3 ]] || fail "archive topic has $parts partitions"
check_through_broker "$A" "$WORK/source1.dump"
# A restart with nothing new must copy nothing and stay consistent.
"$SH_BIN" mirror --config "$A/mirror.properties" > "$A/mirror2.log" 2>&1 &
MPID=$!; PIDS+=($MPID)
wait_started "$A/mirror2.log" 3
sleep 1
kill -TERM $MPID; wait $MPID || fail "restarted mirror failed: $(tail -3 "$A/mirror2.log")"
check_through_broker "$A" "$WORK/source1.dump"
echo "verify: archive vs source"
"$SH_BIN" mirror verify --config "$A/mirror.properties" > "$A/verify.out" 2> "$A/verify.err" ||
  fail "verify reported a difference on an identical archive: $(cat "$A/verify.out" "$A/verify.err")"
[[ $(grep -c '^OK ' "$A/verify.out") == 3 ]] || fail "verify: $(cat "$A/verify.out")"
"$SH_BIN" mirror verify --config "$A/mirror.properties" --topic mirrored > /dev/null 2>&1 ||
  fail "verify --topic failed"
# Plant a difference: one flipped byte inside the first ingest object's batches.
obj=$(find "$A/objects" -name '*.ing' | sort | head -1)
/usr/bin/python3 - "$obj" <<'EOP'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[100] ^= 0x01
open(p, 'wb').write(bytes(b))
EOP
if "$SH_BIN" mirror verify --config "$A/mirror.properties" > "$A/verify2.out" 2>&1; then
  fail "verify missed a planted difference: $(cat "$A/verify2.out")"
fi
grep -q '^DIFF' "$A/verify2.out" || fail "verify output has no DIFF line: $(cat "$A/verify2.out")"
echo "  verify: identical archive OK, planted byte flip detected"

# ---- 2. kill -9 and restart ----
echo "kill -9: mirror in tiny flushes, SIGKILL three times, restart"
start_mock mock2 --partitions 3 --rounds 2 --bulk 40000
B=$WORK/b; mkdir -p "$B"
dump "$MOCK_BOOT" mirrored "$WORK/source2.dump"
EXPECTED=$(expected_total "$WORK/source2.dump")
printf 'flush.bytes=8192\nflush.ms=10\nlease.timeout.ms=1500\n' | write_mirror_config "$B" "$MOCK_BOOT"
for round in 1 2 3; do
  "$SH_BIN" mirror --config "$B/mirror.properties" >> "$B/mirror.log" 2>&1 &
  MPID=$!; PIDS+=($MPID)
  sleep "$(/usr/bin/python3 -c 'import random; print(round(random.uniform(0.3, 1.5), 2))')"
  kill -9 $MPID; wait $MPID 2>/dev/null || true
  at=$(mirrored_total "$B")
  echo "  killed at $at of $EXPECTED"
done
before=$(grep -c "starts at" "$B/mirror.log" || true)
"$SH_BIN" mirror --config "$B/mirror.properties" >> "$B/mirror.log" 2>&1 &
MPID=$!; PIDS+=($MPID)
wait_started "$B/mirror.log" $(( ${before:-0} + 3 ))
wait_total "$B" "$EXPECTED" $MPID
kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
if grep -qi "conflict\|error" "$B/mirror.log"; then
  grep -i "conflict\|error" "$B/mirror.log" | head -5 >&2
  fail "mirror logged errors"
fi
check_through_broker "$B" "$WORK/source2.dump"
"$SH_BIN" mirror verify --config "$B/mirror.properties" > "$B/verify.out" 2>&1 ||
  fail "verify after kill -9: $(cat "$B/verify.out")"

# ---- 3. a standby process takes over from a dead one within the lease timeout ----
echo "takeover: two mirror processes, the lease holder is SIGKILLed"
start_mock mock3 --partitions 3 --rounds 2 --bulk 40000
C=$WORK/c; mkdir -p "$C"
dump "$MOCK_BOOT" mirrored "$WORK/source3.dump"
EXPECTED=$(expected_total "$WORK/source3.dump")
printf 'flush.bytes=8192\nflush.ms=10\nlease.timeout.ms=2000\n' | write_mirror_config "$C" "$MOCK_BOOT"
"$SH_BIN" mirror --config "$C/mirror.properties" > "$C/mirror-a.log" 2>&1 &
APID=$!; PIDS+=($APID)
wait_started "$C/mirror-a.log" 3
"$SH_BIN" mirror --config "$C/mirror.properties" > "$C/mirror-b.log" 2>&1 &
BPID=$!; PIDS+=($BPID)
for _ in $(seq 1 100); do grep -q "standing by" "$C/mirror-b.log" && break; sleep 0.05; done
grep -q "standing by" "$C/mirror-b.log" || fail "second mirror did not stand by: $(tail -3 "$C/mirror-b.log")"
sleep 0.5
kill -9 $APID; wait $APID 2>/dev/null || true
killed_at=$(date +%s%N)
echo "  holder killed at $(mirrored_total "$C") of $EXPECTED"
wait_started "$C/mirror-b.log" 3
took=$(( ($(date +%s%N) - killed_at) / 1000000 ))
echo "  standby took over after ${took} ms (lease timeout 2000 ms)"
(( took < 6000 )) || fail "takeover took ${took} ms"
wait_total "$C" "$EXPECTED" $BPID
kill -TERM $BPID; wait $BPID || fail "standby mirror exit status after SIGTERM"
check_through_broker "$C" "$WORK/source3.dump"
echo "PASS"
