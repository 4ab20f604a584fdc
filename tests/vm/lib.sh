# shellcheck shell=bash
# Host side of the nbd-pcie QEMU guest tests: sourced by tests/vm/scenarios/*.sh.
#
# Environment (set by CTest from tests/vm/CMakeLists.txt):
#   VM_KERNEL       the guest kernel (/boot/vmlinuz-KVER)
#   VM_INITRAMFS    the initramfs built by build-initramfs.sh
#   VM_LOG_DIR      where the serial and EP logs are kept
#   VM_TOOL         nbdpcie-vmtool (host copy, for pattern checks)
#   EP_SERVER       nbd-pcie-server, if built (empty otherwise)
#   VM_TIMEOUT      hard limit for the whole guest run in seconds (default 240)
#   VM_BOOT_TIMEOUT seconds the guest's init has to print VMTEST-BOOTED before
#                   the boot counts as hung (default 90; a boot takes 5-20 s)
#
# Per test: /dev/shm/nbdpcie-vm-NAME-PID-{bar,ctl,ram} (link BAR, control
# mailbox, guest RAM) and a temp dir; all removed and every process started
# here killed by PID on exit, pass or fail.
set -uo pipefail

: "${VM_KERNEL:?VM_KERNEL not set}" "${VM_INITRAMFS:?VM_INITRAMFS not set}"
: "${VM_LOG_DIR:?VM_LOG_DIR not set}" "${VM_TOOL:?VM_TOOL not set}"
EP_SERVER=${EP_SERVER:-}
VM_TIMEOUT=${VM_TIMEOUT:-240}
VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT:-90}

# ivshmem BAR2 of the link: a power of two as ivshmem requires. The EP fits
# its layout into the file it is given; 128 MiB holds its default BAR-only
# layout (header, rings and 4 channels of 16 MiB of payload area: 67260416
# bytes) without shrinking it. The file is sparse: only what the link touches
# takes memory.
VM_BAR_SIZE=${VM_BAR_SIZE:-134217728}
# The control mailbox's BAR2: ivshmem's smallest useful size is a page; 64 KiB
# leaves room to grow without changing the guest side (which reads 4 KiB).
VM_CTL_SIZE=65536
# Guest RAM: 1 GiB fits a guest with fio and a 256 MiB tmpfs scratch file and
# stays below the 4 GiB PCI hole, so a guest-physical address is the offset in
# the RAM file (what the host window mode relies on).
VM_MEM=1G

VM_NAME=
VM_ID=
VM_PID=
EP_PID=
DB_PID=
VM_T0=$(date +%s%N)

# vm_log MESSAGE: a host line with the seconds since the test started.
vm_log() {
    local ms=$((($(date +%s%N) - VM_T0) / 1000000))
    printf '[%4d.%03d] HOST: %s\n' $((ms / 1000)) $((ms % 1000)) "$*"
}

# vm_init NAME: names every per-test resource and installs the cleanup trap.
vm_init() {
    VM_NAME=$1
    VM_ID=nbdpcie-vm-$VM_NAME-$$
    VM_BAR=/dev/shm/$VM_ID-bar
    VM_CTL=/dev/shm/$VM_ID-ctl
    VM_RAM=/dev/shm/$VM_ID-ram
    mkdir -p "$VM_LOG_DIR"
    VM_SERIAL=$VM_LOG_DIR/$VM_NAME.serial.log
    EP_LOG=$VM_LOG_DIR/$VM_NAME.ep.log
    VM_WORK=$(mktemp -d "${TMPDIR:-/tmp}/$VM_ID.XXXXXX")
    : >"$VM_SERIAL"
    : >"$EP_LOG"
    : >"$VM_WORK/ctl.txt"
    trap vm_cleanup EXIT
    trap 'vm_log "interrupted"; exit 130' INT TERM
    vm_log "test $VM_NAME: serial log $VM_SERIAL, EP log $EP_LOG, shm $VM_BAR"
}

