#!/usr/bin/env bash
# The main job, on a built tree: usage: scripts/demo-run.sh BUILD_DIR
#
# Starts nbd-pcie-server (the EP side) with a 256 MiB sparse scratch export on
# a shared-memory PCIe link (/dev/shm, emulated DMA), nbd-pcie-client (the
# host side) serving that export on a local NBD unix socket, and real NBD
# clients through it: nbdinfo lists the exports, qemu-io writes patterns and
# reads them back, nbdcopy copies a random file in and out and the checksums
# are compared. Prints a summary; exits non-zero if any verification fails.
# Everything it starts is stopped by PID and every file it made is removed.
set -euo pipefail

BUILD=${1:?usage: $0 BUILD_DIR}
BUILD=$(cd "$BUILD" && pwd)
SERVER=$BUILD/ep-server/nbd-pcie-server
CLIENT=$BUILD/host-client/nbd-pcie-client
for b in "$SERVER" "$CLIENT"; do
    [ -x "$b" ] || { echo "demo: $b is not built (cmake --build $BUILD)" >&2; exit 1; }
done
for t in nbdinfo nbdcopy qemu-io sha256sum; do
    command -v "$t" >/dev/null || { echo "demo: $t not found (run scripts/install-deps.sh)" >&2; exit 1; }
done

TAG=nbd-pcie-demo-$$
WORK=$(mktemp -d "/tmp/$TAG.XXXXXX")
LINK=/dev/shm/$TAG
SOCK=$WORK/nbd.sock
IMG=$WORK/scratch.img
EXPORT=scratch
SIZE_MIB=256
COPY_MIB=128
SRV_PID= CLI_PID=
failures=0

