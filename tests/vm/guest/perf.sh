# Scenario 8 (guest side): throughput of /dev/nbd0 over the link against kernel
# nbd over TCP to Debian's nbd-server in the same guest boot (dd with O_DIRECT, 32 MiB;
# fio would add ~80 MB to the initramfs). Prints VMTEST-PERF lines; a benchmark,
# no threshold. Host side: scenarios/perf.sh.
. /tests/lib.sh
M=1048576
# 32 MiB sequential and 1024 4 KiB reads: under TCG this takes about a
# minute for both paths, enough for the ratios to settle.
LEN=$((32 * M))
SMALL=1024
# Port of the in-guest nbd-server: the guest has only its own loopback.
PORT=10900

now_cs() { sed 's/^\([0-9]*\)\.\([0-9]*\) .*/\1\2/' /proc/uptime; }
# measure NAME DEV: sequential 1 MiB writes and reads, then 4 KiB reads (QD1).
measure() {
    local name=$1 dev=$2 t0 t1
    t0=$(now_cs)
    dd if=/tmp/pat of="$dev" bs=1M count=$((LEN / M)) oflag=direct conv=fsync 2>/dev/null || fail "$name: dd write"
    t1=$(now_cs)
    echo "VMTEST-PERF $name seq-write-1M $((LEN * 100 / (t1 - t0 + 1) / M)) MiB/s ($((t1 - t0))0 ms)"
    t0=$(now_cs)
    dd if="$dev" of=/dev/null bs=1M count=$((LEN / M)) iflag=direct 2>/dev/null || fail "$name: dd read"
    t1=$(now_cs)
    echo "VMTEST-PERF $name seq-read-1M $((LEN * 100 / (t1 - t0 + 1) / M)) MiB/s ($((t1 - t0))0 ms)"
    t0=$(now_cs)
    dd if="$dev" of=/dev/null bs=4k count=$SMALL iflag=direct 2>/dev/null || fail "$name: dd read 4k"
    t1=$(now_cs)
    echo "VMTEST-PERF $name read-4k-qd1 $((SMALL * 100 / (t1 - t0 + 1))) IOPS ($((t1 - t0))0 ms)"
    pattern verify "$dev" 0 $LEN "$vm_seed" direct
}

pattern write /tmp/pat 0 $LEN "$vm_seed"

attach /dev/nbd0 disk
measure nbd-pcie /dev/nbd0
detach /dev/nbd0

step nbd-server-tcp
dd if=/dev/zero of=/tmp/disk.img bs=1M count=64 2>/dev/null
mkdir -p /etc/nbd-server
printf '[generic]\n    listenaddr = 127.0.0.1\n    port = %s\n[disk]\n    exportname = /tmp/disk.img\n' $PORT >/etc/nbd-server/config
run nbd-server -C /etc/nbd-server/config -p /run/nbd-server.pid
run nbd-client -N disk 127.0.0.1 $PORT /dev/nbd1
wait_value_nonzero /sys/block/nbd1/size 60 || fail "/dev/nbd1 not attached to the in-guest nbd-server"
measure nbd-tcp /dev/nbd1
run nbd-client -d /dev/nbd1
kill "$(cat /run/nbd-server.pid)"