vm_cleanup() {
    local rc=$?
    [ -n "$VM_PID" ] && vm_kill_pid "$VM_PID" qemu
    [ -n "$EP_PID" ] && vm_kill_pid "$EP_PID" nbd-pcie-server
    [ -n "$DB_PID" ] && vm_doorbell_stop
    rm -f "$VM_BAR" "$VM_CTL" "$VM_RAM"
    [ -n "${VM_WORK:-}" ] && rm -rf "$VM_WORK"
    exit $rc
}

# vm_kill_pid PID WHAT: TERM, up to 5 s grace, then KILL; reaps it.
vm_kill_pid() {
    local pid=$1 i
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null; return 0; }
    kill -TERM "$pid" 2>/dev/null
    for i in $(seq 50); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        vm_log "$2 (pid $pid) ignored SIGTERM, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}

# vm_context: the guest's log lines around the first failure marker (or its
# last lines), and the EP's log tail: printed on every failure.
vm_context() {
    local n
    echo "----- guest serial log ($VM_SERIAL) -----"
    n=$(grep -naE 'VMTEST-FAIL|VMTEST-RESULT: FAIL|Kernel panic|BUG:|Call Trace|Oops' "$VM_SERIAL" | head -n 1 | cut -d: -f1)
    if [ -n "$n" ]; then
        echo "(lines $((n > 30 ? n - 30 : 1))-$((n + 15)) around the first failure at line $n)"
        sed -n "$((n > 30 ? n - 30 : 1)),$((n + 15))p" "$VM_SERIAL"
    else
        echo "(last 40 lines)"
        tail -n 40 "$VM_SERIAL"
    fi
    if [ -s "$EP_LOG" ]; then
        echo "----- EP log ($EP_LOG), last 30 lines -----"
        tail -n 30 "$EP_LOG"
    fi
    echo "-----"
}

# vm_fail MESSAGE: reports, prints the context, exits 1 (the trap cleans up).
vm_fail() {
    vm_log "FAIL: $*"
    vm_context
    exit 1
}

# vm_prepare_shm: the link's BAR and the control mailbox exist before both the
# EP server and QEMU open them. Returns with both zero-filled.
vm_prepare_shm() {
    rm -f "$VM_BAR" "$VM_CTL"
    truncate -s "$VM_BAR_SIZE" "$VM_BAR" || vm_fail "cannot create $VM_BAR"
    truncate -s "$VM_CTL_SIZE" "$VM_CTL" || vm_fail "cannot create $VM_CTL"
}

# Scenarios may set these before vm_start:
#   VM_WITH_LINK=0       leave out the link's ivshmem-plain at 00:02.0 (e.g. a
#                        scenario that puts an ivshmem-doorbell there instead)
#   VM_QEMU_EXTRA=(...)  more QEMU arguments (devices, chardevs)
VM_WITH_LINK=1
VM_QEMU_EXTRA=()