cleanup() {
    local rc=$?
    [ -n "$CLI_PID" ] && kill "$CLI_PID" 2>/dev/null && wait "$CLI_PID" 2>/dev/null || true
    [ -n "$SRV_PID" ] && kill "$SRV_PID" 2>/dev/null && wait "$SRV_PID" 2>/dev/null || true
    if [ $rc -ne 0 ] && [ -d "$WORK" ]; then
        echo "--- nbd-pcie-server log"; tail -n 20 "$WORK/server.log" 2>/dev/null || true
        echo "--- nbd-pcie-client log"; tail -n 20 "$WORK/client.log" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    rm -f "$LINK" "$LINK".*
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

step() { printf '\n== %s\n' "$*"; }
check() { # check DESCRIPTION COMMAND...: runs it, records PASS/FAIL
    local what=$1; shift
    if "$@"; then
        results+=("PASS  $what")
    else
        results+=("FAIL  $what")
        failures=$((failures + 1))
    fi
}
wait_for() { # wait_for PATH PID
    local i
    for i in $(seq 1 200); do
        [ -e "$1" ] && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 1
}
now_ns() { date +%s%N; }
mib_per_s() { # bytes ns
    awk -v b="$1" -v ns="$2" 'BEGIN { if (ns <= 0) ns = 1; printf "%.0f", b / 1048576 / (ns / 1e9) }'
}
results=()

step "EP side: nbd-pcie-server, export '$EXPORT' = $SIZE_MIB MiB sparse file, link shm:$LINK"
truncate -s "${SIZE_MIB}M" "$IMG"
cat > "$WORK/server.conf" <<EOF
[generic]
allowlist = true
pcie = shm:$LINK
[$EXPORT]
exportname = $IMG
flush = true
fua = true
trim = true
EOF
"$SERVER" -d -C "$WORK/server.conf" > "$WORK/server.log" 2>&1 &
SRV_PID=$!
wait_for "$LINK" "$SRV_PID" || { echo "demo: nbd-pcie-server did not start"; exit 1; }
echo "nbd-pcie-server -d -C $WORK/server.conf    (pid $SRV_PID)"

step "host side: nbd-pcie-client serving the link on a local NBD socket"
"$CLIENT" -n -pcie "shm:$LINK" -unix "$SOCK" > "$WORK/client.log" 2>&1 &
CLI_PID=$!
wait_for "$SOCK" "$CLI_PID" || { echo "demo: nbd-pcie-client did not start"; exit 1; }
echo "nbd-pcie-client -n -pcie shm:$LINK -unix $SOCK    (pid $CLI_PID)"
URI="nbd+unix:///$EXPORT?socket=$SOCK"

step "nbdinfo --list"
nbdinfo --list "nbd+unix:///?socket=$SOCK" | tee "$WORK/list.txt"
check "nbdinfo --list shows '$EXPORT' with size $((SIZE_MIB << 20))" \
    grep -q "export-size: $((SIZE_MIB << 20))" "$WORK/list.txt"

step "qemu-io: pattern writes, then reads that verify every byte"
qemu_ok() {
    qemu-io -f raw "$URI" \
        -c 'write -P 0xa5 0 4M' -c 'write -P 0x5a 100M 32M' -c 'write -z 200M 8M' \
        -c 'flush' \
        -c 'read -P 0xa5 0 4M' -c 'read -P 0x5a 100M 32M' -c 'read -P 0 200M 8M' \
        -c 'read -P 0 250M 1M' | tee "$WORK/qemu-io.txt" | grep -E '^(wrote|read)'
    ! grep -q 'failed\|Pattern verification' "$WORK/qemu-io.txt"
}
check "qemu-io patterns 0xa5 @0, 0x5a @100M (one 32 MiB request), zeroes @200M, unwritten @250M" qemu_ok
cmp_file() { cmp -i $(( $1 << 20 )):0 -n $(( $2 << 20 )) "$IMG" <(head -c $(( $2 << 20 )) /dev/zero | tr '\0' "\\$3"); }
check "the EP's backing file holds the 0x5a pattern at 100M" cmp_file 100 32 132

step "nbdcopy: $COPY_MIB MiB of random data in and out, checksums compared"
head -c $((COPY_MIB << 20)) /dev/urandom > "$WORK/in.bin"
t0=$(now_ns)
nbdcopy "$WORK/in.bin" "$URI"
t1=$(now_ns)
nbdcopy "$URI" "$WORK/out.bin"
t2=$(now_ns)
sum_in=$(sha256sum < "$WORK/in.bin" | cut -d' ' -f1)
sum_out=$(head -c $((COPY_MIB << 20)) "$WORK/out.bin" | sha256sum | cut -d' ' -f1)
sum_ep=$(head -c $((COPY_MIB << 20)) "$IMG" | sha256sum | cut -d' ' -f1)
echo "sha256 in:   $sum_in"
echo "sha256 out:  $sum_out"
echo "sha256 file: $sum_ep   (the EP's backing file)"
check "nbdcopy round trip: sha256 out == in" test "$sum_in" = "$sum_out"
check "nbdcopy wrote the same bytes to the EP's file" test "$sum_in" = "$sum_ep"
wr=$(mib_per_s $((COPY_MIB << 20)) $((t1 - t0)))
rd=$(mib_per_s $((SIZE_MIB << 20)) $((t2 - t1)))

# Stop the client first: it logs its totals on the way out.
kill "$CLI_PID"; wait "$CLI_PID" 2>/dev/null || true; CLI_PID=
moved=$(sed -n 's/.*stopped: .*requests, \([0-9]*\) bytes read, \([0-9]*\) bytes written.*/\1 \2/p' "$WORK/client.log")
read -r bytes_read bytes_written <<<"${moved:-0 0}"

step "summary"
echo "link:          shm:$LINK ($(grep -o 'host window[^)]*' "$WORK/client.log" | head -n1))"
echo "exports:       $(sed -n 's/^export="\(.*\)":$/\1/p' "$WORK/list.txt" | tr '\n' ' ')"
echo "moved:         $((bytes_written >> 20)) MiB written, $((bytes_read >> 20)) MiB read through the relay"
echo "throughput:    nbdcopy in $wr MiB/s, out $rd MiB/s (out reads the whole $SIZE_MIB MiB export; nbdcopy defaults, emulated DMA)"
for r in "${results[@]}"; do echo "  $r"; done
echo
echo "Where the kernel nbd driver is loaded (modprobe nbd) and you are root, the same export"
echo "becomes a block device:  nbd-pcie-client -pcie shm:$LINK -N $EXPORT /dev/nbd0"
echo "(then mkfs/mount /dev/nbd0; nbd-pcie-client -d /dev/nbd0 to detach)."
if [ $failures -ne 0 ]; then
    echo "demo: $failures verification(s) FAILED"
    exit 1
fi
echo "demo: all verifications passed"
