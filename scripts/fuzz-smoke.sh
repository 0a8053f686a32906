#!/usr/bin/env bash
# Builds every cargo-fuzz target (fuzz/) and runs each for a time budget
# over its seeds; fails when any target finds a crash, a hang (a run over
# 10 s) or an allocation over the RSS limit.
#
#   scripts/fuzz-smoke.sh [SECONDS_PER_TARGET]      (default 20)
#
# Needs the nightly toolchain (installed with `rustup toolchain install
# nightly --profile minimal` when missing) and cargo-fuzz (installed from
# crates.io when missing). Without either it says so and exits 0: the
# stable test `tests/fuzz_seeds.rs` still runs every seed.
#
# Environment: FUZZ_CORPUS=DIR fuzzes DIR/<target> (created if missing,
# new inputs kept there) on top of fuzz/seeds/<target> instead of a
# throwaway copy of the seeds; FUZZ_TARGETS="a b" runs only those targets;
# FUZZ_LOG=DIR keeps each target's libFuzzer output there.
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-20}"
targets=(decode_frame dns_message capture_file proto_classify tor_list config state_file alert_log admin_inspect)
[ -n "${FUZZ_TARGETS:-}" ] && read -r -a targets <<<"$FUZZ_TARGETS"

max_len() {
  case "$1" in
    dns_message) echo 1024 ;;
    decode_frame | proto_classify | admin_inspect) echo 4096 ;;
    *) echo 16384 ;;
  esac
}

if ! cargo +nightly --version >/dev/null 2>&1; then
  if ! rustup toolchain install nightly --profile minimal >/dev/null 2>&1; then
    echo "fuzz-smoke: SKIPPED: no nightly toolchain and it cannot be installed" >&2
    exit 0
  fi
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "== installing cargo-fuzz"
  if ! cargo install cargo-fuzz --locked --quiet; then
    echo "fuzz-smoke: SKIPPED: cargo-fuzz cannot be installed" >&2
    exit 0
  fi
fi

echo "== building the fuzz targets (nightly)"
cargo +nightly fuzz build -O >/dev/null 2>&1 || cargo +nightly fuzz build -O

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
log_dir="${FUZZ_LOG:-$work/logs}"
mkdir -p "$log_dir"
failed=()
for t in "${targets[@]}"; do
  if [ -n "${FUZZ_CORPUS:-}" ]; then
    corpus="$FUZZ_CORPUS/$t"
  else
    corpus="$work/corpus/$t"
  fi
  mkdir -p "$corpus"
  dirs=("$corpus")
  for d in "fuzz/seeds/$t" "fuzz/regressions/$t"; do
    [ -d "$d" ] && dirs+=("$d")
  done
  echo "== fuzz $t for ${secs}s"
  if cargo +nightly fuzz run -O "$t" "${dirs[@]}" -- \
    -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
    -max_len="$(max_len "$t")" -print_final_stats=1 \
    >"$log_dir/$t.log" 2>&1; then
    grep -E '^#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::average_exec_per_sec' "$log_dir/$t.log" | tr '\n' ' ' || true
    echo
  else
    echo "fuzz-smoke: $t FAILED; the end of its log:" >&2
    tail -n 40 "$log_dir/$t.log" >&2
    failed+=("$t")
  fi
done
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz-smoke: crashes in: ${failed[*]} (inputs under fuzz/artifacts/)" >&2
  exit 1
fi
echo "fuzz-smoke: every target ran ${secs}s without a finding"
