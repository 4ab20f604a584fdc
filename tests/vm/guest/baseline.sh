# Baseline (guest side): the kernel nbd path and the guest's tools with a
# stock peer, Debian's nbd-server over TCP inside the guest: attach, O_DIRECT
# pattern round trip, ext4 mkfs/mount/remount/fsck, detach. If this fails the
# environment is broken, not nbd-pcie. Host side: scenarios/baseline.sh.
. /tests/lib.sh
M=1048576
# Port of the in-guest nbd-server: the guest has only its own loopback.
PORT=10900

step nbd-server
run truncate -s $((64 * M)) /tmp/disk.img
mkdir -p /etc/nbd-server
printf '[generic]\n    listenaddr = 127.0.0.1\n    port = %s\n[disk]\n    exportname = /tmp/disk.img\n' $PORT >/etc/nbd-server/config
run nbd-server -C /etc/nbd-server/config -p /run/nbd-server.pid
expect_fail nbd-client -c /dev/nbd0
# The first connection to nbd-server in a TCG guest can take seconds.
run timeout 90 nbd-client -N disk 127.0.0.1 $PORT /dev/nbd0
wait_value_nonzero /sys/block/nbd0/size 30 || fail "/dev/nbd0 not attached"
[ "$(dev_bytes /dev/nbd0)" = $((64 * M)) ] || fail "/dev/nbd0 is $(dev_bytes /dev/nbd0) bytes, expected 64 MiB"
run nbd-client -c /dev/nbd0

step raw
pattern verify /dev/nbd0 0 $((4 * M)) zero direct
pattern write /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct sync
pattern verify /dev/nbd0 $((4 * M)) $((8 * M)) "$vm_seed" direct
pattern verify /tmp/disk.img $((4 * M)) $((8 * M)) "$vm_seed"

step ext4
run mkfs.ext4 -q -F /dev/nbd0
run mount -t ext4 /dev/nbd0 /mnt
pattern write /mnt/pattern 0 4M "$vm_seed" sync
run umount /mnt
echo 3 >/proc/sys/vm/drop_caches
run mount -t ext4 -o ro /dev/nbd0 /mnt
pattern verify /mnt/pattern 0 4M "$vm_seed"
run umount /mnt
run e2fsck -fn /dev/nbd0

step detach
run nbd-client -d /dev/nbd0
wait_value /sys/block/nbd0/size 0 30 || fail "/dev/nbd0 size not 0 after -d"
kill "$(cat /run/nbd-server.pid)"