# vm_start [vm_KEY=VALUE...]: boots the guest in the background, running
# /tests/$VM_NAME.sh (or vm_test=OTHER); the words go on the kernel command
# line and are exported to the guest script.
vm_start() {
    VM_START_ARGS=("$@")
    VM_RELAUNCHED=${VM_RELAUNCHED:-0}
    local append="console=ttyS0 panic=-1 quiet vm_test=$VM_NAME vm_bar_size=$VM_BAR_SIZE $*"
    local link=()
    [ -f "$VM_BAR" ] || vm_prepare_shm
    if [ "$VM_WITH_LINK" = 1 ]; then
        link=(-object "memory-backend-file,id=linkbar,size=$VM_BAR_SIZE,mem-path=$VM_BAR,share=on"
              -device ivshmem-plain,memdev=linkbar,addr=0x2)
    fi
    rm -f "$VM_RAM"
    vm_log "booting guest: $append"
    # timeout(1) is a backstop: if this script is killed without running its
    # trap, QEMU still ends shortly after the harness's own deadline.
    timeout --kill-after=5 $((VM_TIMEOUT + 20)) \
    qemu-system-x86_64 -accel tcg,thread=multi -cpu max -smp 2 -m "$VM_MEM" \
        -display none -monitor none -nodefaults -no-reboot -nic none \
        -serial "file:$VM_SERIAL" \
        -object "memory-backend-file,id=ram,size=$VM_MEM,mem-path=$VM_RAM,share=on" \
        -machine pc,memory-backend=ram \
        "${link[@]}" \
        -object "memory-backend-file,id=ctlbar,size=$VM_CTL_SIZE,mem-path=$VM_CTL,share=on" \
        -device ivshmem-plain,memdev=ctlbar,addr=0x10 \
        "${VM_QEMU_EXTRA[@]}" \
        -kernel "$VM_KERNEL" -initrd "$VM_INITRAMFS" -append "$append" \
        </dev/null >"$VM_WORK/qemu.out" 2>&1 &
    VM_PID=$!
    VM_BOOT_DEADLINE=$(($(date +%s) + VM_BOOT_TIMEOUT))
    # A second boot (vm_relaunch) gets the whole VM_TIMEOUT again.
    VM_DEADLINE=$(($(date +%s) + VM_TIMEOUT))
}

# vm_relaunch WHY: boots the guest once more after QEMU crashed or hung before
# the guest's init printed VMTEST-BOOTED. Until then no test code has run and
# the link is untouched, so the scenario can go on as if nothing happened; a
# second failed boot fails the test.
vm_relaunch() {
    [ "$VM_RELAUNCHED" = 0 ] || vm_fail "$1, for the second time"
    vm_log "$1; booting it once more"
    cp -f "$VM_SERIAL" "$VM_SERIAL.boot1" 2>/dev/null
    VM_RELAUNCHED=1
    vm_start "${VM_START_ARGS[@]}"
}

# vm_wait MARKER [SECS]: waits for a line containing MARKER in the serial log.
# Fails the test if the guest reports a failure, exits, or time runs out.
vm_wait() {
    local marker=$1 secs=${2:-120} end
    end=$(($(date +%s) + secs))
    if [ "$end" -gt "$VM_DEADLINE" ]; then
        end=$VM_DEADLINE
        secs=$((end - $(date +%s)))
    fi
    while :; do
        grep -qaF -- "$marker" "$VM_SERIAL" && return 0
        grep -qaE 'VMTEST-FAIL|VMTEST-RESULT: FAIL|Kernel panic' "$VM_SERIAL" &&
            vm_fail "guest failed while the host waited for '$marker'"
        if ! kill -0 "$VM_PID" 2>/dev/null; then
            grep -qaF -- "$marker" "$VM_SERIAL" && return 0
            wait "$VM_PID"
            local rc=$?
            VM_PID=
            # QEMU's TCG itself occasionally dies by a signal while the guest
            # kernel boots (seen: SIGSEGV, rc 139, empty serial log).
            if [ "$rc" -gt 128 ] && [ "$rc" -ne 137 ] &&
               ! grep -qaF VMTEST-BOOTED "$VM_SERIAL"; then
                vm_relaunch "qemu died by signal $((rc - 128)) before the guest booted ($(tr '\n' ' ' <"$VM_WORK/qemu.out"))"
                end=$(($(date +%s) + secs))
                [ "$end" -gt "$VM_DEADLINE" ] && end=$VM_DEADLINE
                continue
            fi
            vm_fail "guest exited (qemu rc $rc: $(tr '\n' ' ' <"$VM_WORK/qemu.out")) before '$marker'"
        fi
        # Or it hangs there, printing nothing (seen once in CI: an empty
        # serial log after 180 s, where a boot takes 5-20 s).
        if [ "$(date +%s)" -ge "$VM_BOOT_DEADLINE" ] && ! grep -qaF VMTEST-BOOTED "$VM_SERIAL"; then
            local seen="an empty serial log"
            grep -qaF VMTEST-INIT "$VM_SERIAL" && seen="VMTEST-INIT but not VMTEST-BOOTED (init ran, module loading did not finish)"
            vm_kill_pid "$VM_PID" qemu
            VM_PID=
            vm_relaunch "the guest did not boot within VM_BOOT_TIMEOUT=${VM_BOOT_TIMEOUT}s ($seen)"
            end=$(($(date +%s) + secs))
            [ "$end" -gt "$VM_DEADLINE" ] && end=$VM_DEADLINE
            continue
        fi
        [ "$(date +%s)" -ge "$end" ] && vm_fail "timeout: no '$marker' from the guest within ${secs}s (whole guest run limited to VM_TIMEOUT=${VM_TIMEOUT}s)"
        sleep 0.2
    done
}

