#!/usr/bin/env bash
# Starts the real services StreamHouse's tests run against, on loopback, and stops them on exit:
#
#   S3   OpenStack Swift + s3api (strict SigV4)  $S3_ENDPOINT       default http://127.0.0.1:18080
#        access key test:tester, secret testing, region us-east-1
#   S3   moto (If-None-Match: *, no auth)        $S3_MOTO_ENDPOINT  default http://127.0.0.1:15000
#        only if `moto_server` is on PATH; otherwise S3_MOTO_ENDPOINT stays unset
#   SQL  throwaway PostgreSQL 15 (fsync off)     $PG_DSN / $PG_URL  default 127.0.0.1:5433,
#        database broker_test, user postgres, trust auth
#
# Two ways to use it:
#   source tests/services/test-services.sh       # from a bash script with `set -euo pipefail`:
#                                                # installs deps, starts, exports, and installs an
#                                                # EXIT trap that stops everything
#   tests/services/test-services.sh CMD ARGS...  # run CMD with the services up; exit with its code
#   tests/services/test-services.sh              # start, print the environment, wait for Ctrl-C
#
# A service that does not come up prints its log and makes this exit non-zero (from a sourcing
# script: the script exits). Ports can be moved if something else holds them: SH_S3_PORT,
# SH_SWIFT_PORT_BASE (three ports from there), SH_MOTO_PORT, SH_PG_PORT. SH_SKIP_INSTALL=1 skips
# the package check. A sourcing script that sets its own EXIT trap must call sh_services_stop from
# it (the function is idempotent).

SH_SVC_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=install-deps.sh
source "$SH_SVC_SCRIPT_DIR/install-deps.sh"

SH_S3_PORT=${SH_S3_PORT:-18080}
SH_SWIFT_PORT_BASE=${SH_SWIFT_PORT_BASE:-16200}
SH_MOTO_PORT=${SH_MOTO_PORT:-15000}
SH_PG_PORT=${SH_PG_PORT:-5433}
SH_PG_BIN=${SH_PG_BIN:-/usr/lib/postgresql/15/bin}

SH_SVC_PIDS=()
SH_SVC_TMP=""
SH_SVC_PGDATA=""
SH_SVC_STOPPED=0
SH_SVC_T0=$(date +%s%N)

sh_svc_log() { printf '[services] %s\n' "$*"; }

# Prints the time since the previous lap, labelled: sh_svc_lap LABEL [DETAIL].
sh_svc_lap() {
  local now
  now=$(date +%s%N)
  printf '[services] %-14s %6.2fs  %s\n' "$1" "$(((now - SH_SVC_T0) / 1000000))e-3" "${2:-}"
  SH_SVC_T0=$now
}

# Prints a service's log and exits non-zero (runs the EXIT trap, which stops what did start).
sh_svc_fail() {
  local what=$1 log
  shift
  echo "[services] ERROR: $what" >&2
  for log in "$@"; do
    if [[ -f $log ]]; then
      echo "----- $log (last 60 lines) -----" >&2
      tail -n 60 "$log" >&2
    fi
  done
  exit 1
}

# True if something accepts TCP connections on 127.0.0.1:$1.
sh_svc_port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

sh_svc_require_free_port() {
  if sh_svc_port_open "$1"; then
    sh_svc_fail "port $1 ($2) is already in use on 127.0.0.1; set $3 to another port"
  fi
}

# Runs a command as the postgres user (PostgreSQL refuses to run as root).
sh_svc_as_pg() {
  if ((EUID == 0)); then runuser -u postgres -- "$@"; else "$@"; fi
}

# Stops every service this script started. Idempotent; safe after a partial start.
sh_services_stop() {
  local rc=$? p i
  ((SH_SVC_STOPPED)) && return "$rc"
  SH_SVC_STOPPED=1
  set +e
  if [[ -n $SH_SVC_PGDATA && -f $SH_SVC_PGDATA/postmaster.pid ]]; then
    sh_svc_as_pg "$SH_PG_BIN/pg_ctl" -D "$SH_SVC_PGDATA" -m immediate -w -t 30 stop >/dev/null 2>&1
  fi
  for p in "${SH_SVC_PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${SH_SVC_PIDS[@]}"; do
    for ((i = 0; i < 50; i++)); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null
    wait "$p" 2>/dev/null
  done
  SH_SVC_PIDS=()
  [[ -n $SH_SVC_TMP ]] && rm -rf "$SH_SVC_TMP"
  set -e
  return "$rc"
}

# Waits until `$2...` succeeds, up to $1 tenths of a second, failing early if pid $SH_SVC_WAIT_PID
# (when set) has exited. Returns 1 on timeout or death.
sh_svc_wait_for() {
  local tenths=$1 i
  shift
  for ((i = 0; i < tenths; i++)); do
    "$@" && return 0
    if [[ -n ${SH_SVC_WAIT_PID:-} ]] && ! kill -0 "$SH_SVC_WAIT_PID" 2>/dev/null; then
      return 1
    fi
    sleep 0.1
  done
  return 1
}

