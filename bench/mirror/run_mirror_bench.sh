#!/usr/bin/env bash
# Mirror throughput: N records of VALUE bytes preloaded in librdkafka's mock cluster (the live
# source, in its own process), copied by `streamhouse mirror` into one archive backend. Reports
# MB/s (record key+value bytes) and records/s from the mirror's start to its last commit of the
# last record (the time from the process start, source metadata and lease included).
#
# usage: bench/mirror/run_mirror_bench.sh BUILD_DIR [embedded|postgres-s3] [RECORDS] [VALUE] [PARTITIONS] [extra mirror.properties lines...]
#   embedded     SQLite + local directory under ${BENCH_TMP:-/tmp} (the default)
#   postgres-s3  PG_DSN/PG_URL and S3_* from tests/services/test-services.sh (must be sourced)
# SOURCE=streamhouse: the source is a StreamHouse broker loaded by sh_load instead of the mock.
set -euo pipefail
BUILD=${1:?build dir}
BACKEND=${2:-embedded}
RECORDS=${3:-300000}
VALUE=${4:-1024}
PARTS=${5:-4}
shift $(( $# < 5 ? $# : 5 ))
SH_BIN=$BUILD/broker/streamhouse
MOCK_BIN=$BUILD/connector/sh_mirror_mock_source
WORK=$(mktemp -d "${BENCH_TMP:-/tmp}/sh-mirror-bench.XXXXXX")
MOCK_PID=""
cleanup() {
  [[ -n "$MOCK_PID" ]] && kill "$MOCK_PID" 2>/dev/null; wait 2>/dev/null
  [[ -n ${KEEP_LOG:-} && -f "$WORK/mirror.log" ]] && cp "$WORK/mirror.log" "$KEEP_LOG"  # for a closer look
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ ${SOURCE:-mock} == streamhouse ]]; then
  # SOURCE=streamhouse: a StreamHouse broker (embedded, under $WORK/source) loaded by sh_load;
  # it serves reads faster than the mock and keeps everything, so it shows the mirror's own limit.
  PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
  printf 'listeners=PLAINTEXT://127.0.0.1:%s\ndata.dir=%s\nnum.partitions=%s\n' "$PORT" \
    "$WORK/source" "$PARTS" > "$WORK/source.properties"
  "$SH_BIN" broker --config "$WORK/source.properties" > "$WORK/source.log" 2>&1 &
  MOCK_PID=$!
  BOOT=127.0.0.1:$PORT
  for _ in $(seq 1 100); do kcat -b "$BOOT" -L > /dev/null 2>&1 && break; sleep 0.1; done
  "$BUILD/bench/sh_load" --bootstrap "$BOOT" --topic mirrored --messages "$RECORDS" \
    --size "$VALUE" --partitions "$PARTS" --no-consume > "$WORK/load.out" 2>&1 ||
    { echo "loading the source failed: $(tail -3 "$WORK/load.out")"; exit 1; }
else
  "$MOCK_BIN" --partitions "$PARTS" --rounds 0 --bulk "$RECORDS" --value-size "$VALUE" \
    --bulk-codec none > "$WORK/mock.out" 2> "$WORK/mock.err" &
  MOCK_PID=$!
  for _ in $(seq 1 1200); do [[ -s "$WORK/mock.out" ]] && break; sleep 0.1; done
  BOOT=$(head -1 "$WORK/mock.out")
  [[ -n "$BOOT" ]] || { echo "mock did not start: $(cat "$WORK/mock.err")"; exit 1; }
fi

# Baseline: how fast a plain consumer (kcat, same fetch settings) reads the same data from the
# mock right now; the mirror cannot beat its source.
if command -v kcat > /dev/null; then
  k0=$(date +%s%N)
  kcat -b "$BOOT" -C -t mirrored -o beginning -e -q -f '%o\n' -X fetch.max.bytes=104857600 \
    -X max.partition.fetch.bytes=8388608 -X queued.max.messages.kbytes=262144 -X receive.message.max.bytes=268435456 \
    2> "$WORK/kcat.err" | wc -l > "$WORK/kcat.count" ||
    echo "source alone (kcat) failed: $(tail -1 "$WORK/kcat.err")"
  k1=$(date +%s%N)
  [[ -s "$WORK/kcat.err" ]] || python3 -c "import sys; n=int(open('$WORK/kcat.count').read()); s=($k1-$k0)/1e9; print(f'source alone (kcat): {n} records in {s:.2f} s = {n*($VALUE+12)/s/1e6:.1f} MB/s')"
fi

NAME=bench$$
if [[ $BACKEND == postgres-s3 ]]; then
  # A database and a bucket of its own (tests/services/test-services.sh must be sourced).
  : "${PG_URL:?source tests/services/test-services.sh}" "${S3_ENDPOINT:?}"
  psql "$PG_URL" -qAt -c "CREATE DATABASE $NAME" > /dev/null
  printf 'machine 127.0.0.1 login %s password %s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" > "$WORK/netrc"
  curl -s -m 20 -X PUT --aws-sigv4 "aws:amz:${S3_REGION:-us-east-1}:s3" --netrc-file "$WORK/netrc" \
    -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$S3_ENDPOINT/$NAME" > /dev/null
fi
{
  echo "mirror.name=$NAME"
  echo "source.bootstrap.servers=$BOOT"
  echo "topics=mirrored"
  echo "log.level=info"
  case $BACKEND in
    embedded)
      echo "metadata.url=$WORK/metadata.db"
      echo "storage.url=$WORK/objects" ;;
    postgres-s3)
      echo "metadata.url=${PG_URL%/*}/$NAME"
      echo "storage.url=s3://$NAME/objects"
      echo "s3.endpoint=${S3_ENDPOINT:?}"
      echo "s3.region=${S3_REGION:-us-east-1}"
      echo "s3.access.key=$S3_ACCESS_KEY"
      echo "s3.secret.key=$S3_SECRET_KEY" ;;
    *) echo "unknown backend $BACKEND"; exit 2 ;;
  esac
  for l in "$@"; do echo "$l"; done
} > "$WORK/mirror.properties"

