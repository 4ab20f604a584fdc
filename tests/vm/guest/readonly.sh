# Scenario 3 (guest side): a read-only export: /dev/nbd0 is read-only, O_DIRECT
# writes fail, mount -o ro works and shows the host's files. Then a writable
# export attached with the client's -R: read-only all the same. Host side:
# scenarios/readonly.sh.
. /tests/lib.sh

attach /dev/nbd0 disk
step readonly
[ "$(cat /sys/block/nbd0/ro)" = 1 ] || fail "/sys/block/nbd0/ro is $(cat /sys/block/nbd0/ro), expected 1 for a read-only export"
[ "$(blockdev --getro /dev/nbd0)" = 1 ] || fail "blockdev --getro /dev/nbd0 says writable"
expect_fail nbdpcie-vmtool pattern write /dev/nbd0 0 4096 1 direct
expect_fail nbdpcie-vmtool pattern write /dev/nbd0 1048576 65536 1 direct sync

step mount-ro
run mount -t ext4 -o ro /dev/nbd0 /mnt
pattern verify /mnt/pattern 0 4M "$vm_seed"
[ "$(cat /mnt/hello)" = "$vm_token" ] || fail "/mnt/hello holds '$(cat /mnt/hello)', the host wrote '$vm_token'"
expect_fail touch /mnt/new-file
run umount /mnt
detach /dev/nbd0

step client-readonly
attach /dev/nbd1 rw -R
[ "$(cat /sys/block/nbd1/ro)" = 1 ] || fail "/sys/block/nbd1/ro is $(cat /sys/block/nbd1/ro) with -R, expected 1"
pattern verify /dev/nbd1 0 1M "$vm_seed" direct
expect_fail nbdpcie-vmtool pattern write /dev/nbd1 0 4096 1 direct sync
detach /dev/nbd1
