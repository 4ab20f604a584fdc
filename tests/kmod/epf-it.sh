#!/usr/bin/env bash
# epf-it.sh SCENARIO: the real nbd-pcie-server on `epf:/dev/nbd-pcie-ep0`
# under the pci-epf-nbd stand-in (LD_PRELOAD libnpk-epf-standin.so, see
# epf-standin.h), nbd-pcie-client on the stand-in's BAR file with the shm
# backend (BAR-only: the host polls the BAR), and real NBD clients through
# the client's unix socket. Needs SERVER, CLIENT, STANDIN (the preload
# library) and CTL (epf-standin-ctl). Everything lives in /dev/shm/epf-it-*
# and is removed on exit; processes are stopped by PID.
set -euo pipefail
: "${SERVER:?}" "${CLIENT:?}" "${STANDIN:?}" "${CTL:?}"
name=$1
D=$(mktemp -d "/dev/shm/epf-it-$name-$$-XXXXXX")   # stand-in files (BAR memory)
T=$(mktemp -d "/tmp/epf-it-$name-$$-XXXXXX")       # disks, logs, sockets
PID= CPID=

cleanup() {
    local p
    for p in $CPID $PID; do
        kill -TERM "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$T" "$D"
}
trap cleanup EXIT
# shellcheck source-path=SCRIPTDIR source=../ep-server/it-lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/../ep-server/it-lib.sh"

die() {
    echo "FAIL: $*" >&2
    it_logs
    "$CTL" "$D" 0 counts 2>/dev/null | sed 's/^/  device: /' >&2 || true
    exit 1
}
ok() { echo "ok: $*"; }
for tool in nbdcopy qemu-io nbdinfo; do
    command -v $tool >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

# server ARGS...: nbd-pcie-server with the stand-in preloaded for it alone
server() {
    NPK_STANDIN_DIR=$D LD_PRELOAD=$STANDIN "$SERVER" -d "$@" >"$T/log" 2>&1 &
    PID=$!
    it_wait_ready PID
}
# server_fails ARGS...: the server must exit non-zero at start; its output in $T/log
server_fails() {
    local rc=0
    NPK_STANDIN_DIR=$D LD_PRELOAD=$STANDIN timeout 20 "$SERVER" -d "$@" >"$T/log" 2>&1 || rc=$?
    [ $rc -ne 0 ] && [ $rc -ne 124 ] || die "server exit code $rc, expected a start failure"
}
client() { # client [LINK]: default the BAR file alone (BAR-only)
    "$CLIENT" -n -pcie "${1:-shm:bar=$D/ep0.bar}" -unix "$T/c.sock" >"$T/clog" 2>&1 &
    CPID=$!
    it_wait_socket "$CPID" "$T/c.sock" 200
}
uri() { echo "nbd+unix:///disk?socket=$T/c.sock"; }
# qio QEMU-IO-ARGS...: qemu-io on the export; fails on an error or a pattern mismatch.
qio() {
    qemu-io -f raw "$(uri)" "$@" >"$T/qio" 2>&1 || { cat "$T/qio"; die "qemu-io pattern"; }
    ! grep -q 'Pattern verification failed' "$T/qio" || die "qemu-io verification"
}
count() { "$CTL" "$D" 0 counts | sed -n "s/^$1 //p"; }
wait_log() { # wait_log FILE TEXT: up to 5 s
    for _ in $(seq 100); do grep -qF -- "$2" "$1" && return 0; sleep 0.05; done
    die "$(basename "$1") lacks: $2"
}
roundtrip() { # roundtrip SEED: random data in through the link, back out, compared
    head -c 24M /dev/urandom >"$T/src.$1"
    nbdcopy "$T/src.$1" "$(uri)" || die "nbdcopy to the server"
    nbdcopy "$(uri)" "$T/back.$1" || die "nbdcopy from the server"
    cmp "$T/src.$1" "$T/back.$1" || die "read-back differs from what was written"
    cmp "$T/src.$1" "$T/disk" || die "backing file differs from what was written"
}

truncate -s 24M "$T/disk"
case $name in
rw)  # --pcie epf: on a function without DMA serves BAR-only; nbdcopy and qemu-io round trips
    "$CTL" "$D" 0 create bar_size=16M channels=4 msix=8 dma=none >/dev/null
    server --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "serving pcie link epf:/dev/nbd-pcie-ep0 (BAR-only, 4 ch" "$T/log" || die "link description"
    client
    grep -q "BAR-only" "$T/clog" || die "client not in BAR-only mode"
    roundtrip 1
    qio -c 'write -P 0xa5 4096 1M' -c 'read -P 0xa5 4096 1M' \
        -c 'write -P 0x3c 5000 100k' -c 'read -P 0x3c 5000 100k'
    [ "$(count mmaps)" = 1 ] || die "server mapped the BAR $(count mmaps) times, expected 1"
    [ "$(count mmap_refused)" = 0 ] || die "the stand-in refused a mapping: $(count last_refusal)"
    [ "$(count dma_refused)" = 0 ] || die "the stand-in refused a DMA: $(count last_refusal)"
    # the sleeping host is woken by the EP's MSI-X (the stand-in delivers
    # each one to the host's shm doorbell, as the host module would)
    [ "$(count irq_total)" -gt 0 ] || die "the server raised no interrupt for a sleeping host"
    [ "$(count irq_refused)" = 0 ] || die "the stand-in refused an interrupt: $(count last_refusal)"
    [ -n "$(count irq_msix_1)" ] || die "no MSI-X vector 1 (channel 0) raised"
    ok "nbdcopy 24 MiB and qemu-io patterns through epf:/dev/nbd-pcie-ep0 (BAR-only), $(count irq_total) MSI-X"
    ;;