# vm_finish: waits for the guest's final verdict and QEMU's exit.
vm_finish() {
    vm_wait "VMTEST-RESULT: PASS" $((VM_DEADLINE - $(date +%s)))
    local i rc
    for i in $(seq 300); do
        kill -0 "$VM_PID" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$VM_PID" 2>/dev/null; then
        vm_fail "guest printed its result but did not power off within 30 s"
    fi
    wait "$VM_PID"
    rc=$?
    VM_PID=
    [ $rc -eq 0 ] || vm_fail "qemu exited with rc $rc after the guest passed: $(cat "$VM_WORK/qemu.out")"
    vm_log "guest passed: $(grep -aoE 'VMTEST-RESULT: PASS.*' "$VM_SERIAL" | tr -d '\r')"
}

# vm_marker_value PREFIX: the rest of the first serial line starting with PREFIX.
vm_marker_value() {
    grep -aoE -- "$1.*" "$VM_SERIAL" | head -n 1 | sed "s/^$1//" | tr -d '\r'
}

# vm_ctl_send KEY[=VALUE]: adds a line to the control mailbox the guest polls
# (ctl_wait in guest/lib.sh). The mailbox is rewritten whole; the guest only
# accepts complete lines, so a torn read just shows an older state.
vm_ctl_send() {
    printf '%s\n' "$1" >>"$VM_WORK/ctl.txt"
    [ "$(stat -c %s "$VM_WORK/ctl.txt")" -lt 4096 ] || vm_fail "control mailbox over 4096 bytes"
    dd if="$VM_WORK/ctl.txt" of="$VM_CTL" conv=notrunc status=none || vm_fail "cannot write $VM_CTL"
}

# shm_read FILE OFFSET LEN: the NUL-terminated text at OFFSET of a shm file.
shm_read() {
    dd if="$1" bs=1 skip="$2" count="$3" status=none | tr -d '\0'
}

