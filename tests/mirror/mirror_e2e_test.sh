#!/usr/bin/env bash
# Mirror end to end, one section per run (each is its own ctest entry, well under a minute):
#   fidelity  a 3-partition topic on librdkafka's mock cluster (keys, null keys, empty keys and
#             values, tombstones, headers with duplicates / empty / null values, all four codecs,
#             and transaction markers that leave offset gaps) is mirrored, then read back through
#             `streamhouse broker` with kcat and an exact librdkafka dump and compared line for
#             line with the source; a restart copies nothing; `mirror verify` agrees, then
#             catches a planted byte flip.
#   kill9     the mirror SIGKILLed three times mid-copy and restarted: the archive equals the
#             source (a duplicate commit would be refused below the high watermark and fail).
#   share     two mirror processes share 6 partitions by leases (disjoint, both progress); one is
#             SIGKILLed and the other takes all within the lease timeout; nothing lost or doubled.
#   groups    group offsets committed on the source are synced 1:1; a kcat consumer on the
#             archive resumes at exactly those offsets; once it commits there, the group is not
#             overwritten by later source commits; a group not matching groups.regex is not synced.
#   metrics   GET /metrics scraped during a run: per-partition lag, age, retention left, totals;
#             the periodic log lines.
#   broker    mirror.config inside `streamhouse broker`: mirrored, served by the same broker, and
#             stopped cleanly with it by SIGTERM.
#   retention a StreamHouse broker (log.retention.ms=3600000) as the source: DescribeConfigs gives
#             the mirror retention.ms, and a caught-up partition reports 3600 s left; its groups
#             are listed (ListConsumerGroups) and the one matching groups.regex is synced.
#   discovery a StreamHouse broker as the source: topics.regex with topics.exclude; a matching topic
#             created and a partition count grown on the source while the mirror runs are
#             followed (topic.discovery.interval.ms), identical through the archive's broker; the
#             source topic's record-describing configs are copied, its retention is not.
# Backends: embedded (SQLite + local directory) or postgres-s3 (PG_URL and S3_* from
# tests/services/test-services.sh; exits 77 = skipped without them).
# usage: mirror_e2e_test.sh STREAMHOUSE_BIN MOCK_SOURCE_BIN SECTION [embedded|postgres-s3]
set -euo pipefail
SH_BIN=$1
MOCK_BIN=$2
SECTION=$3
BACKEND=${4:-embedded}
if [[ $BACKEND == postgres-s3 && ( -z "${PG_URL:-}" || -z "${S3_ENDPOINT:-}" ) ]]; then
  echo "SKIP: PG_URL / S3_ENDPOINT not set (source tests/services/test-services.sh)"
  exit 77
fi
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
PY=/usr/bin/python3

free_port() { $PY -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

start_mock() {  # $1 = name, rest = mock args; sets MOCK_BOOT
  local name=$1; shift
  "$MOCK_BIN" "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" &
  PIDS+=($!)
  for _ in $(seq 1 600); do
    if [[ -s "$WORK/$name.out" ]]; then MOCK_BOOT=$(head -1 "$WORK/$name.out"); return; fi
    sleep 0.1
  done
  fail "mock source did not start: $(cat "$WORK/$name.err")"
}

dump() {  # $1 = bootstrap, $2 = topic, $3 = output (kcat's view, and the exact one in .exact)
  kcat -b "$1" -C -t "$2" -o beginning -e -q -Z -f "$FMT" -X isolation.level=read_committed \
    2> "$3.err" | sort -k2,2n -k3,3n > "$3"
  "$MOCK_BIN" --dump "$1" "$2" 2>> "$3.err" | sort -k1,1n -k2,2n > "$3.exact" ||
    fail "exact dump of $2 at $1 failed: $(cat "$3.err")"
}

high_watermarks() {  # $1 = bootstrap, $2 = topic, $3 = partitions: "p:high" per partition
  $PY - "$1" "$2" "$3" <<'EOP'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'sh-e2e-watermarks'})
print(' '.join(f"{p}:{c.get_watermark_offsets(TopicPartition(sys.argv[2], p), timeout=10)[1]}"
               for p in range(int(sys.argv[3]))))
c.close()
EOP
}

log_ends() {  # $1 = dump file: "p:(last record's offset + 1)" per partition
  awk '{ if ($3 + 1 > m[$2]) m[$2] = $3 + 1 } END { for (p in m) print p ":" m[p] }' "$1" |
    sort -n | tr '\n' ' ' | sed 's/ $//'
}

