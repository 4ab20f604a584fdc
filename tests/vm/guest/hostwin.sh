# hostwin scenario (guest side): nbd-pcie-client in host-window mode through
# the host module nbd-pcie-host bound to an ivshmem-doorbell device: attach,
# O_DIRECT pattern write/read, ext4 round trip, rmmod refused while the
# client uses the device, EP restart survived with -p, detach, rmmod; then
# the module without a window (BAR-only through it). Host side:
# scenarios/hostwin.sh.
. /tests/lib.sh
M=1048576
DB_BDF=0000:00:03.0
SYS=/sys/bus/pci/devices/$DB_BDF
HLINK=pci:$DB_BDF

attr() { cat "$SYS/$1" 2>/dev/null; }
client_pid() { pidof nbd-pcie-client; }
# detach_and_wait DEV: detach; the client process must be gone within 10 s.
detach_and_wait() {
    local i=0
    detach "$1"
    while client_pid >/dev/null; do
        i=$((i + 1))
        [ $i -gt 100 ] && fail "nbd-pcie-client still running 10 s after detach"
        sleep 0.1
    done
}
# CPU time (user + system, clock ticks) of a process
cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
# uptime in centiseconds (= clock ticks at USER_HZ 100)
now_cs() { sed 's/^\([0-9]*\)\.\([0-9]*\) .*/\1\2/' /proc/uptime; }

step load
run insmod /lib/modules/extra/nbd-pcie-host.ko win_size="$vm_win_size"
echo nbd-pcie-host >"$SYS/driver_override" || fail "cannot set driver_override"
echo "$DB_BDF" >/sys/bus/pci/drivers_probe || fail "drivers_probe of $DB_BDF failed"
[ "$(attr chardev)" = nbd-pcie-host0 ] || fail "chardev of $DB_BDF is '$(attr chardev)', expected nbd-pcie-host0"
[ "$(attr win_size)" = "$vm_win_size" ] || fail "win_size '$(attr win_size)', expected $vm_win_size"
[ "$(attr irq_vectors)" = "$vm_vectors" ] || fail "irq_vectors '$(attr irq_vectors)', expected $vm_vectors"
bus=$(attr win_bus_addr)
echo "VMTEST-HOSTWIN-BUS $bus"

step irq
# The host rings each vector once with the transport's ivshmem client (the
# EP's code path): each arrives as one MSI-X interrupt.
[ "$(attr irq_count)" = 0 ] || fail "irq_count $(attr irq_count) before anything rang"
echo "VMTEST-HOSTWIN-IRQ-READY"
ctl_wait rung 120 >/dev/null
wait_value "$SYS/irq_count" "$vm_vectors" 10 ||
    fail "irq_count $(attr irq_count) 10 s after the host rang $vm_vectors vectors once each"

step attach
ctl_wait ep-up 120 >/dev/null
irq0=$(attr irq_count)
nbd-pcie-client -pcie "$HLINK" -N disk -p /dev/nbd0 >/tmp/attach.log 2>&1 ||
    { cat /tmp/attach.log; fail "nbd-pcie-client -pcie $HLINK -N disk -p /dev/nbd0 failed"; }
cat /tmp/attach.log
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 size still 0 after attach"
[ "$(dev_bytes /dev/nbd0)" = "$vm_size" ] || fail "/dev/nbd0 is $(dev_bytes /dev/nbd0) bytes, export is $vm_size"
# The one log line saying which mode and why.
grep -q "over $HLINK (host window of [0-9]* bytes at bus $bus; payload areas shrunk to fit" /tmp/attach.log ||
    fail "the client did not report host-window mode at bus $bus with shrunk payload areas"
grep -q "through /dev/nbd-pcie-host0 (nbd-pcie-host), $vm_vectors interrupt vectors, [0-9]* ch, sleeps on the EP's interrupts)" /tmp/attach.log ||
    fail "the client did not report the module's device, $vm_vectors vectors and sleeping on interrupts"
pid=$(client_pid) || fail "no nbd-pcie-client process serves /dev/nbd0"
cpu0=$(cpu_ticks "$pid")
t0_cs=$(now_cs)

step write
pattern verify /dev/nbd0 0 4M zero direct
pattern verify /dev/nbd0 $((12 * M)) $M zero direct
pattern write /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct sync
# last: the read-back, so that the payload areas hold pattern data (not the
# zeros of a read of unwritten blocks) when the host looks at them
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct
echo "VMTEST-HOSTWIN-WRITTEN"
ack=$(ctl_wait host-checked 120)
[ "$ack" = ok ] || fail "host check of the window said '$ack'"

step in-use
# The client holds /dev/nbd-pcie-host0 open and mapped: unloading the module
# under it is refused, and the device keeps working.
expect_fail rmmod nbd_pcie_host
grep -q '^nbd_pcie_host ' /proc/modules || fail "the module unloaded while nbd-pcie-client used it"
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct

step ep-restart
# The host kills the EP (SIGKILL) and restarts it 2 s later; with -p the
# client waits for it, attaches again (the module's window re-published)
# and the kernel's requests go on. Same client process, module still held.
echo "VMTEST-HOSTWIN-KILL-EP"
ctl_wait ep-restarted 120 >/dev/null
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct
pattern write /dev/nbd0 $((20 * M)) $((2 * M)) "$vm_seed" direct sync
pattern verify /dev/nbd0 $((20 * M)) $((2 * M)) "$vm_seed" direct
[ "$(client_pid)" = "$pid" ] || fail "nbd-pcie-client pid $(client_pid) after the EP restart, was $pid"

