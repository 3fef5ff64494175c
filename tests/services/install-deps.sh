#!/usr/bin/env bash
# Installs StreamHouse's build and test dependencies from Debian 12 packages (run as root).
#
#   sudo tests/services/install-deps.sh          # run it
#   source tests/services/install-deps.sh && sh_install_deps   # or use the function
#
# Idempotent and quiet: when every package is already installed it neither updates the package
# lists nor touches dpkg, so CI can call it unconditionally. On failure it prints apt's log and
# returns non-zero.

# Build: compiler, generator, libraries. Test: real Kafka clients (kcat, kafka-python with its
# codecs, confluent-kafka), a real PostgreSQL and a real S3-compatible server (Swift + s3api).
SH_DEPS_PACKAGES=(
  cmake g++ pkg-config ninja-build ccache
  librdkafka-dev libboost-dev liblz4-dev libcurl4-openssl-dev libssl-dev zlib1g-dev
  libprotobuf-dev protobuf-compiler libspdlog-dev libfmt-dev libsnappy-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev libsqlite3-dev libpq-dev
  kcat python3-confluent-kafka python3-kafka python3-snappy python3-lz4 python3-zstandard
  postgresql swift-proxy swift-account swift-container swift-object curl
  clang-14 libclang-rt-14-dev
)

# Prints the packages of SH_DEPS_PACKAGES that are not installed, one per line.
sh_missing_deps() {
  local p status
  for p in "${SH_DEPS_PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
    [[ $status == ii* ]] || echo "$p"
  done
}

sh_install_deps() {
  local missing log rc
  mapfile -t missing < <(sh_missing_deps)
  if ((${#missing[@]} == 0)); then
    echo "[deps] all ${#SH_DEPS_PACKAGES[@]} packages already installed"
    return 0
  fi
  if ((EUID != 0)); then
    echo "[deps] missing packages (run as root to install): ${missing[*]}" >&2
    return 1
  fi
  echo "[deps] installing ${#missing[@]} missing packages: ${missing[*]}"
  log=$(mktemp -t sh-apt.XXXXXX)
  rc=0
  # The lock timeout waits for another apt (unattended upgrades, a parallel job) instead of failing.
  # --no-upgrade leaves already-installed packages (the image's postgresql-15 and libpq) as they
  # are; --no-install-recommends avoids about a hundred packages nothing here uses.
  DEBIAN_FRONTEND=noninteractive apt-get -qq -o DPkg::Lock::Timeout=300 update \
    </dev/null >"$log" 2>&1 || rc=$?
  if ((rc == 0)); then
    DEBIAN_FRONTEND=noninteractive apt-get -qq -y -o DPkg::Lock::Timeout=300 install \
      --no-install-recommends --no-upgrade "${SH_DEPS_PACKAGES[@]}" </dev/null >>"$log" 2>&1 || rc=$?
  fi
  if ((rc != 0)); then
    echo "[deps] apt-get failed (exit $rc); its log:" >&2
    cat "$log" >&2
    rm -f "$log"
    return "$rc"
  fi
  rm -f "$log"
  mapfile -t missing < <(sh_missing_deps)
  if ((${#missing[@]} != 0)); then
    echo "[deps] still missing after install: ${missing[*]}" >&2
    return 1
  fi
  echo "[deps] done"
}

# Executed rather than sourced: install now.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  sh_install_deps
fi