sum_watermarks() {  # $1 = high_watermarks output
  local s=0 pw
  for pw in $1; do s=$((s + ${pw#*:})); done
  echo "$s"
}

# ---- archive backends ----
ARCHIVE_N=0
BUCKET=""
s3_curl() {  # METHOD PATH [curl args...]
  local m=$1 p=$2; shift 2
  printf 'machine 127.0.0.1 login %s password %s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" > "$WORK/s3.netrc"
  curl -s -m 30 -X "$m" --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" --netrc-file "$WORK/s3.netrc" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$@" "$S3_ENDPOINT/$p"
}
new_archive() {  # $1 = dir: writes $1/archive.properties (metadata.url, storage.url, s3.*)
  mkdir -p "$1"
  ARCHIVE_N=$((ARCHIVE_N + 1))
  if [[ $BACKEND == embedded ]]; then
    printf 'metadata.url=%s\nstorage.url=%s\n' "$1/metadata.db" "$1/objects" > "$1/archive.properties"
    echo "sqlite" > "$1/backend"
    return
  fi
  local suffix
  suffix=$(basename "$WORK" | tr -dc 'a-zA-Z0-9' | tr '[:upper:]' '[:lower:]')
  if [[ -z $BUCKET ]]; then
    BUCKET=sh-mirror-$suffix
    local code
    code=$(s3_curl PUT "$BUCKET" -o "$WORK/bucket.out" -w '%{http_code}' || true)
    [[ $code == 200 ]] || fail "creating bucket $BUCKET: HTTP $code $(cat "$WORK/bucket.out")"
  fi
  local db=sh_mirror_${suffix}_$ARCHIVE_N
  timeout 30 psql "$PG_URL" -qAt -v ON_ERROR_STOP=1 -c "CREATE DATABASE $db" > "$WORK/createdb.log" 2>&1 ||
    fail "CREATE DATABASE $db: $(cat "$WORK/createdb.log")"
  echo "${PG_URL%/*}/$db" > "$1/backend"
  cat > "$1/archive.properties" <<EOC
metadata.url=${PG_URL%/*}/$db
storage.url=s3://$BUCKET/a$ARCHIVE_N
s3.endpoint=$S3_ENDPOINT
s3.region=${S3_REGION:-us-east-1}
s3.access.key=$S3_ACCESS_KEY
s3.secret.key=$S3_SECRET_KEY
EOC
}
sql() {  # $1 = archive dir, $2 = query (one value or rows, '|' separated)
  local b
  b=$(cat "$1/backend")
  if [[ $b == sqlite ]]; then
    sqlite3 "$1/metadata.db" "$2" 2>/dev/null || true
  else
    psql "$b" -qAt -c "$2" 2>/dev/null || true
  fi
}
flip_object_byte() {  # $1 = archive dir: flips one byte inside the first ingest object
  local key
  key=$(sql "$1" "select object_key from objects order by object_key limit 1")
  [[ -n $key ]] || fail "no object to corrupt"
  if [[ $(cat "$1/backend") == sqlite ]]; then
    local obj
    obj=$(find "$1/objects" -name '*.ing' | sort | head -1)
    $PY - "$obj" <<'EOP'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[100] ^= 0x01
open(p, 'wb').write(bytes(b))
EOP
  else
    local prefix
    prefix=$(grep '^storage.url=' "$1/archive.properties" | sed 's#storage.url=s3://##')
    s3_curl GET "$prefix/$key" -o "$1/obj.bin" || fail "GET $key"
    $PY - "$1/obj.bin" <<'EOP'
import sys
p = sys.argv[1]
b = bytearray(open(p, 'rb').read())
b[100] ^= 0x01
open(p, 'wb').write(bytes(b))
EOP
    s3_curl PUT "$prefix/$key" --data-binary "@$1/obj.bin" -o /dev/null || fail "PUT $key"
  fi
}

write_mirror_config() {  # $1 = dir, $2 = bootstrap, extra lines from stdin
  {
    echo "mirror.name=e2e"
    echo "source.bootstrap.servers=$2"
    echo "topics=mirrored"
    cat "$1/archive.properties"
    cat
  } > "$1/mirror.properties"
}

mirrored_total() {  # $1 = archive dir
  local v
  v=$(sql "$1" "select coalesce(sum(next_source_offset),0) from mirror_checkpoints where mirror_name='e2e'")
  echo "${v:-0}"
}

checkpoint_of() {  # $1 = archive dir, $2 = partition
  local v
  v=$(sql "$1" "select next_source_offset from mirror_checkpoints where mirror_name='e2e' and source_partition=$2")
  echo "${v:--1}"
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

wait_total() {  # $1 = archive dir, $2 = expected, $3 = pid to watch, $4 = its log
  for _ in $(seq 1 1200); do
    [[ "$(mirrored_total "$1")" == "$2" ]] && return 0
    kill -0 "$3" 2>/dev/null || fail "mirror exited early: $(tail -5 "${4:-$1/mirror.log}")"
    sleep 0.1
  done
  fail "mirror did not reach $2 (at $(mirrored_total "$1"))"
}

start_broker() {  # $1 = archive dir, $2 = log, extra lines from stdin; sets BROKER_PORT BROKER_PID
  BROKER_PORT=$(free_port)
  {
    echo "listeners=PLAINTEXT://127.0.0.1:$BROKER_PORT"
    cat "$1/archive.properties"
    echo "auto.create.topics.enable=false"
    echo "group.initial.rebalance.delay.ms=0"
    cat
  } > "$1/broker.properties"
  "$SH_BIN" broker --config "$1/broker.properties" > "$2" 2>&1 &
  BROKER_PID=$!
  PIDS+=($BROKER_PID)
  for _ in $(seq 1 100); do
    kcat -b "127.0.0.1:$BROKER_PORT" -L > /dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "broker did not start: $(tail -5 "$2")"
}

start_source_broker() {  # $1 = dir: a StreamHouse broker on SQLite + local dir as the mirror's
  # source (whatever the archive backend), extra config from stdin; sets BROKER_PORT BROKER_PID
  mkdir -p "$1"
  printf 'metadata.url=%s\nstorage.url=%s\n' "$1/metadata.db" "$1/objects" > "$1/archive.properties"
  echo sqlite > "$1/backend"
  start_broker "$1" "$1/broker.log"
}

compare_dumps() {  # $1 = source dump, $2 = archive dump
  [[ -s "$1" ]] || fail "empty source dump"
  if ! diff -q "$1" "$2" > /dev/null; then
    diff "$1" "$2" | head -20 >&2
    fail "archive differs from the source ($(wc -l < "$1") vs $(wc -l < "$2") lines)"
  fi
  if ! diff -q "$1.exact" "$2.exact" > /dev/null; then
    diff "$1.exact" "$2.exact" | head -20 >&2
    fail "archive differs from the source in the exact dump"
  fi
  echo "  $(wc -l < "$1") records identical through the broker (kcat and exact dump)"
}

check_through_broker() {  # $1 = archive dir, $2 = source dump [, $3 = source bootstrap, $4 = partitions]
  start_broker "$1" "$1/broker.log" < /dev/null
  dump "127.0.0.1:$BROKER_PORT" mirrored "$1/archive.dump"
  if [[ -n ${3:-} ]]; then
    # The archive's log ends with its last record, before the source's trailing transaction
    # markers (offsets without records, which no consumer could move past at the end of a log;
    # the next mirrored record starts after them).
    local src arc ends
    src=$(high_watermarks "$3" mirrored "$4")
    arc=$(high_watermarks "127.0.0.1:$BROKER_PORT" mirrored "$4")
    ends=$(log_ends "$2")
    [[ -n $arc && $arc == "$ends" ]] || fail "archive high watermarks $arc, last records + 1 $ends"
    echo "  archive high watermarks at the last records + 1: $arc (source, with markers: $src)"
    # Consumers of every kind reach that end, past offsets without records at the log's end.
    local n here
    n=$(wc -l < "$2")
    here=$(dirname "${BASH_SOURCE[0]}")
    $PY "$here/read_to_end.py" "127.0.0.1:$BROKER_PORT" mirrored "$4" "$n" > "$1/read_to_end.out" 2>&1 ||
      fail "python clients did not read to the end: $(cat "$1/read_to_end.out")"
    sed 's/^/  /' "$1/read_to_end.out"
    local js_modules="$here/../compat/js/node_modules"
    if [[ -d $js_modules/kafkajs ]]; then
      NODE_PATH=$js_modules node "$here/read_to_end.js" "127.0.0.1:$BROKER_PORT" mirrored "$n" \
        > "$1/read_to_end_js.out" 2>&1 ||
        fail "kafkajs did not read to the end: $(cat "$1/read_to_end_js.out")"
      echo "  kafkajs: $(cat "$1/read_to_end_js.out")"
    else
      echo "  kafkajs: not installed (npm ci in tests/compat/js); skipped"
    fi
  fi
  kill "$BROKER_PID"; wait "$BROKER_PID" || true
  compare_dumps "$2" "$1/archive.dump"
}

section_fidelity() {
  echo "fidelity: mirror a 3-partition topic with every codec and transaction-marker gaps"
  start_mock mock1 --partitions 3 --rounds 20 --markers
  local A=$WORK/a
  new_archive "$A"
  dump "$MOCK_BOOT" mirrored "$WORK/source1.dump"
  grep -q '^mirrored 2 ' "$WORK/source1.dump" || fail "source dump has no partition 2"
  # The markers leave gaps: offsets absent from the source's read_committed view.
  local gaps
  gaps=$(awk '{ if (NR > 1 && $2 == pp && $3 != po + 1) g++; pp = $2; po = $3 } END { print g + 0 }' "$WORK/source1.dump")
  (( gaps > 0 )) || fail "the source has no offset gaps to preserve"
  echo "  source: $(wc -l < "$WORK/source1.dump") records, $gaps gaps"
  # The checkpoints reach the source's end, past the trailing transaction markers (offsets
  # without records): a record-count total would stop one short per partition.
  local source_end
  source_end=$(high_watermarks "$MOCK_BOOT" mirrored 3)
  (( $(expected_total "$WORK/source1.dump") < $(sum_watermarks "$source_end") )) ||
    fail "the source has no trailing markers: $source_end"
  # A group that consumed the source to its end, past the trailing markers.
  "$MOCK_BIN" --commit "$MOCK_BOOT" g-end mirrored "$(echo "$source_end" | tr ' ' ',')" ||
    fail "source commit"
  printf 'groups=g-end\ngroup.sync.interval.ms=300\n' | write_mirror_config "$A" "$MOCK_BOOT"
  local MPID; start_mirror "$A" "$A/mirror.log"
  wait_total "$A" "$(sum_watermarks "$source_end")" $MPID
  # Its offsets land at the archive's log end (the offsets between hold no records).
  local want got
  want=$(log_ends "$WORK/source1.dump")
  for _ in $(seq 1 100); do
    got=$(group_offsets "$A" g-end 2>/dev/null || true)
    [[ $got == "$want" ]] && break
    sleep 0.1
  done
  [[ $got == "$want" ]] || fail "g-end synced as [$got], expected the archive's ends [$want]"
  echo "  a group at the source's end ($source_end) synced to the archive's log end [$got]"
  for _ in $(seq 1 60); do grep -q "caught up" "$A/mirror.log" && break; sleep 0.05; done
  grep -q "caught up: 3 partitions" "$A/mirror.log" || fail "no caught-up line: $(tail -3 "$A/mirror.log")"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status $? after SIGTERM"
  local n_topics parts
  n_topics=$(sql "$A" "select count(*) from topics")
  [[ "$n_topics" == 1 ]] || fail "expected only the mirrored topic in the archive, got $n_topics"
  parts=$(sql "$A" "select partition_count from topics where name='mirrored'")
  [[ "$parts" == 3 ]] || fail "archive topic has $parts partitions"
  check_through_broker "$A" "$WORK/source1.dump" "$MOCK_BOOT" 3
  # A restart with nothing new must copy nothing and stay consistent.
  start_mirror "$A" "$A/mirror2.log"
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
  flip_object_byte "$A"
  if "$SH_BIN" mirror verify --config "$A/mirror.properties" > "$A/verify2.out" 2>&1; then
    fail "verify missed a planted difference: $(cat "$A/verify2.out")"
  fi
  grep -q '^DIFF' "$A/verify2.out" || fail "verify output has no DIFF line: $(cat "$A/verify2.out")"
  echo "  verify: identical archive OK, planted byte flip detected"
}

section_kill9() {
  echo "kill -9: mirror in tiny flushes, SIGKILL three times, restart"
  # A live source: records keep coming while the mirror is killed and restarted.
  start_mock mock2 --partitions 3 --rounds 2 --bulk 20000 --trickle-ms 8000
  local B=$WORK/b
  new_archive "$B"
  printf 'flush.bytes=4096\nflush.ms=10\nlease.timeout.ms=1000\n' | write_mirror_config "$B" "$MOCK_BOOT"
  local MPID last=0 now
  for _ in 1 2 3; do
    start_mirror "$B" "$B/mirror.log"
    # A restart waits for the dead process's leases to expire (1 s); once it copies again, it
    # is killed at a random moment shortly after.
    for _ in $(seq 1 200); do
      (( $(mirrored_total "$B") > last )) && break
      kill -0 $MPID 2>/dev/null || fail "mirror exited: $(tail -3 "$B/mirror.log")"
      sleep 0.05
    done
    sleep "$($PY -c 'import random; print(round(random.uniform(0.0, 0.5), 2))')"
    kill -9 $MPID; wait $MPID 2>/dev/null || true
    now=$(mirrored_total "$B")
    echo "  killed at $now mirrored"
    (( now > last )) || fail "no progress before the kill"
    grep -q "trickle done" "$WORK/mock2.out" && fail "the source stopped before the kill"
    last=$now
  done
  wait_trickle mock2
  dump "$MOCK_BOOT" mirrored "$WORK/source2.dump"
  local EXPECTED
  EXPECTED=$(expected_total "$WORK/source2.dump")
  local before
  before=$(grep -c "starts at" "$B/mirror.log" || true)
  start_mirror "$B" "$B/mirror.log"
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
}

owned_now() {  # $1 = log: partitions the process copies now ("starts at" minus "handing over")
  $PY - "$1" <<'EOP'
import re, sys
owned = set()
for line in open(sys.argv[1], errors='replace'):
    m = re.search(r'mirrored-(\d+) starts at', line)
    if m: owned.add(int(m.group(1)))
    m = re.search(r'handing mirrored-(\d+) over', line) or re.search(r'lease of mirrored-(\d+) was taken', line)
    if m: owned.discard(int(m.group(1)))
print(' '.join(str(p) for p in sorted(owned)))
EOP
}

wait_trickle() {  # $1 = mock name: waits for its live production to end
  for _ in $(seq 1 600); do
    grep -q "trickle done" "$WORK/$1.out" && return 0
    sleep 0.1
  done
  fail "the mock's live production did not end"
}

section_share() {
  echo "share: two mirror processes split 6 partitions by leases; one is SIGKILLed"
  # A live source: 12 s of production while the processes share, fail and take over.
  start_mock mock3 --partitions 6 --rounds 2 --bulk 6000 --trickle-ms 12000
  local C=$WORK/c
  new_archive "$C"
  printf 'flush.ms=20\nlease.timeout.ms=2000\n' | write_mirror_config "$C" "$MOCK_BOOT"
  start_mirror "$C" "$C/mirror-a.log"; local APID=$MPID
  wait_started "$C/mirror-a.log" 6
  start_mirror "$C" "$C/mirror-b.log"; local BPID=$MPID
  # B gets a fair share (3 of 6) once A hands partitions over (A renews every 2000/3 ms).
  local a b
  for _ in $(seq 1 100); do
    a=$(owned_now "$C/mirror-a.log"); b=$(owned_now "$C/mirror-b.log")
    [[ $(wc -w <<< "$a") == 3 && $(wc -w <<< "$b") == 3 ]] && break
    sleep 0.1
  done
  echo "  process A copies [$a], process B copies [$b]"
  [[ $(wc -w <<< "$a") == 3 && $(wc -w <<< "$b") == 3 ]] || fail "no fair split: A [$a] B [$b]"
  for p in $a; do [[ " $b " == *" $p "* ]] && fail "partition $p owned by both"; done
  # Both make progress on their own partitions.
  declare -A at
  for p in $a $b; do at[$p]=$(checkpoint_of "$C" "$p"); done
  sleep 1.5
  for p in $a $b; do
    local now
    now=$(checkpoint_of "$C" "$p")
    (( now > ${at[$p]} )) || fail "partition $p made no progress (${at[$p]} -> $now) while shared"
  done
  echo "  all 6 partitions progressed while shared"
  kill -9 $APID; wait $APID 2>/dev/null || true
  local killed_at took
  killed_at=$(date +%s%N)
  echo "  A killed at $(mirrored_total "$C") mirrored"
  for _ in $(seq 1 200); do
    [[ $(wc -w <<< "$(owned_now "$C/mirror-b.log")") == 6 ]] && break
    sleep 0.05
  done
  took=$(( ($(date +%s%N) - killed_at) / 1000000 ))
  [[ $(wc -w <<< "$(owned_now "$C/mirror-b.log")") == 6 ]] || fail "B did not take A's partitions"
  echo "  B took over all 6 partitions ${took} ms after the kill (lease timeout 2000 ms)"
  (( took < 6000 )) || fail "takeover took ${took} ms"
  wait_trickle mock3
  dump "$MOCK_BOOT" mirrored "$WORK/source3.dump"
  wait_total "$C" "$(expected_total "$WORK/source3.dump")" $BPID "$C/mirror-b.log"
  kill -TERM $BPID; wait $BPID || fail "mirror B exit status after SIGTERM"
  if grep -qi "conflict\|error" "$C/mirror-a.log" "$C/mirror-b.log"; then
    grep -i "conflict\|error" "$C/mirror-a.log" "$C/mirror-b.log" | head -5 >&2
    fail "a mirror logged errors"
  fi
  check_through_broker "$C" "$WORK/source3.dump"
  "$SH_BIN" mirror verify --config "$C/mirror.properties" > "$C/verify.out" 2>&1 ||
    fail "verify after the takeover: $(cat "$C/verify.out")"
}

group_offsets() {  # $1 = archive dir, $2 = group: "p:offset ..." sorted by partition
  sql "$1" "select partition, committed_offset from group_offsets where group_id='$2' order by partition" |
    tr '|' ':' | tr '\n' ' ' | sed 's/ $//'
}

section_groups() {
  echo "groups: source group offsets synced 1:1; a consumer on the archive resumes there"
  start_mock mock4 --partitions 3 --rounds 10
  local G=$WORK/g
  new_archive "$G"
  dump "$MOCK_BOOT" mirrored "$WORK/source4.dump"
  "$MOCK_BIN" --commit "$MOCK_BOOT" g-moved mirrored "0:7,1:13,2:21" || fail "source commit"
  "$MOCK_BIN" --commit "$MOCK_BOOT" other-group mirrored "0:3" || fail "source commit"
  printf 'groups=g-moved,other-group\ngroups.regex=g-.*\ngroup.sync.interval.ms=300\n' |
    write_mirror_config "$G" "$MOCK_BOOT"
  local MPID; start_mirror "$G" "$G/mirror.log"
  wait_total "$G" "$(expected_total "$WORK/source4.dump")" $MPID
  local cols got
  cols=$(sql "$G" "select count(*) from group_offsets")
  for _ in $(seq 1 100); do
    got=$(group_offsets "$G" g-moved 2>/dev/null || true)
    [[ $got == "0:7 1:13 2:21" ]] && break
    sleep 0.1
  done
  [[ $got == "0:7 1:13 2:21" ]] || fail "synced offsets are [$got], expected [0:7 1:13 2:21] ($cols rows)"
  [[ -z "$(group_offsets "$G" other-group)" ]] || fail "other-group was synced despite groups.regex"
  echo "  g-moved synced as [$got]; other-group left alone"
  # A consumer of the archive in group g-moved resumes at the synced offsets.
  start_broker "$G" "$G/broker.log" < /dev/null
  timeout 60 kcat -b "127.0.0.1:$BROKER_PORT" -G g-moved mirrored -e -q -f '%p %o\n' \
    -X auto.offset.reset=earliest > "$G/consumed.txt" 2> "$G/kcat.err" || true
  local firsts
  firsts=$(sort -k1,1n -k2,2n "$G/consumed.txt" | awk '!seen[$1]++ { printf "%s:%s ", $1, $2 }' | sed 's/ $//')
  [[ $firsts == "0:7 1:13 2:21" ]] || fail "archive consumer started at [$firsts], not at the synced offsets"
  echo "  kcat on the archive resumed at [$firsts]"
  # It committed on the archive: later source commits must not overwrite the group there.
  local after
  for _ in $(seq 1 50); do
    after=$(group_offsets "$G" g-moved)
    [[ $after != "0:7 1:13 2:21" ]] && break
    sleep 0.1
  done
  [[ $after != "0:7 1:13 2:21" ]] || fail "the archive consumer's commit did not land"
  # While the archive's coordinator holds the group (its lease), the mirror leaves it alone.
  "$MOCK_BIN" --commit "$MOCK_BOOT" g-moved mirrored "0:1,1:1,2:1" || fail "source commit"
  sleep 1.5
  [[ "$(group_offsets "$G" g-moved)" == "$after" ]] ||
    fail "the mirror overwrote a group active on the archive: $(group_offsets "$G" g-moved)"
  grep -q "group g-moved is active on the archive" "$G/mirror.log" ||
    fail "no 'active on the archive' log line: $(grep g-moved "$G/mirror.log" | tail -3)"
  # With the broker gone (its leases released), the archive offsets the mirror did not write
  # still keep the group from being overwritten.
  kill "$BROKER_PID"; wait "$BROKER_PID" || true
  "$MOCK_BIN" --commit "$MOCK_BOOT" g-moved mirrored "0:2,1:2,2:2" || fail "source commit"
  for _ in $(seq 1 50); do
    grep -q "group g-moved has offsets committed on the archive" "$G/mirror.log" && break
    sleep 0.1
  done
  grep -q "group g-moved has offsets committed on the archive" "$G/mirror.log" ||
    fail "the mirror did not notice the group moved: $(grep g-moved "$G/mirror.log" | tail -3)"
  [[ "$(group_offsets "$G" g-moved)" == "$after" ]] ||
    fail "the mirror overwrote a moved group: $(group_offsets "$G" g-moved)"
  echo "  archive commits [$after] kept after newer source commits (group active, then moved)"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
}

section_metrics() {
  echo "metrics: scrape GET /metrics during a run"
  start_mock mock5 --partitions 3 --rounds 2 --bulk 3000 --trickle-ms 8000
  local M=$WORK/m
  new_archive "$M"
  local port
  port=$(free_port)
  printf 'flush.ms=300\nmetrics.listener=127.0.0.1:%s\nmetrics.log.interval.ms=500\nretention.assumed.ms=604800000\n' "$port" |
    write_mirror_config "$M" "$MOCK_BOOT"
  local MPID; start_mirror "$M" "$M/mirror.log"
  wait_started "$M/mirror.log" 3
  # Mid-run (the source is still being written): every per-partition series is there.
  local missing=""
  for _ in $(seq 1 50); do
    sleep 0.1
    curl -s -m 5 "http://127.0.0.1:$port/metrics" > "$M/scrape1.txt" || continue
    missing=""
    for m in streamhouse_mirror_lag_records streamhouse_mirror_lag_bytes \
      streamhouse_mirror_newest_record_age_seconds streamhouse_mirror_retention_left_seconds \
      streamhouse_mirror_records_total streamhouse_mirror_bytes_total; do
      for p in 0 1 2; do
        grep -q "^$m{partition=\"$p\",topic=\"mirrored\"} " "$M/scrape1.txt" || missing="$missing $m/$p"
      done
    done
    [[ -z $missing ]] && break
  done
  [[ -z $missing ]] || fail "missing in the scrape:$missing"
  grep -q "trickle done" "$WORK/mock5.out" && fail "the scrape came after the source stopped"
  grep -q '^# TYPE streamhouse_mirror_records_total counter' "$M/scrape1.txt" || fail "no TYPE line"
  grep -q '^streamhouse_mirror_members 1' "$M/scrape1.txt" || fail "members gauge"
  wait_trickle mock5
  dump "$MOCK_BOOT" mirrored "$WORK/source5.dump"
  wait_total "$M" "$(expected_total "$WORK/source5.dump")" $MPID
  sleep 0.8
  curl -s -m 5 "http://127.0.0.1:$port/metrics" > "$M/scrape2.txt" || fail "scrape failed"
  local total lag
  total=$(awk '/^streamhouse_mirror_records_total\{/ { s += $2 } END { print s }' "$M/scrape2.txt")
  [[ $total == "$(wc -l < "$WORK/source5.dump")" ]] || fail "records_total $total"
  lag=$(awk '/^streamhouse_mirror_lag_records\{/ { s += $2 } END { print s }' "$M/scrape2.txt")
  [[ $lag == 0 ]] || fail "lag $lag after catching up"
  curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/nope" | grep -q 404 || fail "404"
  grep -q "records/s" "$M/mirror.log" || fail "no periodic rate log line"
  grep -q "retention left" "$M/mirror.log" || fail "no per-partition lag log line"
  echo "  scrape mid-run and after: per-partition gauges, records_total $total, lag 0"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
}

section_retention() {
  echo "retention: a StreamHouse broker as the source; retention.ms read with DescribeConfigs"
  local S=$WORK/src R=$WORK/r
  start_source_broker "$S" <<< $'auto.create.topics.enable=true\nnum.partitions=3\nlog.retention.ms=3600000'
  local SRC_BOOT=127.0.0.1:$BROKER_PORT
  for p in 0 1 2; do
    seq 1 50 | sed "s/^/r$p-/" | kcat -b "$SRC_BOOT" -P -t mirrored -p $p -K: 2> /dev/null ||
      fail "produce to the source broker"
  done
  dump "$SRC_BOOT" mirrored "$WORK/source7.dump"
  [[ $(wc -l < "$WORK/source7.dump") == 150 ]] || fail "source has $(wc -l < "$WORK/source7.dump") records"
  # This source can list its groups: groups.regex alone finds g-listed (and not h-other).
  "$MOCK_BIN" --commit "$SRC_BOOT" g-listed mirrored "0:11,1:22,2:33" || fail "source commit"
  "$MOCK_BIN" --commit "$SRC_BOOT" h-other mirrored "0:5" || fail "source commit"
  new_archive "$R"
  local port
  port=$(free_port)
  printf 'metrics.listener=127.0.0.1:%s\ngroups.regex=g-.*\ngroup.sync.interval.ms=300\n' "$port" |
    write_mirror_config "$R" "$SRC_BOOT"
  local MPID; start_mirror "$R" "$R/mirror.log"
  wait_total "$R" 150 $MPID
  for _ in $(seq 1 100); do
    grep -q "source topic mirrored has retention.ms=3600000" "$R/mirror.log" && break
    sleep 0.1
  done
  grep -q "source topic mirrored has retention.ms=3600000" "$R/mirror.log" ||
    fail "retention.ms not read from the source: $(grep -i retention "$R/mirror.log" | tail -2)"
  local left=""
  for _ in $(seq 1 50); do
    curl -s -m 5 "http://127.0.0.1:$port/metrics" > "$R/scrape.txt" || true
    left=$(awk '/^streamhouse_mirror_retention_left_seconds\{partition="1"/ { print $2 }' "$R/scrape.txt")
    [[ $left == 3600 ]] && break
    sleep 0.1
  done
  [[ $left == 3600 ]] || fail "retention left for a caught-up partition is '$left', expected 3600"
  local got=""
  for _ in $(seq 1 100); do
    got=$(group_offsets "$R" g-listed)
    [[ $got == "0:11 1:22 2:33" ]] && break
    sleep 0.1
  done
  [[ $got == "0:11 1:22 2:33" ]] || fail "listed group synced as [$got]"
  [[ -z "$(group_offsets "$R" h-other)" ]] || fail "h-other synced despite groups.regex"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  local SRC_PID=$BROKER_PID
  check_through_broker "$R" "$WORK/source7.dump"
  kill "$SRC_PID"; wait "$SRC_PID" || true
  echo "  mirrored from a StreamHouse broker; retention.ms 3600000 read, retention left 3600 s when"
  echo "  caught up; group g-listed found by ListConsumerGroups and synced as [$got]"
}

section_discovery() {
  echo "discovery: topics.regex / topics.exclude; a new matching topic and partition growth on the source are followed"
  local S=$WORK/src8 D=$WORK/d
  start_source_broker "$S" <<< $'auto.create.topics.enable=true\nnum.partitions=2'
  local SRC_BOOT=127.0.0.1:$BROKER_PORT SRC_PID=$BROKER_PID
  produce_to() {  # topic partition count
    seq 1 "$3" | sed "s/^/$1-$2-/" | kcat -b "$SRC_BOOT" -P -t "$1" -p "$2" 2> /dev/null ||
      fail "produce to $1-$2 on the source broker"
  }
  for p in 0 1; do produce_to disc-a $p 20; produce_to disc-skip $p 5; done
  # Configs set on the source topic: the record-describing ones are copied, retention is not.
  $PY - "$SRC_BOOT" <<'EOP' || fail "AlterConfigs on the source"
import sys
from confluent_kafka.admin import AdminClient, ConfigResource
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
res = ConfigResource("topic", "disc-a", set_config={
    "max.message.bytes": "2000000", "cleanup.policy": "delete", "retention.ms": "3600000"})
admin.alter_configs([res], request_timeout=30)[res].result(30)
EOP
  new_archive "$D"
  {
    echo "mirror.name=e2e"
    echo "source.bootstrap.servers=$SRC_BOOT"
    echo "topics.regex=disc-.*"
    echo "topics.exclude=disc-skip.*"
    echo "topic.discovery.interval.ms=500"
    echo "flush.ms=100"
    cat "$D/archive.properties"
  } > "$D/mirror.properties"
  local MPID; start_mirror "$D" "$D/mirror.log"
  wait_total "$D" 40 $MPID
  # While it runs: a new topic that matches, and disc-a grown from 2 to 4 partitions.
  for p in 0 1; do produce_to disc-b $p 7; done
  $PY - "$SRC_BOOT" <<'EOP' || fail "CreatePartitions on the source"
import sys
from confluent_kafka.admin import AdminClient, NewPartitions
admin = AdminClient({"bootstrap.servers": sys.argv[1]})
admin.create_partitions([NewPartitions("disc-a", 4)], request_timeout=30)["disc-a"].result(30)
EOP
  for _ in $(seq 1 100); do
    kcat -b "$SRC_BOOT" -L -t disc-a 2> /dev/null | grep -q "4 partitions" && break
    sleep 0.1
  done
  for p in 2 3; do produce_to disc-a $p 9; done
  # 40 + 14 (disc-b) + 18 (new partitions of disc-a), within the discovery interval and a flush.
  wait_total "$D" 72 $MPID
  [[ $(sql "$D" "select partition_count from topics where name='disc-a'") == 4 ]] ||
    fail "archive disc-a has $(sql "$D" "select partition_count from topics where name='disc-a'") partitions"
  [[ $(sql "$D" "select partition_count from topics where name='disc-b'") == 2 ]] || fail "disc-b not created in the archive"
  [[ -z $(sql "$D" "select name from topics where name like 'disc-skip%'") ]] || fail "disc-skip mirrored despite topics.exclude"
  local configs=""
  for _ in $(seq 1 100); do
    configs=$(sql "$D" "select c.name || '=' || c.value from topic_configs c join topics t on t.topic_key = c.topic_key where t.name = 'disc-a' order by c.name" | tr '\n' ' ')
    [[ -n $configs ]] && break
    sleep 0.1
  done
  [[ $configs == "cleanup.policy=delete max.message.bytes=2000000 " ]] ||
    fail "archive disc-a configs [$configs], expected cleanup.policy and max.message.bytes only"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  local t
  for t in disc-a disc-b; do
    dump "$SRC_BOOT" $t "$WORK/source8-$t.dump"
  done
  kill "$SRC_PID"; wait "$SRC_PID" || true
  start_broker "$D" "$D/broker.log" < /dev/null
  for t in disc-a disc-b; do
    dump "127.0.0.1:$BROKER_PORT" $t "$D/archive-$t.dump"
    compare_dumps "$WORK/source8-$t.dump" "$D/archive-$t.dump"
  done
  kill "$BROKER_PID"; wait "$BROKER_PID" || true
  echo "  new topic disc-b and disc-a's partitions 2-3 followed; disc-skip excluded; configs [$configs]"
}

start_mirror() {  # $1 = dir (its mirror.properties), $2 = log (appended to); sets MPID
  "$SH_BIN" mirror --config "$1/mirror.properties" >> "$2" 2>&1 &
  MPID=$!
  PIDS+=($MPID)
}

wait_first_commit() {  # $1 = archive dir: waits for partition 0's first checkpoint (FIRST_COMMIT)
  FIRST_COMMIT=-1
  for _ in $(seq 1 200); do
    FIRST_COMMIT=$(checkpoint_of "$1" 0)
    (( FIRST_COMMIT > 0 )) && return 0
    sleep 0.05
  done
  fail "no first commit: $(tail -3 "$1/mirror.log")"
}

stored_objects() {  # $1 = archive dir: the ingest object keys in the archive's storage, sorted
  if [[ $(cat "$1/backend") == sqlite ]]; then
    (cd "$1/objects" && find . -name '*.ing' -printf '%P\n' | sort)
  else
    local prefix
    prefix=$(grep '^storage.url=' "$1/archive.properties" | sed 's#storage.url=s3://##')
    s3_curl GET "${prefix%%/*}?list-type=2&prefix=${prefix#*/}%2F" |
      grep -o '<Key>[^<]*</Key>' | sed -e 's#<Key>[^/]*/##' -e 's#</Key>##' | grep '\.ing$' | sort
  fi
}

section_conflict() {
  echo "conflict: another writer commits a partition under the mirror; it resyncs, deletes its"
  echo "  uncommitted object and goes on from the new checkpoint"
  start_mock mock7 --partitions 1 --rounds 1 --trickle-ms 12000
  local X=$WORK/x
  new_archive "$X"
  printf 'flush.ms=1500\nput.concurrency=1\n' | write_mirror_config "$X" "$MOCK_BOOT"
  local MPID; start_mirror "$X" "$X/mirror.log"
  wait_first_commit "$X"
  local c=$FIRST_COMMIT
  # Right after a commit (the next flush is ~1.5 s away), 3 more offsets appear committed by
  # someone else: the mirror's pending range now starts below the high watermark.
  sql "$X" "update partitions set high_watermark = high_watermark + 3; update mirror_checkpoints set next_source_offset = next_source_offset + 3" > /dev/null
  local planted
  planted=$(checkpoint_of "$X" 0)
  (( planted >= c + 3 )) || fail "planting failed: checkpoint $planted after $c"
  for _ in $(seq 1 100); do
    grep -q "deleted 1 uncommitted object" "$X/mirror.log" && break
    sleep 0.1
  done
  grep -q "re-reading the checkpoints" "$X/mirror.log" ||
    fail "no resync after the conflict: $(tail -5 "$X/mirror.log")"
  grep -q "deleted 1 uncommitted object" "$X/mirror.log" ||
    fail "the conflicting object was not deleted: $(tail -5 "$X/mirror.log")"
  # It goes on from the new checkpoint.
  local now=$planted
  for _ in $(seq 1 100); do
    now=$(checkpoint_of "$X" 0)
    (( now > planted )) && break
    sleep 0.1
  done
  (( now > planted )) || fail "no progress after the resync (checkpoint $now)"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  local stored registered
  stored=$(stored_objects "$X")
  registered=$(sql "$X" "select object_key from objects order by object_key")
  [[ -n $stored && $stored == "$registered" ]] ||
    fail "objects in storage differ from the registered ones: [$stored] vs [$registered]"
  echo "  checkpoint $c -> planted $planted -> $now; $(echo "$stored" | wc -l) objects, all registered"
}

low_watermark() {  # $1 = bootstrap, $2 = topic, $3 = partition
  $PY - "$1" "$2" "$3" <<'EOP'
import sys
from confluent_kafka import Consumer, TopicPartition
c = Consumer({'bootstrap.servers': sys.argv[1], 'group.id': 'sh-e2e-watermarks'})
print(c.get_watermark_offsets(TopicPartition(sys.argv[2], int(sys.argv[3])), timeout=10)[0])
c.close()
EOP
}

section_lost() {
  echo "lost: the source's retention deletes records before they are mirrored; a fresh mirror"
  echo "  starts at the source's log start"
  # 4 KiB values at ~2000 records/s: the mock keeps ~5 MiB, so its log start moves on quickly.
  start_mock mock8 --partitions 1 --rounds 0 --bulk 100 --value-size 4096 --trickle-ms 4000
  local L=$WORK/l
  new_archive "$L"
  write_mirror_config "$L" "$MOCK_BOOT" < /dev/null
  local MPID; start_mirror "$L" "$L/mirror.log"
  wait_first_commit "$L"
  local c=$FIRST_COMMIT
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  c=$(checkpoint_of "$L" 0)
  wait_trickle mock8
  local low
  low=$(low_watermark "$MOCK_BOOT" mirrored 0)
  (( low > c )) || fail "the source still has the checkpoint $c (log start $low)"
  local port
  port=$(free_port)
  echo "metrics.listener=127.0.0.1:$port" >> "$L/mirror.properties"
  start_mirror "$L" "$L/mirror2.log"
  local end
  end=$(sum_watermarks "$(high_watermarks "$MOCK_BOOT" mirrored 1)")
  wait_total "$L" "$end" $MPID "$L/mirror2.log"
  grep -q "the source's retention deleted offsets $c..$((low - 1)) before they were mirrored" "$L/mirror2.log" ||
    fail "no report of the lost range $c..$((low - 1)): $(grep -i 'mirrored-0' "$L/mirror2.log" | tail -3)"
  curl -s -m 5 "http://127.0.0.1:$port/metrics" |
    grep -q "^streamhouse_mirror_source_offsets_lost_total{partition=\"0\",topic=\"mirrored\"} $((low - c))\$" ||
    fail "lost-offsets metric: $(curl -s -m 5 "http://127.0.0.1:$port/metrics" | grep lost)"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  "$SH_BIN" mirror verify --config "$L/mirror.properties" > "$L/verify.out" 2>&1 ||
    fail "verify after the loss: $(cat "$L/verify.out")"
  echo "  checkpoint $c, source log start $low: offsets $c..$((low - 1)) reported lost, copied on to $end"
  # A fresh mirror of the same source starts where its log starts, quietly.
  local F=$WORK/f
  new_archive "$F"
  write_mirror_config "$F" "$MOCK_BOOT" < /dev/null
  start_mirror "$F" "$F/mirror.log"
  wait_total "$F" "$end" $MPID
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  grep -q "mirrored-0: the source's log starts at $low" "$F/mirror.log" ||
    fail "no log-start line: $(grep -i 'mirrored-0' "$F/mirror.log" | tail -3)"
  grep -q "offset reset\|retention deleted" "$F/mirror.log" && fail "a fresh start warned: $(cat "$F/mirror.log")"
  local start
  start=$(sql "$F" "select log_start_offset from partitions")
  [[ $start == "$low" ]] || fail "fresh archive starts at $start, not at the source's $low"
  echo "  a fresh mirror starts at the source's log start $low"
}

section_recreated() {
  echo "recreated: the source topic is deleted and created again, its log now ends before the"
  echo "  mirror's checkpoint; the mirror reports it and leaves the partition alone"
  local S=$WORK/src2 Y=$WORK/y
  start_source_broker "$S" <<< $'auto.create.topics.enable=true\nnum.partitions=1'
  local SRC_BOOT=127.0.0.1:$BROKER_PORT
  seq 1 50 | kcat -b "$SRC_BOOT" -P -t mirrored -p 0 2> /dev/null || fail "produce to the source"
  new_archive "$Y"
  write_mirror_config "$Y" "$SRC_BOOT" < /dev/null
  local MPID; start_mirror "$Y" "$Y/mirror.log"
  wait_total "$Y" 50 $MPID
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  $PY -c "
import sys, time
from kafka.admin import KafkaAdminClient
a = KafkaAdminClient(bootstrap_servers='$SRC_BOOT')
a.delete_topics(['mirrored'])
a.close()" || fail "deleting the source topic"
  for _ in $(seq 1 50); do
    seq 1 10 | kcat -b "$SRC_BOOT" -P -t mirrored -p 0 2> /dev/null && break
    sleep 0.2
  done
  [[ $(high_watermarks "$SRC_BOOT" mirrored 1) == "0:10" ]] ||
    fail "recreated source topic: $(high_watermarks "$SRC_BOOT" mirrored 1)"
  start_mirror "$Y" "$Y/mirror2.log"
  for _ in $(seq 1 100); do
    grep -q "mirrored-0: the source has no offset 50 (its log ends at 10" "$Y/mirror2.log" && break
    sleep 0.1
  done
  grep -q "mirrored-0: the source has no offset 50 (its log ends at 10" "$Y/mirror2.log" ||
    fail "no report of the recreated topic: $(tail -3 "$Y/mirror2.log")"
  sleep 1
  kill -0 $MPID || fail "the mirror stopped: $(tail -3 "$Y/mirror2.log")"
  [[ $(checkpoint_of "$Y" 0) == 50 ]] || fail "checkpoint moved to $(checkpoint_of "$Y" 0)"
  kill -TERM $MPID; wait $MPID || fail "mirror exit status after SIGTERM"
  echo "  reported; checkpoint kept at 50; the archive is unchanged"
}

section_broker() {
  echo "broker: mirror.config runs the mirror inside streamhouse broker"
  start_mock mock6 --partitions 3 --rounds 10
  local K=$WORK/k
  new_archive "$K"
  dump "$MOCK_BOOT" mirrored "$WORK/source6.dump"
  write_mirror_config "$K" "$MOCK_BOOT" < /dev/null
  start_broker "$K" "$K/broker.log" <<< "mirror.config=$K/mirror.properties"
  wait_total "$K" "$(expected_total "$WORK/source6.dump")" $BROKER_PID "$K/broker.log"
  dump "127.0.0.1:$BROKER_PORT" mirrored "$K/archive.dump"
  compare_dumps "$WORK/source6.dump" "$K/archive.dump"
  kill -TERM "$BROKER_PID"
  local rc=0
  wait "$BROKER_PID" || rc=$?
  [[ $rc == 0 ]] || fail "broker exit status $rc after SIGTERM: $(tail -5 "$K/broker.log")"
  grep -q "mirror e2e: stopped after" "$K/broker.log" || fail "the mirror did not stop cleanly: $(tail -5 "$K/broker.log")"
  echo "  mirrored inside the broker, served by it, stopped cleanly by SIGTERM"
  # A mirror that fails (here: nothing listens at its source, so its metadata request times out
  # after 10 s) starts again after a pause, while the broker goes on serving.
  local D=$WORK/k2
  new_archive "$D"
  write_mirror_config "$D" "127.0.0.1:$(free_port)" < /dev/null
  start_broker "$D" "$D/broker.log" <<< "mirror.config=$D/mirror.properties"
  for _ in $(seq 1 250); do
    grep -q "mirror e2e: starting again" "$D/broker.log" && break
    sleep 0.1
  done
  grep -q "mirror e2e: starting again" "$D/broker.log" ||
    fail "the failed mirror did not start again: $(tail -3 "$D/broker.log")"
  kcat -b "127.0.0.1:$BROKER_PORT" -L > /dev/null 2>&1 || fail "the broker stopped serving"
  kill -TERM "$BROKER_PID"
  rc=0
  wait "$BROKER_PID" || rc=$?
  [[ $rc == 0 ]] || fail "broker exit status $rc after SIGTERM: $(tail -5 "$D/broker.log")"
  echo "  a failing mirror starts again after a pause; the broker serves on and stops cleanly"
}

case $SECTION in
  fidelity|kill9|share|groups|metrics|broker|retention|discovery|conflict|lost|recreated) "section_$SECTION" ;;
  *) fail "unknown section $SECTION" ;;
esac
echo "PASS ($SECTION, $BACKEND)"
