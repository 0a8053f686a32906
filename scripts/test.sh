#!/usr/bin/env bash
# Runs every check and test of tapsentry on a fresh Debian/Ubuntu machine:
# installs what the build and the tests need (libpcap headers, tshark's
# capinfos for the packet-count tests, iproute2 for the live-capture test,
# and the operations tests' real programs: prometheus's promtool, systemd's
# systemd-analyze, logrotate, redis-server, rsyslog with omhiredis),
# then cargo fmt --check, clippy -D warnings, the whole test suite, and a
# fuzz smoke run (every cargo-fuzz target for FUZZ_SMOKE_SECS, default 15 s;
# see docs/robustness.md).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" = 0 ] || SUDO="sudo"
need=()
dpkg -s libpcap-dev >/dev/null 2>&1 || need+=(libpcap-dev)
command -v capinfos >/dev/null 2>&1 || need+=(tshark)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v promtool >/dev/null 2>&1 || need+=(prometheus)
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
command -v logrotate >/dev/null 2>&1 || need+=(logrotate)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
command -v rsyslogd >/dev/null 2>&1 || need+=(rsyslog)
dpkg -s rsyslog-hiredis >/dev/null 2>&1 || need+=(rsyslog-hiredis)
if [ ${#need[@]} -gt 0 ]; then
  echo "== installing: ${need[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found: install Rust from https://rustup.rs first" >&2
  exit 1
fi
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== cargo fmt --check"
cargo fmt --all -- --check
cargo fmt --manifest-path fuzz/Cargo.toml -- --check
echo "== cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings
echo "== cargo doc (warnings are errors: broken links, missing docs)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet
echo "== benches compile"
cargo bench --workspace --no-run >/dev/null 2>&1 || cargo bench --workspace --no-run
echo "== cargo test"
cargo test --workspace --no-fail-fast
echo "== fuzz smoke (nightly + cargo-fuzz; skipped with a message without them)"
./scripts/fuzz-smoke.sh "${FUZZ_SMOKE_SECS:-15}"
