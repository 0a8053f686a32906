#!/usr/bin/env bash
# Live capture rate of issue 4: tcpreplay feeds a capture into one end of a
# veth pair (the peer lives in a network namespace this script creates), and
# `tapsentry run` captures on the other end. Prints tcpreplay's rate and the
# sensor's packet, kernel-drop and queue-drop counters from its stats log.
#
#   sudo benches/live-veth.sh CAPTURE [PPS|top] [LOOPS]
#
# Root is needed for the namespace and the veth pair. No traffic leaves the
# pair. Build first: cargo build --release.
set -euo pipefail

PCAP=${1:?usage: live-veth.sh CAPTURE [PPS|top] [LOOPS]}
RATE=${2:-top}
LOOPS=${3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${TAPSENTRY:-$ROOT/target/release/tapsentry}
NS=tsbench
IF=tsb0
PEER=tsb1
OUT=$(mktemp -d)

command -v tcpreplay >/dev/null || apt-get install -y tcpreplay >/dev/null
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 2; }

cleanup() {
    if [ -n "${SENSOR:-}" ]; then kill -TERM "$SENSOR" 2>/dev/null || true; fi
    ip netns del "$NS" 2>/dev/null || true
    ip link del "$IF" 2>/dev/null || true
}
trap cleanup EXIT
cleanup

ip netns add "$NS"
ip link add "$IF" type veth peer name "$PEER"
ip link set "$PEER" netns "$NS"
ip link set "$IF" up
ip netns exec "$NS" ip link set "$PEER" up

"$BIN" run --interface "$IF" --alerts /dev/null --stats "$OUT/stats.jsonl" 2>"$OUT/sensor.log" &
SENSOR=$!
sleep 2

if [ "$RATE" = top ]; then SPEED=--topspeed; else SPEED=--pps=$RATE; fi
ip netns exec "$NS" tcpreplay "$SPEED" --loop="$LOOPS" -i "$PEER" "$PCAP" 2>&1 |
    grep -E "Actual|Rated|Failed"
sleep 3
kill -TERM "$SENSOR"
wait "$SENSOR" || true
SENSOR=
echo "sensor:"
tail -n 1 "$OUT/stats.jsonl" |
    jq -c '{packets: .capture.packets, kernel: .capture.kernel, drops: .drops}'