start=$(date +%s%N)
"$SH_BIN" mirror --config "$WORK/mirror.properties" > "$WORK/mirror.log" 2>&1 &
MPID=$!
CPU0=$(awk '{print $14 + $15}' /proc/$MPID/stat 2>/dev/null || echo 0)
# The mirror logs "caught up" once every partition's checkpoint reached the source's end.
for _ in $(seq 1 6000); do
  grep -q "caught up" "$WORK/mirror.log" && break
  kill -0 $MPID 2>/dev/null || { echo "mirror died: $(tail -5 "$WORK/mirror.log")"; exit 1; }
  sleep 0.02
done
end=$(date +%s%N)
CPU1=$(awk '{print $14 + $15}' /proc/$MPID/stat)
kill -TERM $MPID; wait $MPID || true
grep -q "caught up" "$WORK/mirror.log" || { echo "mirror never caught up: $(tail -5 "$WORK/mirror.log")"; exit 1; }
secs=$(python3 -c "print(($end - $start) / 1e9)")
# The copy phase alone: from the first partition's start to "caught up" (log timestamps).
copy=$(python3 - "$WORK/mirror.log" <<'EOP'
import re, sys, datetime
first = last = None
for line in open(sys.argv[1], errors='replace'):
    m = re.match(r'\[(\d+-\d+-\d+ \d+:\d+:\d+\.\d+)\]', line)
    if not m: continue
    t = datetime.datetime.strptime(m.group(1), '%Y-%m-%d %H:%M:%S.%f').timestamp()
    if first is None and 'starts at' in line: first = t
    if 'caught up' in line: last = t; break
print(f"{last - first:.3f}" if first and last else "0")
EOP
)
cpu=$(python3 -c "print(($CPU1 - $CPU0) / $(getconf CLK_TCK))")
python3 - "$secs" "$copy" "$cpu" "$RECORDS" "$VALUE" "$BACKEND" "$PARTS" <<'EOP'
import sys
secs, copy, cpu = float(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
n, v, backend, parts = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6], sys.argv[7]
payload = n * (v + 12)  # value + the "bulk-<i>" key, roughly
import os
print(f"{backend} from {os.environ.get('SOURCE', 'mock')}: {n} records x {v} B over {parts} partitions: "
      f"process start to caught up {secs:.2f} s = {payload / secs / 1e6:.1f} MB/s; "
      f"copy phase {copy:.2f} s = {payload / max(copy, 1e-9) / 1e6:.1f} MB/s, "
      f"{n / max(copy, 1e-9):.0f} records/s; mirror CPU {cpu:.2f} s = "
      f"{payload / max(cpu, 1e-9) / 1e6:.0f} MB per CPU-second")
EOP
grep -E "mirror thread time" "$WORK/mirror.log" | sed "s/.*mirror thread time/  mirror thread time/" || true