sh_svc_start_swift() {
  local sw=$SH_SVC_TMP/swift user n port p
  local account_port=$((SH_SWIFT_PORT_BASE + 2)) container_port=$((SH_SWIFT_PORT_BASE + 1))
  local object_port=$SH_SWIFT_PORT_BASE
  [[ -f /etc/swift/swift.conf ]] ||
    sh_svc_fail "/etc/swift/swift.conf is missing (it ships with the swift package)"
  for p in "$SH_S3_PORT:SH_S3_PORT" "$account_port:SH_SWIFT_PORT_BASE" \
    "$container_port:SH_SWIFT_PORT_BASE" "$object_port:SH_SWIFT_PORT_BASE"; do
    sh_svc_require_free_port "${p%%:*}" swift "${p#*:}"
  done
  user=$(id -un)
  mkdir -p "$sw/etc" "$sw/node/d1"
  # One device, one replica: the smallest ring set Swift accepts.
  /usr/bin/python3 - "$sw/etc" "$account_port" "$container_port" "$object_port" \
    >"$sw/rings.log" 2>&1 <<'EOF' || sh_svc_fail "could not build the swift rings" "$sw/rings.log"
import sys
from swift.common.ring import RingBuilder
etc, ports = sys.argv[1], dict(zip(("account", "container", "object"), map(int, sys.argv[2:5])))
for name, port in ports.items():
    b = RingBuilder(8, 1, 1)
    b.add_dev({"id": 0, "region": 1, "zone": 1, "ip": "127.0.0.1", "port": port,
               "device": "d1", "weight": 1.0, "meta": ""})
    b.rebalance()
    b.get_ring().save(f"{etc}/{name}.ring.gz")
EOF
  for n in account container object; do
    case $n in
      account) port=$account_port ;;
      container) port=$container_port ;;
      object) port=$object_port ;;
    esac
    cat >"$sw/etc/$n-server.conf" <<EOF
[DEFAULT]
devices = $sw/node
mount_check = false
bind_ip = 127.0.0.1
bind_port = $port
workers = 0
user = $user
swift_dir = $sw/etc
log_level = WARNING
[pipeline:main]
pipeline = $n-server
[app:$n-server]
use = egg:swift#$n
EOF
  done
  # workers = 0 keeps each server in one process, so its pid is all there is to stop.
  cat >"$sw/etc/proxy-server.conf" <<EOF