window)  # a DMA-capable function: the host publishes a window, everything moves by DMA
    "$CTL" "$D" 0 create bar_size=16M channels=4 msix=8 >/dev/null
    server --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "epf:/dev/nbd-pcie-ep0 (host window by DMA offered, 4 ch" "$T/log" || die "link description"
    client "shm:bar=$D/ep0.bar,win=$D/ep0.win,win_base=0x400000"
    grep -q "(host window" "$T/clog" || die "client not in host-window mode"
    roundtrip 5
    qio -c 'write -P 0x5a 1 3' -c 'read -P 0x5a 1 3' \
        -c 'write -P 0x77 8191 100001' -c 'read -P 0x77 8191 100001'
    to=$(count dma_to_host); from=$(count dma_from_host); bytes=$(count dma_bytes)
    [ "$from" -gt 0 ] && [ "$to" -gt 0 ] || die "no DMA in both directions (to $to, from $from)"
    [ "$bytes" -ge $((2 * 24 * 1024 * 1024)) ] || die "DMA moved $bytes bytes, under 2 x 24 MiB"
    [ "$(count dma_refused)" = 0 ] || die "the stand-in refused a DMA: $(count last_refusal)"
    [ "$(count set_window)" = 1 ] || die "SET_WINDOW $(count set_window) times, expected 1"
    ok "host window through DMA: 24 MiB round trip, odd offsets/lengths, $to + $from transfers, $bytes bytes"
    ;;
config-key)  # [generic] pcie = epf:...; channels from the device, payloads fitted to the BAR
    "$CTL" "$D" 0 create bar_size=8M channels=2 msix=0 msi=2 dma=none >/dev/null
    cat >"$T/conf" <<EOF
[generic]
pcie = epf:/dev/nbd-pcie-ep0
[disk]
exportname = $T/disk
EOF
    server -C "$T/conf"
    grep -qF "epf:/dev/nbd-pcie-ep0 (BAR-only, 2 ch, BAR0 link part 8388608 bytes" "$T/log" ||
        die "link description (2 channels from the device, whole 8 MiB BAR without MSI-X)"
    grep -qF "MSI 2 vectors" "$T/log" || die "MSI vectors not reported"
    client
    roundtrip 2
    [ -n "$(count irq_msi_1)" ] || die "no MSI vector 1 raised (channel 0 on a 2-vector MSI function)"
    ok "config key pcie = epf:, 2 channels and MSI from the device, 24 MiB round trip"
    ;;
link-down-up|link-bounce)  # the link drops while connected; the server recovers
    "$CTL" "$D" 0 create bar_size=16M >/dev/null
    server --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    client
    roundtrip 3
    # a connection is open while the link goes away
    qemu-io -f raw "$(uri)" -c 'read -P 0 0 0' >/dev/null 2>&1 || true
    if [ "$name" = link-down-up ]; then
        "$CTL" "$D" 0 link down
        wait_log "$T/log" "link down: PCIe link down"
        wait_log "$T/clog" "EP closed the link"
        "$CTL" "$D" 0 link up
    else
        "$CTL" "$D" 0 link bounce
        wait_log "$T/clog" "link down"
    fi
    # the client of the lost link exits; a new one attaches to the new layout
    for _ in $(seq 100); do kill -0 "$CPID" 2>/dev/null || break; sleep 0.05; done
    kill -0 "$CPID" 2>/dev/null && die "client still running after the link went down"
    wait "$CPID" 2>/dev/null || true
    CPID=
    rm -f "$T/c.sock"
    kill -0 "$PID" 2>/dev/null || die "server exited when the link went down"
    client
    nbdcopy "$(uri)" "$T/back.after" || die "nbdcopy after the link returned"
    cmp "$T/src.3" "$T/back.after" || die "data written before the link loss differs"
    roundtrip 4
    wait_log "$T/log" "host attached"
    ok "$name: server survived, new host generation attached, data intact"
    ;;
bad-api-version)  # a device speaking another API version: a clear error naming it
    "$CTL" "$D" 0 create >/dev/null
    "$CTL" "$D" 0 set api_version=7
    server_fails --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "epf: /dev/nbd-pcie-ep0: module API version 7, this program speaks 1" "$T/log" ||
        die "message does not name the version"
    ok "API version 7 refused: $(grep -F 'API version' "$T/log" | head -n 1)"
    ;;
bar-too-small)  # a BAR too small for the layout: the sizes are named
    "$CTL" "$D" 0 create bar_size=128K msix=0 >/dev/null
    server_fails --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "BAR of 131072 bytes too small for 4 channels" "$T/log" || die "message lacks the sizes"
    "$CTL" "$D" 0 create bar_size=16M >/dev/null
    "$CTL" "$D" 0 set bar_region=4096
    server_fails --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "BAR region size 4096 is not a multiple of 4096 in 8192..1073741824" "$T/log" ||
        die "message lacks the region size and its limits"
    ok "small BARs refused with their sizes"
    ;;
unbound)  # no function, or one not bound to a controller
    server_fails --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "epf: /dev/nbd-pcie-ep0: No such file or directory (is pci-epf-nbd loaded" "$T/log" ||
        die "missing device not explained"
    "$CTL" "$D" 0 create >/dev/null
    "$CTL" "$D" 0 set bound=0
    server_fails --pcie epf:/dev/nbd-pcie-ep0 -N disk "$T/disk"
    grep -qF "not bound to an endpoint controller" "$T/log" || die "unbound function not explained"
    ok "missing and unbound functions explained"
    ;;
*)
    echo "unknown scenario $name" >&2
    exit 2
    ;;
esac