# shm_write FILE OFFSET TEXT: TEXT and a NUL at OFFSET.
shm_write() {
    printf '%s\0' "$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

# ep_require: the scenario needs the EP server binary.
ep_require() {
    if [ -z "$EP_SERVER" ] || [ ! -x "$EP_SERVER" ]; then
        vm_log "FAIL: nbd-pcie-server is not built (EP_SERVER='$EP_SERVER'); this scenario needs it"
        exit 1
    fi
}

# ep_start ARGS...: starts nbd-pcie-server in the foreground mode (-d) in the
# background, output appended to the EP log; waits until it is still alive
# after a moment (a bad config fails fast).
ep_start() {
    ep_require
    vm_log "starting EP: $EP_SERVER $*"
    echo "=== $(date -u +%T) $EP_SERVER $*" >>"$EP_LOG"
    "$EP_SERVER" "$@" >>"$EP_LOG" 2>&1 </dev/null &
    EP_PID=$!
    sleep 0.5
    kill -0 "$EP_PID" 2>/dev/null || { wait "$EP_PID"; local rc=$?; EP_PID=; vm_fail "EP server exited at start (rc $rc)"; }
}

# ep_kill SIGNAL: signals the EP server and reaps it.
ep_kill() {
    [ -n "$EP_PID" ] || return 0
    vm_log "EP: kill -$1 $EP_PID"
    kill "-$1" "$EP_PID" 2>/dev/null
    wait "$EP_PID" 2>/dev/null
    EP_PID=
}

# ep_config FILE [generic lines...]: starts a config file with the link.
ep_config() {
    local f=$1
    shift
    {
        echo "[generic]"
        echo "    pcie = shm:bar=$VM_BAR"
        local l
        for l in "$@"; do echo "    $l"; done
    } >"$f"
}

# ep_export FILE NAME [lines...]: adds an export section to a config file.
ep_export() {
    local f=$1 name=$2 l
    shift 2
    {
        echo "[$name]"
        for l in "$@"; do echo "    $l"; done
    } >>"$f"
}

# host_verify FILE OFFSET LENGTH SEED: checks a backing file holds the pattern.
host_verify() {
    "$VM_TOOL" pattern verify "$@" >/dev/null || vm_fail "EP backing file $1 does not hold pattern seed $4 at offset $2 length $3"
}

# vm_wait_count PATTERN N [SECS]: waits until N serial lines match the
# extended regex PATTERN.
vm_wait_count() {
    local pat=$1 n=$2 secs=${3:-120} end
    end=$(($(date +%s) + secs))
    while [ "$(grep -caE -- "$pat" "$VM_SERIAL")" -lt "$n" ]; do
        grep -qaE 'VMTEST-FAIL|VMTEST-RESULT: FAIL|Kernel panic' "$VM_SERIAL" &&
            vm_fail "guest failed while the host waited for $n lines matching '$pat'"
        kill -0 "$VM_PID" 2>/dev/null || vm_fail "guest exited before $n lines matching '$pat'"
        [ "$(date +%s)" -ge "$end" ] && vm_fail "timeout: fewer than $n lines matching '$pat' within ${secs}s"
        sleep 0.1
    done
}

# vm_random_seed: a fresh pattern seed (a random unsigned 32-bit number).
vm_random_seed() { od -An -N4 -tu4 /dev/urandom | tr -d ' '; }

# ep_serve_disk DISK [generic lines...]: the link's shm files, a config with
# one export "disk" backed by DISK, and the EP server started on it.
ep_serve_disk() {
    local disk=$1
    shift
    vm_prepare_shm
    ep_config "$VM_WORK/ep.conf" "$@"
    ep_export "$VM_WORK/ep.conf" disk "exportname = $disk"
    ep_start -d -C "$VM_WORK/ep.conf"
}

# vm_two_exports: the host side of scenario 4 (vm-exports, vm-exports-local):
# exports alpha (32 MiB) and beta (48 MiB), each pre-filled with its own
# pattern, over one link; boots the guest with the seeds vm_seed_a/_b (the
# host's data) and _c/_d (the guest's writes to alpha at 8 MiB and beta at
# 16 MiB, 8 MiB each) and checks each backing file got exactly its own writes.
vm_two_exports() {
    local M=1048576 s sa sb sc sd a=$VM_WORK/alpha.img b=$VM_WORK/beta.img
    s=$(vm_random_seed)
    sa=$s sb=$((s + 1)) sc=$((s + 2)) sd=$((s + 3))
    truncate -s $((32 * M)) "$a"
    "$VM_TOOL" pattern write "$a" 0 $((32 * M)) "$sa" >/dev/null || vm_fail "prefill alpha"
    truncate -s $((48 * M)) "$b"
    "$VM_TOOL" pattern write "$b" 0 $((48 * M)) "$sb" >/dev/null || vm_fail "prefill beta"

    vm_prepare_shm
    ep_config "$VM_WORK/ep.conf" "allowlist = true"
    ep_export "$VM_WORK/ep.conf" alpha "exportname = $a"
    ep_export "$VM_WORK/ep.conf" beta "exportname = $b"
    ep_start -d -C "$VM_WORK/ep.conf"
    vm_start vm_seed_a="$sa" vm_seed_b="$sb" vm_seed_c="$sc" vm_seed_d="$sd"
    vm_finish

    host_verify "$a" 0 $((8 * M)) "$sa"
    host_verify "$a" $((8 * M)) $((8 * M)) "$sc"
    host_verify "$a" $((16 * M)) $((16 * M)) "$sa"
    host_verify "$b" 0 $((16 * M)) "$sb"
    host_verify "$b" $((16 * M)) $((8 * M)) "$sd"
    host_verify "$b" $((24 * M)) $((24 * M)) "$sb"
    vm_log "PASS: each backing file holds exactly its own export's writes"
}

# The ivshmem-doorbell device of vm-kmod-host and vm-hostwin: its shared
# memory DB_SHM and its server (KMOD_DOORBELL, pid DB_PID) on DB_SOCK,
# stdin on fd 7; vm_cleanup stops it.

# vm_doorbell_shm SIZE: creates the device's shared memory DB_SHM of SIZE
# bytes (and names DB_SOCK).
vm_doorbell_shm() {
    DB_SHM=/dev/shm/$VM_ID-db
    DB_SOCK=$VM_WORK/db.sock
    rm -f "$DB_SHM"
    truncate -s "$1" "$DB_SHM" || vm_fail "cannot create $DB_SHM"
}

# vm_doorbell_start VECTORS: starts the doorbell server with VECTORS vectors
# on DB_SHM; returns once it listens.
vm_doorbell_start() {
    mkfifo "$VM_WORK/db.in"
    "$KMOD_DOORBELL" "$DB_SOCK" "$DB_SHM" "$1" <"$VM_WORK/db.in" >"$VM_WORK/db.out" 2>&1 &
    DB_PID=$!
    exec 7>"$VM_WORK/db.in"
    for _ in $(seq 100); do
        grep -q LISTENING "$VM_WORK/db.out" && return 0
        kill -0 "$DB_PID" 2>/dev/null || vm_fail "ivshmem-doorbell exited: $(cat "$VM_WORK/db.out")"
        sleep 0.1
    done
    vm_fail "ivshmem-doorbell not listening after 10 s"
}

# vm_doorbell_stop: closes its stdin, stops the doorbell server, removes DB_SHM.
vm_doorbell_stop() {
    { exec 7>&-; } 2>/dev/null
    [ -n "$DB_PID" ] && vm_kill_pid "$DB_PID" ivshmem-doorbell
    DB_PID=
    [ -n "${DB_SHM:-}" ] && rm -f "$DB_SHM"
}

# vm_kmod_overlay [SRC DEST]...: builds nbd-pcie-host.ko against the guest
# kernel's headers (vermagic must match it) and appends it, with each SRC
# file at DEST, to the guest's initramfs as a second cpio archive (the
# kernel unpacks concatenated archives); VM_INITRAMFS names the result.
vm_kmod_overlay() {
    local kdir=/usr/src/linux-headers-${VM_KERNEL#/boot/vmlinuz-} ov=$VM_WORK/overlay src
    src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
    vm_log "building the module into $VM_WORK/modules"
    sh "$src/tests/kmod/build-modules.sh" "$src" "$VM_WORK/modules" "$kdir" >"$VM_WORK/build.log" 2>&1 ||
        { cat "$VM_WORK/build.log"; vm_fail "module build failed"; }
    mkdir -p "$ov/lib/modules/extra"
    cp "$VM_WORK/modules/tree/kmod/nbd-pcie-host.ko" "$ov/lib/modules/extra/"
    while [ $# -ge 2 ]; do
        mkdir -p "$ov/$(dirname "$2")"
        cp "$1" "$ov/$2"
        shift 2
    done
    (cd "$ov" && find . | cpio -o -H newc --quiet | gzip -1) >"$VM_WORK/overlay.cpio.gz" ||
        vm_fail "cannot pack the overlay initramfs"
    cat "$VM_INITRAMFS" "$VM_WORK/overlay.cpio.gz" >"$VM_WORK/initramfs.cpio.gz"
    VM_INITRAMFS=$VM_WORK/initramfs.cpio.gz
}