[DEFAULT]
bind_ip = 127.0.0.1
bind_port = $SH_S3_PORT
workers = 0
user = $user
swift_dir = $sw/etc
log_level = WARNING
[pipeline:main]
pipeline = catch_errors gatekeeper healthcheck proxy-logging cache listing_formats s3api tempauth copy slo dlo proxy-logging proxy-server
[app:proxy-server]
use = egg:swift#proxy
account_autocreate = true
[filter:s3api]
use = egg:swift#s3api
location = us-east-1
[filter:tempauth]
use = egg:swift#tempauth
user_test_tester = testing .admin
[filter:catch_errors]
use = egg:swift#catch_errors
[filter:gatekeeper]
use = egg:swift#gatekeeper
[filter:healthcheck]
use = egg:swift#healthcheck
[filter:proxy-logging]
use = egg:swift#proxy_logging
[filter:cache]
use = egg:swift#memcache
[filter:listing_formats]
use = egg:swift#listing_formats
[filter:copy]
use = egg:swift#copy
[filter:slo]
use = egg:swift#slo
[filter:dlo]
use = egg:swift#dlo
EOF
  local -A pids=()
  for n in account container object proxy; do
    # -v logs to the console (our log file); without it Swift logs to a syslog that may not exist.
    "/usr/bin/swift-$n-server" "$sw/etc/$n-server.conf" -v </dev/null >"$sw/$n.log" 2>&1 &
    SH_SVC_PIDS+=($!)
    pids[$n]=$!
  done
  export S3_ENDPOINT=http://127.0.0.1:$SH_S3_PORT S3_REGION=us-east-1
  export S3_ACCESS_KEY=test:tester S3_SECRET_KEY=testing
  printf 'machine 127.0.0.1 login %s password %s\n' "$S3_ACCESS_KEY" "$S3_SECRET_KEY" \
    >"$sw/s3.netrc"
  # Ready = a signed ListBuckets answered 200, which needs proxy, auth and account server.
  sh_svc_swift_ready() {
    local code
    for n in account container object proxy; do
      kill -0 "${pids[$n]}" 2>/dev/null || return 2
    done
    code=$(curl -s -m 5 -o /dev/null -w '%{http_code}' --aws-sigv4 aws:amz:us-east-1:s3 \
      --netrc-file "$sw/s3.netrc" -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' \
      "$S3_ENDPOINT/" || true)
    [[ $code == 200 ]]
  }
  local i rc
  for ((i = 0; i < 600; i++)); do
    rc=0
    sh_svc_swift_ready || rc=$?
    ((rc == 0)) && break
    ((rc == 2)) && sh_svc_fail "a swift server exited during start-up" "$sw"/*.log
    sleep 0.1
  done
  ((rc == 0)) || sh_svc_fail "swift s3api not ready on $S3_ENDPOINT after 60 s" "$sw"/*.log
  sh_svc_lap "swift s3api up" "$S3_ENDPOINT"
}

sh_svc_start_moto() {
  local moto log=$SH_SVC_TMP/moto.log pid
  moto=$(command -v moto_server || true)
  if [[ -z $moto || ! -x $moto ]]; then
    sh_svc_log "moto_server not found; S3_MOTO_ENDPOINT left unset"
    unset S3_MOTO_ENDPOINT
    return 0
  fi
  sh_svc_require_free_port "$SH_MOTO_PORT" moto SH_MOTO_PORT
  "$moto" -H 127.0.0.1 -p "$SH_MOTO_PORT" </dev/null >"$log" 2>&1 &
  pid=$!
  SH_SVC_PIDS+=("$pid")
  sh_svc_moto_ready() { curl -fs -m 5 -o /dev/null "http://127.0.0.1:$SH_MOTO_PORT/"; }
  SH_SVC_WAIT_PID=$pid sh_svc_wait_for 300 sh_svc_moto_ready ||
    sh_svc_fail "moto not ready on 127.0.0.1:$SH_MOTO_PORT" "$log"
  export S3_MOTO_ENDPOINT=http://127.0.0.1:$SH_MOTO_PORT
  sh_svc_lap "moto up" "$S3_MOTO_ENDPOINT"
}

sh_svc_start_postgres() {
  local root=$SH_SVC_TMP/pg
  [[ -x $SH_PG_BIN/initdb ]] || sh_svc_fail "PostgreSQL 15 not found in $SH_PG_BIN"
  sh_svc_require_free_port "$SH_PG_PORT" postgres SH_PG_PORT
  mkdir -p "$root"
  ((EUID == 0)) && chown postgres:postgres "$root"
  sh_svc_as_pg "$SH_PG_BIN/initdb" -D "$root/data" -U postgres -A trust -E UTF8 \
    --locale=C.UTF-8 --no-sync >"$root/initdb.log" 2>&1 ||
    sh_svc_fail "initdb failed" "$root/initdb.log"
  SH_SVC_PGDATA=$root/data
  # Durability settings off: a test database, thrown away on exit.
  sh_svc_as_pg "$SH_PG_BIN/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
    -o "-p $SH_PG_PORT -k $root -c listen_addresses=127.0.0.1 -c fsync=off \
        -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >"$root/pg_ctl.log" 2>&1 ||
    sh_svc_fail "postgres did not start on 127.0.0.1:$SH_PG_PORT" "$root/pg_ctl.log" \
      "$root/server.log"
  "$SH_PG_BIN/createdb" -h 127.0.0.1 -p "$SH_PG_PORT" -U postgres broker_test \
    >"$root/createdb.log" 2>&1 || sh_svc_fail "createdb failed" "$root/createdb.log"
  export PG_DSN="host=127.0.0.1 port=$SH_PG_PORT user=postgres dbname=broker_test"
  export PG_URL="postgresql://postgres@127.0.0.1:$SH_PG_PORT/broker_test"
  sh_svc_lap "postgres up" "$PG_URL"
}

# Installs (unless SH_SKIP_INSTALL=1) and starts everything; sets the EXIT trap.
sh_services_start() {
  export DEBIAN_FRONTEND=noninteractive
  if [[ ${SH_SKIP_INSTALL:-0} != 1 ]]; then
    sh_install_deps || sh_svc_fail "installing dependencies failed"
    sh_svc_lap "dependencies"
  fi
  SH_SVC_TMP=$(mktemp -d -t sh-services.XXXXXX)
  chmod 755 "$SH_SVC_TMP" # postgres (another user) must reach its directory inside
  SH_SVC_STOPPED=0
  trap sh_services_stop EXIT
  trap 'exit 130' INT TERM
  sh_svc_start_swift
  sh_svc_start_moto
  sh_svc_start_postgres
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  sh_services_start
  if (($# > 0)); then
    rc=0
    "$@" || rc=$?
    exit "$rc"
  fi
  printf 'export %s=%q\n' S3_ENDPOINT "$S3_ENDPOINT" S3_REGION "$S3_REGION" \
    S3_ACCESS_KEY "$S3_ACCESS_KEY" S3_SECRET_KEY "$S3_SECRET_KEY" PG_DSN "$PG_DSN" \
    PG_URL "$PG_URL"
  [[ -n ${S3_MOTO_ENDPOINT:-} ]] && printf 'export S3_MOTO_ENDPOINT=%q\n' "$S3_MOTO_ENDPOINT"
  echo "[services] up; Ctrl-C to stop"
  while true; do
    sleep 3600 &
    wait $! # interruptible, unlike a foreground sleep, so SIGTERM stops us at once
  done
else
  sh_services_start
fi