step perf
# Figures only (no threshold), comparable with vm-perf's BAR-only ones:
# O_DIRECT 1 MiB writes and reads, then 4 KiB reads at QD1, 16 MiB.
LEN=$((16 * M))
SMALL=512
pattern write /tmp/pat 0 $LEN "$vm_seed"
t0=$(now_cs)
dd if=/tmp/pat of=/dev/nbd0 bs=1M count=$((LEN / M)) oflag=direct conv=fsync 2>/dev/null || fail "perf: dd write"
t1=$(now_cs)
echo "VMTEST-PERF hostwin seq-write-1M $((LEN * 100 / (t1 - t0 + 1) / M)) MiB/s ($((t1 - t0))0 ms)"
t0=$(now_cs)
dd if=/dev/nbd0 of=/dev/null bs=1M count=$((LEN / M)) iflag=direct 2>/dev/null || fail "perf: dd read"
t1=$(now_cs)
echo "VMTEST-PERF hostwin seq-read-1M $((LEN * 100 / (t1 - t0 + 1) / M)) MiB/s ($((t1 - t0))0 ms)"
t0=$(now_cs)
dd if=/dev/nbd0 of=/dev/null bs=4k count=$SMALL iflag=direct 2>/dev/null || fail "perf: dd read 4k"
t1=$(now_cs)
echo "VMTEST-PERF hostwin read-4k-qd1 $((SMALL * 100 / (t1 - t0 + 1))) IOPS ($((t1 - t0))0 ms)"
pattern verify /dev/nbd0 0 $LEN "$vm_seed" direct
rm -f /tmp/pat

step fs
run mkfs.ext4 -q -F /dev/nbd0
run mount -t ext4 /dev/nbd0 /mnt
mkdir -p /mnt/bin /mnt/lib
run cp /bin/busybox /usr/bin/nbdpcie-vmtool /mnt/bin/
run cp -r /lib/modules /mnt/lib/
pattern write /mnt/pattern 0 16M "$vm_seed" sync
(cd /mnt && find . -type f ! -name sums | sort | xargs md5sum) >/tmp/sums || fail "md5sum of the copied files"
cp /tmp/sums /mnt/sums
run umount /mnt
echo 3 >/proc/sys/vm/drop_caches
run mount -t ext4 -o ro /dev/nbd0 /mnt
(cd /mnt && md5sum -c sums >/tmp/check) || { cat /tmp/check; fail "checksums differ after remount"; }
pattern verify /mnt/pattern 0 16M "$vm_seed"
run umount /mnt
echo 3 >/proc/sys/vm/drop_caches
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn /dev/nbd0 not clean (exit $?)"

step stats
# The client sleeps on the EP's MSI-X instead of polling: the EP rang it
# (each ring a completion or stream bytes it slept for), and it used well
# under the CPU a poller takes (a polling client runs flat out: about 100
# ticks per second of wall time; 100 ticks = 1 s of CPU).
cpu1=$(cpu_ticks "$pid")
irq1=$(attr irq_count)
t1_cs=$(now_cs)
cpu=$((cpu1 - cpu0))
wall=$((t1_cs - t0_cs))
irqs=$((irq1 - irq0))
echo "VMTEST-HOSTWIN-STATS client_cpu_ticks=$cpu wall_ticks=$wall irq_count=$irqs uptime=$(uptime_s)"
[ "$irqs" -ge 32 ] || fail "only $irqs interrupts while the client served the whole run: it does not sleep on them"
[ $((cpu * 4)) -lt $((wall * 3)) ] ||
    fail "the client used $cpu ticks of CPU in $wall ticks of wall time (>= 3/4): it polls instead of sleeping"

detach_and_wait /dev/nbd0

step unload
run rmmod nbd_pcie_host
! grep -q '^nbd_pcie_host ' /proc/modules || fail "nbd_pcie_host still loaded after rmmod"

step no-window
# The module without a window (win_size=0, as when its coherent allocation
# fails): the client maps the BAR through it and runs BAR-only, still
# sleeping on the interrupts; the filesystem reads back read-only.
run insmod /lib/modules/extra/nbd-pcie-host.ko win_size=0
[ "$(attr chardev)" = nbd-pcie-host0 ] || fail "$DB_BDF not bound again after insmod (driver_override)"
[ "$(attr win_size)" = 0 ] || fail "win_size '$(attr win_size)' with win_size=0"
nbd-pcie-client -pcie "$HLINK" -N disk /dev/nbd0 >/tmp/attach0.log 2>&1 ||
    { cat /tmp/attach0.log; fail "nbd-pcie-client without a window failed"; }
cat /tmp/attach0.log
grep -q "over $HLINK (BAR-only; through /dev/nbd-pcie-host0 (nbd-pcie-host), $vm_vectors interrupt vectors, no window (.*), [0-9]* ch, sleeps on the EP's interrupts)" /tmp/attach0.log ||
    fail "the client did not report BAR-only through the module without a window"
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 size still 0 after attach"
irq0=$(attr irq_count)
run mount -t ext4 -o ro /dev/nbd0 /mnt
(cd /mnt && md5sum -c sums >/tmp/check) || { cat /tmp/check; fail "checksums differ in BAR-only mode"; }
pattern verify /mnt/pattern 0 16M "$vm_seed"
run umount /mnt
[ "$(attr irq_count)" -gt "$irq0" ] || fail "no interrupt in BAR-only mode: the client did not sleep on them"
detach_and_wait /dev/nbd0
run rmmod nbd_pcie_host
if dmesg | grep -E 'BUG:|WARNING:|Oops|Call Trace'; then
    fail "the kernel logged a warning or bug during the scenario"
fi
dmesg | grep -E 'nbd-pcie-host|nbd_pcie_host' | tail -n 4
