#!/usr/bin/env bash
# Builds the QEMU guest's initramfs for the nbd-pcie guest tests:
#   busybox-static as the userland, the Debian kernel's nbd module and what an
#   ext4 mount needs (closed over modules.dep, plus crc32c_generic, which ext4
#   loads by name and modules.dep does not list), e2fsprogs, Debian's
#   nbd-client/nbd-server (stock peers for the comparison scenarios), the
#   project's binaries given on the command line with their shared libraries
#   (ldd closure), the guest /init and the guest scenario scripts.
#
# usage: build-initramfs.sh -o OUT.cpio.gz -k KVER [-f] [-m MODULE.ko]... [BINARY...]
#   -o  output file (written atomically)
#   -k  kernel release whose modules go in (/lib/modules/KVER)
#   -f  also include fio and its libraries (~80 MB: only the benchmark needs it)
#   -m  an out-of-tree module (e.g. kmod/'s) copied to /lib/modules/extra/,
#       not loaded by /init: the guest script insmods it
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
out='' kver='' with_fio=0 extra_mods=()
while getopts "o:k:fm:" opt; do
    case $opt in
    o) out=$OPTARG ;;
    k) kver=$OPTARG ;;
    f) with_fio=1 ;;
    m) extra_mods+=("$OPTARG") ;;
    *) echo "usage: $0 -o OUT.cpio.gz -k KVER [-f] [-m MODULE.ko]... [BINARY...]" >&2; exit 2 ;;
    esac
done
shift $((OPTIND - 1))
[ -n "$out" ] && [ -n "$kver" ] || { echo "build-initramfs: -o and -k are required" >&2; exit 2; }
moddir=/lib/modules/$kver
[ -f "$moddir/modules.dep" ] || {
    echo "build-initramfs: $moddir/modules.dep missing: install linux-image-$kver (scripts/install-deps.sh)" >&2
    exit 1
}

root=$(mktemp -d "${out}.root.XXXXXX")
trap 'rm -rf "$root" "$out.tmp.$$"' EXIT
mkdir -p "$root"/{bin,sbin,etc,proc,sys,dev,tmp,run,mnt,root,lib/modules,lib64,usr/bin,usr/sbin,tests}
mkdir -p "$root/var" && ln -s ../run "$root/var/run"
cp /usr/bin/busybox "$root/bin/busybox"

# Modules: loaded by /init in the order of lib/modules/load.list, each after
# the modules it depends on.
order=()
add_module() { # add_module PATH-RELATIVE-TO-MODDIR
    local m=$1 dep
    [ -n "$m" ] && grep -q "^$m:" "$moddir/modules.dep" || { echo "build-initramfs: module '$m' not in $moddir/modules.dep" >&2; exit 1; }
    for dep in $(grep "^$m:" "$moddir/modules.dep" | cut -d: -f2-); do add_module "$dep"; done
    [[ " ${order[*]-} " == *" $m "* ]] || order+=("$m")
}
for m in kernel/drivers/block/nbd kernel/crypto/crc32c_generic kernel/fs/ext4/ext4; do
    add_module "$(grep -oE "^$m\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | tr -d :)"
done
# busybox insmod takes plain .ko files: compressed modules (a later Debian
# kernel may ship them) are unpacked on the way in.
for m in "${order[@]}"; do
    f=${m##*/}
    case $f in
    *.ko) cp "$moddir/$m" "$root/lib/modules/$f" ;;
    *.ko.xz) f=${f%.xz}; xz -dc "$moddir/$m" >"$root/lib/modules/$f" ;;
    *.ko.zst) f=${f%.zst}; zstd -qdc "$moddir/$m" >"$root/lib/modules/$f" ;;
    *.ko.gz) f=${f%.gz}; gzip -dc "$moddir/$m" >"$root/lib/modules/$f" ;;
    *) echo "build-initramfs: module $m: unknown format" >&2; exit 1 ;;
    esac
    echo "$f" >>"$root/lib/modules/load.list"
done

mkdir -p "$root/lib/modules/extra"
for m in "${extra_mods[@]}"; do
    [ -f "$m" ] || { echo "build-initramfs: module $m missing" >&2; exit 1; }
    cp "$m" "$root/lib/modules/extra/"
done

# Dynamic executables and their libraries, at the same paths as on the host.
copy_with_libs() { # copy_with_libs SRC DEST-IN-ROOT
    local src=$1 dst=$2 lib
    mkdir -p "$root$(dirname "$dst")"
    cp -L "$src" "$root$dst"
    for lib in $(ldd "$src" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'); do
        [ -e "$root$lib" ] && continue
        mkdir -p "$root$(dirname "$lib")"
        cp -L "$lib" "$root$lib"
    done
}
for b in /sbin/mke2fs /sbin/e2fsck /usr/sbin/nbd-client /usr/bin/nbd-server; do
    [ -x "$b" ] || { echo "build-initramfs: $b missing (scripts/install-deps.sh)" >&2; exit 1; }
    copy_with_libs "$b" "$b"
done
ln -s mke2fs "$root/sbin/mkfs.ext4"
ln -s e2fsck "$root/sbin/fsck.ext4"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"
if [ "$with_fio" = 1 ]; then
    [ -x /usr/bin/fio ] || { echo "build-initramfs: /usr/bin/fio missing (scripts/install-deps.sh)" >&2; exit 1; }
    copy_with_libs /usr/bin/fio /usr/bin/fio
fi
# The project's binaries (from the CMake build tree) go to /usr/bin.
for b in "$@"; do
    [ -x "$b" ] || { echo "build-initramfs: $b is not an executable" >&2; exit 1; }
    copy_with_libs "$b" "/usr/bin/$(basename "$b")"
done

cp "$here/guest/init" "$root/init"
cp "$here"/guest/*.sh "$root/tests/"
chmod 0755 "$root/init"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"

(cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet --reproducible | gzip -1) >"$out.tmp.$$"
mv "$out.tmp.$$" "$out"
echo "build-initramfs: $out ($(du -h "$out" | cut -f1)), modules: ${order[*]##*/}"
