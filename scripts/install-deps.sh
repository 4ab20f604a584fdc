#!/usr/bin/env bash
# Installs every Debian 12 package that nbd-pcie's build, tests, guest tests and
# benchmarks need. Idempotent: runs `apt-get update` and `apt-get install` only
# when something is missing, so a second run on a ready machine takes a second.
set -euo pipefail

# Build tools and libraries (pkg-config names in CMakeLists.txt).
BUILD_PKGS=(build-essential cmake pkg-config clang libclang-rt-14-dev
            liburing-dev libnl-3-dev libnl-genl-3-dev libglib2.0-dev
            libpciaccess-dev libcmocka-dev)
# Real NBD peers the tests and benchmarks use as the other end.
PEER_PKGS=(libnbd-bin qemu-utils nbd-client nbd-server nbdkit fio)
# QEMU guest tests (tests/vm) and kernel module builds (kmod/).
VM_PKGS=(qemu-system-x86 linux-image-amd64 busybox-static cpio kmod e2fsprogs)
# Benchmarks (bench/run): plots, fio JSON.
BENCH_PKGS=(gnuplot-nox jq)

ALL=("${BUILD_PKGS[@]}" "${PEER_PKGS[@]}" "${VM_PKGS[@]}" "${BENCH_PKGS[@]}")

missing() {
    local p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' \
            || printf '%s\n' "$p"
    done
}

SUDO=
if [ "$(id -u)" -ne 0 ]; then SUDO=sudo; fi
export DEBIAN_FRONTEND=noninteractive
updated=0
install() {
    [ $# -gt 0 ] || return 0
    echo "install-deps: installing: $*"
    if [ "$updated" -eq 0 ]; then $SUDO apt-get update -qq; updated=1; fi
    $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

mapfile -t need < <(missing "${ALL[@]}")
install "${need[@]}"

# Kernel headers must match the installed image exactly (the linux-headers-amd64
# metapackage can point at a different ABI than linux-image-amd64 on bookworm).
kver=$(ls /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|.*/vmlinuz-||' | sort -V | tail -n 1)
if [ -z "$kver" ]; then
    echo "install-deps: no /boot/vmlinuz-*-amd64 after installing linux-image-amd64" >&2
    exit 1
fi
mapfile -t need < <(missing "linux-headers-$kver")
install "${need[@]}"
echo "install-deps: all packages present (guest kernel $kver)"
