# Scenario 2 (guest side): ext4 on /dev/nbd0: mkfs, mount, copy files, umount,
# drop caches, mount, verify checksums, fsck clean. Host side: scenarios/fs.sh.
. /tests/lib.sh

attach /dev/nbd0 disk
step mkfs
run mkfs.ext4 -q -F /dev/nbd0
run mount -t ext4 /dev/nbd0 /mnt

step copy
mkdir -p /mnt/bin /mnt/lib
run cp /bin/busybox /usr/bin/nbdpcie-vmtool /mnt/bin/
run cp -r /lib/modules /mnt/lib/
pattern write /mnt/pattern 0 24M "$vm_seed" sync
(cd /mnt && find . -type f ! -name sums | sort | xargs md5sum) >/tmp/sums || fail "md5sum of the copied files"
cp /tmp/sums /mnt/sums
wc -l </tmp/sums
run umount /mnt

step remount
echo 3 >/proc/sys/vm/drop_caches
run mount -t ext4 -o ro /dev/nbd0 /mnt
(cd /mnt && md5sum -c sums >/tmp/check) || { cat /tmp/check; fail "checksums differ after remount"; }
cmp /mnt/sums /tmp/sums || fail "sums file differs after remount"
pattern verify /mnt/pattern 0 24M "$vm_seed"
run umount /mnt

step fsck
echo 3 >/proc/sys/vm/drop_caches
e2fsck -fn /dev/nbd0 || fail "e2fsck -fn /dev/nbd0 not clean (exit $?)"
detach /dev/nbd0
echo "VMTEST-DETACHED"
