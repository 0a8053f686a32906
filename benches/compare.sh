#!/usr/bin/env bash
# Side-by-side replay benchmark of issue 4: tapsentry (every detector on)
# against tcpdump and Suricata 7 flow-only, on one synthetic capture, in one
# hyperfine run; then peak RSS of each and the sensor's own latency stats.
#
#   benches/compare.sh [PACKETS]          # default 5,000,000 packets (~3.7 GB)
#   PACKETS=1000000 benches/compare.sh    # the quick variant (~0.75 GB)
#
# Environment (all optional):
#   PACKETS    packets in the capture (the first argument wins)     5000000
#   FLOWS      flows in the capture                                 PACKETS/25
#   SEED       generator seed                                       1
#   RUNS       hyperfine runs per command                           5
#   BENCH_DIR  where the capture and results go (capture reused)    /tmp/tapsentry-bench
#   KEEP_PCAP  0 deletes the capture at the end                     1
#
# Installs hyperfine, tcpdump, suricata and GNU time with apt-get when they
# are missing (as root, or through sudo); a tool that cannot be installed is
# skipped with a note. On Debian 12 Suricata comes from bookworm-backports;
# the script uses it if that suite is configured and says how otherwise.
# Never sends a packet anywhere: everything reads one file.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PACKETS=${1:-${PACKETS:-5000000}}
FLOWS=${FLOWS:-$((PACKETS / 25))}
SEED=${SEED:-1}
RUNS=${RUNS:-5}
BENCH_DIR=${BENCH_DIR:-/tmp/tapsentry-bench}
KEEP_PCAP=${KEEP_PCAP:-1}
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

note() { printf 'compare.sh: %s\n' "$*" >&2; }

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        return 1
    fi
}

apt_updated=0
apt_install() {
    command -v apt-get >/dev/null 2>&1 || return 1
    if [ "$apt_updated" -eq 0 ]; then
        as_root apt-get update -qq >/dev/null 2>&1 || true
        apt_updated=1
    fi
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null 2>&1
}

# need TOOL PACKAGE: 0 when TOOL is (now) there.
need() {
    command -v "$1" >/dev/null 2>&1 && return 0
    note "installing $2"
    apt_install "$2" && command -v "$1" >/dev/null 2>&1
}

need hyperfine hyperfine || { note "hyperfine is required and could not be installed"; exit 1; }
[ -x /usr/bin/time ] || apt_install time || true
HAVE_TIME=0; [ -x /usr/bin/time ] && HAVE_TIME=1
[ "$HAVE_TIME" -eq 1 ] || note "GNU time (/usr/bin/time) missing: no peak RSS column"
HAVE_TCPDUMP=0; need tcpdump tcpdump && HAVE_TCPDUMP=1
[ "$HAVE_TCPDUMP" -eq 1 ] || note "tcpdump could not be installed: skipped"
HAVE_SURICATA=0
if need suricata suricata; then
    HAVE_SURICATA=1
