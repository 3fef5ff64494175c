#!/usr/bin/env bash
# The broker must refuse a properties file with an unknown key: exit non-zero, promptly, and name
# the key, instead of silently ignoring a typo (`bogus.key=1`). As a control, the same file
# without that key must start (listening on its port) and stop with exit 0 on SIGTERM, so the
# rejection is about the key, not about the rest of the file.
#
#   config_reject_test.sh STREAMHOUSE_BINARY
set -euo pipefail

if (($# != 1)); then
  echo "usage: $0 STREAMHOUSE_BINARY" >&2
  exit 2
fi
BIN=$1
WORK=$(mktemp -d -t sh-config-reject.XXXXXX)
PID=""

fail() {
  echo "FAIL: $*" >&2
  exit 1
}

cleanup() {
  local rc=$?
  set +e
  if [[ -n $PID ]] && kill -0 "$PID" 2>/dev/null; then
    kill -KILL "$PID"
    wait "$PID" 2>/dev/null
  fi
  if ((rc != 0)); then
    for l in "$WORK"/*.log; do
      [[ -f $l ]] || continue
      echo "----- $l (last 60 lines) -----"
      tail -n 60 "$l"
    done
  fi
  rm -rf "$WORK"
  exit "$rc"
}
trap cleanup EXIT

[[ -x $BIN ]] || fail "broker binary not found or not executable: $BIN (is the target built?)"

port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
write_config() {
  cat >"$1" <<EOF
listeners=PLAINTEXT://127.0.0.1:$port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
node.id=1
data.dir=$WORK/data
num.partitions=1
auto.create.topics.enable=true
EOF
}

# 1. Unknown key: refused.
write_config "$WORK/bogus.properties"
echo "bogus.key=1" >>"$WORK/bogus.properties"
rc=0
timeout -k 5 20 "$BIN" broker --config "$WORK/bogus.properties" </dev/null \
  >"$WORK/bogus.log" 2>&1 || rc=$?
if ((rc == 124 || rc == 137)); then
  fail "broker was still running 20 s after start with an unknown key (it should refuse to start)"
fi
((rc != 0)) || fail "broker exited 0 with an unknown config key (want non-zero)"
grep -q 'bogus\.key' "$WORK/bogus.log" ||
  fail "broker exited $rc but its output does not name the unknown key 'bogus.key'"
echo "ok: unknown key refused (exit $rc): $(grep -m1 'bogus\.key' "$WORK/bogus.log")"

# 2. Control: the same file without it starts and stops cleanly.
write_config "$WORK/good.properties"
timeout -s KILL 300 "$BIN" broker --config "$WORK/good.properties" </dev/null >"$WORK/good.log" 2>&1 &
PID=$!
for ((i = 0; i < 300; i++)); do
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break
  kill -0 "$PID" 2>/dev/null || {
    rc=0
    wait "$PID" || rc=$?
    PID=""
    fail "broker exited ($rc) with a valid config"
  }
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || fail "broker not listening on $port after 30 s"
kill -TERM "$PID"
timeout 30 tail --pid="$PID" -f /dev/null || fail "broker did not exit within 30 s of SIGTERM"
rc=0
wait "$PID" || rc=$?
PID=""
((rc == 0)) || fail "broker exited $rc after SIGTERM (want 0)"
echo "ok: the same config without the unknown key starts and stops cleanly"
