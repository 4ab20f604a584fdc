#!/usr/bin/env bash
# Benchmark (never a test): fio's nbd engine through nbd-pcie-client -unix
# over a shm link to nbd-pcie-server with a 1 GiB scratch file in /tmp.
# Usage: bench/host-client-fio.sh BUILD_DIR [SECONDS]
# Prints one line per workload: IOPS, MB/s, and CPU seconds used by the
# client (relay) and the server during it. Numbers depend on the machine's
# load; compare runs on an idle machine.
set -euo pipefail
BUILD=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS]}" && pwd)
SECS=${2:-5}
TAG=npc-bench-$$
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX")
SHM=/dev/shm/$TAG
SOCK=$WORK/nbd.sock
SRV= CLI=
cleanup() {
    [ -n "$CLI" ] && kill "$CLI" 2>/dev/null && wait "$CLI" 2>/dev/null || true
    [ -n "$SRV" ] && kill "$SRV" 2>/dev/null && wait "$SRV" 2>/dev/null || true
    rm -rf "$WORK"; rm -f "$SHM" "$SHM".*
}
trap cleanup EXIT
truncate -s 1G "$WORK/disk.img"
"$BUILD/ep-server/nbd-pcie-server" -d --pcie "shm:$SHM" -N bench "$WORK/disk.img" >"$WORK/srv.log" 2>&1 &
SRV=$!
for i in $(seq 100); do [ -e "$SHM" ] && break; sleep 0.05; done
"$BUILD/host-client/nbd-pcie-client" -n -pcie "shm:$SHM" -unix "$SOCK" >"$WORK/cli.log" 2>&1 &
CLI=$!
for i in $(seq 100); do [ -e "$SOCK" ] && break; sleep 0.05; done
# Lay the file out first so that reads hit data.
fio --name=fill --ioengine=nbd --uri="nbd+unix:///bench?socket=$SOCK" --rw=write --bs=1m \
    --iodepth=8 --size=512M --output=/dev/null
cpu() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
printf '%-20s %10s %9s %10s %10s\n' workload IOPS MB/s client-cpu server-cpu
for spec in "randread 4k 1" "randread 4k 32" "randwrite 4k 32" "read 1m 8" "write 1m 8"; do
    set -- $spec
    c0=$(cpu "$CLI"); s0=$(cpu "$SRV")
    line=$(fio --name=b --ioengine=nbd --uri="nbd+unix:///bench?socket=$SOCK" --rw="$1" \
        --bs="$2" --iodepth="$3" --size=512M --runtime="$SECS" --time_based \
        --output-format=terse --terse-version=3 | tail -n 1)
    c1=$(cpu "$CLI"); s1=$(cpu "$SRV")
    awk -F';' -v s="$1 $2 QD$3" -v c=$(( c1 - c0 )) -v sv=$(( s1 - s0 )) -v hz="$hz" '{
        iops = $8 + $49; bw = ($7 + $48) / 1024;
        printf "%-20s %10.0f %9.0f %9.2fs %9.2fs\n", s, iops, bw, c / hz, sv / hz }' <<<"$line"
done
