#!/usr/bin/env bash
# Builds the fuzz corpora from real inputs: frames, whole small captures,
# DNS payloads and first payloads of flows from ../shared/pcaps (every
# folder, malformed/ included) and pcaps/; sensor.toml.example; a state file
# written by a replay with --state-file; the bundled Tor lists; alert logs
# (the demo's, and a generated intrusion's with its incident records).
#
#   fuzz/seed.sh [OUT_DIR [MAX_PER_CAPTURE]]
#
# OUT_DIR defaults to fuzz/corpus (not committed); MAX_PER_CAPTURE (default
# 50) bounds the frames, DNS payloads and flows taken from one capture.
# MAX_SEED_BYTES=N drops seeds over N bytes at the end. fuzz/seeds/ holds
# the small curated set that is committed, made with
# `MAX_SEED_BYTES=12000 fuzz/seed.sh fuzz/seeds 2`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
out="${1:-fuzz/corpus}"
max="${2:-50}"
shared="${SHARED_PCAPS:-$root/../shared/pcaps}"

captures=()
while IFS= read -r -d '' f; do captures+=("$f"); done < <(
  find pcaps "$shared" -type f \( -name '*.pcap' -o -name '*.pcapng' \) -print0 2>/dev/null | sort -z)
echo "seeding $out from ${#captures[@]} captures (at most $max items each)"
cargo run -q --release -p tapsentry-testkit --example fuzz-seeds -- "$out" "$max" "${captures[@]}"

mkdir -p "$out/config" "$out/tor_list" "$out/state_file" "$out/alert_log"
cp sensor.toml.example "$out/config/sensor.toml.example"
cp pcaps/demo-tor-exits.txt "$out/tor_list/"
cp crates/intel/tests/data/tor_*.txt "$out/tor_list/"

# A state file as the sensor writes it: replay the demo with --state-file.
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cargo run -q --release -- replay --alerts "$tmp/alerts.jsonl" \
  --tor-exit-list pcaps/demo-tor-exits.txt --state-file "$tmp/state.json" \
  pcaps/demo.pcap 2>/dev/null
cp "$tmp/state.json" "$out/state_file/demo-state.json"
cp "$tmp/alerts.jsonl" "$out/alert_log/demo-alerts.jsonl"

# An alert log with an incident: the generated four-step intrusion.
cargo run -q --release -p tapsentry-testkit --example make-office -- "$tmp/intrusion.pcap" intrusion 3 >/dev/null 2>&1
printf '[network]\nhome_net = ["10.20.0.0/16"]\n[intel]\ntor_exit_list = ""\ngeoip_city = ""\ngeoip_asn = ""\n[output]\nhost = "seed"\n' >"$tmp/office.toml"
cargo run -q --release -- replay --config "$tmp/office.toml" --alerts "$tmp/intrusion.jsonl" \
  "$tmp/intrusion.pcap" 2>/dev/null
cp "$tmp/intrusion.jsonl" "$out/alert_log/intrusion-alerts.jsonl"
rm -f "$tmp/intrusion.pcap"

# An alert log with alert_update records: a scan and a brute force from
# the shared corpus.
cargo run -q --release -- replay --alerts "$out/alert_log/scan-and-brute-force.jsonl" \
  "$shared/attacks/nmap-syn-scan-1000-ports.pcap" "$shared/attacks/ssh-bruteforce-hydra-1task.pcap" 2>/dev/null || true

if [ -n "${MAX_SEED_BYTES:-}" ]; then
  find "$out" -type f -size +"${MAX_SEED_BYTES}"c -delete
fi
for t in "$out"/*/; do
  printf '%-16s %5d files %8d bytes\n' "$(basename "$t")" "$(ls "$t" | wc -l)" "$(cat "$t"/* | wc -c)"
done