elif grep -qs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/* \
    && apt_install -t bookworm-backports suricata && command -v suricata >/dev/null 2>&1; then
    HAVE_SURICATA=1
else
    note "suricata could not be installed: skipped (on Debian 12 it is in bookworm-backports:"
    note "  echo 'deb http://deb.debian.org/debian bookworm-backports main' > /etc/apt/sources.list.d/backports.list)"
fi

note "building release binaries"
(cd "$ROOT" && cargo build --release --quiet --bin tapsentry -p tapsentry \
    && cargo build --release --quiet -p tapsentry-testkit --example make-bench)
SENSOR=$TARGET_DIR/release/tapsentry
GEN=$TARGET_DIR/release/examples/make-bench

mkdir -p "$BENCH_DIR"
PCAP=$BENCH_DIR/bench-${PACKETS}p-${FLOWS}f-s${SEED}.pcap
if [ -s "$PCAP" ]; then
    note "reusing $PCAP"
else
    note "generating $PCAP"
    "$GEN" --packets "$PACKETS" --flows "$FLOWS" --seed "$SEED" "$PCAP.tmp"
    mv "$PCAP.tmp" "$PCAP"
fi
SIZE=$(stat -c %s "$PCAP")
# Frames are whole: wire bytes = file - 24-byte file header - 16 per record.
WIRE_BYTES=$((SIZE - 24 - 16 * PACKETS))

RESULTS=$BENCH_DIR/results-$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$RESULTS/suricata-log"
# A Tor exit list naming 20 outside servers of the capture, so the Tor
# detector raises alerts and the flow-end-to-alert latency is measured (the
# capture itself is benign: no other detector fires on 15-75 s of traffic).
TOR_LIST=$RESULTS/tor-exits.txt
if [ "$HAVE_TCPDUMP" -eq 1 ]; then
    tcpdump -nr "$PCAP" -c 5000 'tcp[tcpflags] & tcp-syn != 0 and not dst net 10.0.0.0/8' 2>/dev/null \
        | awk '{ split($5, a, "."); print a[1] "." a[2] "." a[3] "." a[4] }' | sort -u | head -n 20 >"$TOR_LIST" || true
fi
[ -s "$TOR_LIST" ] || cp "$ROOT/pcaps/demo-tor-exits.txt" "$TOR_LIST"

# Suricata 7 flow-only: no rules (-S /dev/null), every app-layer protocol
# off, no outputs, no stats, single runmode. Decode, flow and TCP stream
# tracking still run.
SURICATA_YAML=$RESULTS/suricata-flow-only.yaml
if [ "$HAVE_SURICATA" -eq 1 ]; then
    {
        printf '%%YAML 1.1\n---\n'
        printf 'vars:\n  address-groups:\n    HOME_NET: "[10.0.0.0/8,172.16.0.0/12,192.168.0.0/16]"\n'
        # shellcheck disable=SC2016 # a Suricata variable, not a shell one
        printf '    EXTERNAL_NET: "!$HOME_NET"\n'
        printf 'default-log-dir: %s\noutputs: []\nstats:\n  enabled: no\n' "$RESULTS/suricata-log"
        printf 'logging:\n  default-log-level: notice\n  outputs:\n    - console:\n        enabled: yes\n'
        printf 'app-layer:\n  protocols:\n'
        suricata --list-app-layer-protos 2>/dev/null | sed -n '/=====/,$p' | grep -v '=' \
            | while read -r proto; do printf '    %s:\n      enabled: no\n' "$proto"; done
    } >"$SURICATA_YAML"
fi

# name|command (names carry no commas: they go through hyperfine's CSV).
CMDS=(
    "cat|cat $PCAP"
    "tapsentry (default config = 2 workers)|$SENSOR replay --alerts /dev/null --tor-exit-list $TOR_LIST $PCAP"
    "tapsentry --workers 1|$SENSOR replay --workers 1 --alerts /dev/null --tor-exit-list $TOR_LIST $PCAP"
)
[ "$HAVE_TCPDUMP" -eq 1 ] && CMDS+=("tcpdump|tcpdump -r $PCAP -w /dev/null")
[ "$HAVE_SURICATA" -eq 1 ] && CMDS+=("suricata flow-only|suricata -c $SURICATA_YAML -r $PCAP -S /dev/null --runmode single -l $RESULTS/suricata-log")

note "warming the page cache"
cat "$PCAP" >/dev/null
cat "$PCAP" >/dev/null

HF_ARGS=()
for c in "${CMDS[@]}"; do
    HF_ARGS+=(-n "${c%%|*}" "${c#*|}")
done
note "hyperfine: $RUNS runs of each command, all in one run"
hyperfine --warmup 1 --runs "$RUNS" --style basic \
    --export-json "$RESULTS/hyperfine.json" --export-csv "$RESULTS/hyperfine.csv" \
    "${HF_ARGS[@]}" >"$RESULTS/hyperfine.txt" 2>&1 || { cat "$RESULTS/hyperfine.txt"; exit 1; }

# Peak RSS: one more run of each under GNU time.
declare -A RSS
for c in "${CMDS[@]}"; do
    name=${c%%|*}
    RSS[$name]="-"
    if [ "$HAVE_TIME" -eq 1 ]; then
        # shellcheck disable=SC2086 # the command is a word list on purpose
        /usr/bin/time -v -o "$RESULTS/time.txt" ${c#*|} >/dev/null 2>&1 || true
        kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$RESULTS/time.txt")
        [ -n "$kb" ] && RSS[$name]=$(awk -v kb="$kb" 'BEGIN { printf "%.0f", kb / 1024 }')
    fi
done

# The sensor's own stats log: per-packet processing time and flow end to
# alert latency (hdrhistogram, sampled inside the sensor).
"$SENSOR" replay --alerts /dev/null --tor-exit-list "$TOR_LIST" --stats "$RESULTS/stats.jsonl" "$PCAP" 2>"$RESULTS/sensor-summary.txt" || true

median_of() { awk -F, -v n="$1" 'NR > 1 && $1 == n { print $4 }' "$RESULTS/hyperfine.csv"; }
TCPDUMP_S=$(median_of tcpdump)
SURICATA_S=$(median_of "suricata flow-only")

{
    printf '\n%s packets, %s flows, %s bytes (%.2f GB), seed %s; %s runs each, medians; %s\n' \
        "$PACKETS" "$FLOWS" "$SIZE" "$(awk -v s="$SIZE" 'BEGIN { print s / 1e9 }')" "$SEED" "$RUNS" "$(date -u +%F)"
    printf '%s; %s\n\n' "$(nproc) CPUs" "$(sed -n 's/^Model name: *//p' < <(lscpu) | head -1)"
    printf '| tool | median s | Mpps | Gbit/s | × tcpdump | × suricata | peak RSS MB |\n'
    printf '| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n'
    for c in "${CMDS[@]}"; do
        name=${c%%|*}
        awk -v name="$name" -v s="$(median_of "$name")" -v p="$PACKETS" -v b="$WIRE_BYTES" \
            -v t="${TCPDUMP_S:-}" -v u="${SURICATA_S:-}" -v rss="${RSS[$name]}" 'BEGIN {
            rt = (t == "") ? "-" : sprintf("%.2f", s / t)
            ru = (u == "") ? "-" : sprintf("%.2f", s / u)
            printf "| %s | %.3f | %.2f | %.2f | %s | %s | %s |\n", name, s, p / s / 1e6, b * 8 / s / 1e9, rt, ru, rss
        }'
    done
    printf '\n× = median time over that tool'"'"'s median time in the same hyperfine run (lower is faster).\n'
    if [ -s "$RESULTS/stats.jsonl" ]; then
        tail -n 1 "$RESULTS/stats.jsonl" | awk '{
            match($0, /"packet_processing":\{[^}]*\}/); pp = substr($0, RSTART, RLENGTH)
            match($0, /"flow_end_to_alert":\{[^}]*\}/); fa = substr($0, RSTART, RLENGTH)
            print "sensor stats log: " pp
            print "sensor stats log: " fa
        }'
    fi
    printf 'sensor: %s\n' "$(grep '^tapsentry: [0-9]' "$RESULTS/sensor-summary.txt" || true)"
    printf 'raw results: %s\n' "$RESULTS"
} | tee "$RESULTS/table.md"

if [ "$KEEP_PCAP" = 0 ]; then
    rm -f "$PCAP"
fi
