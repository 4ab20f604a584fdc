#!/bin/sh
# Builds kmod/ (nbd-pcie-host.ko, pci-epf-nbd.ko) out of tree with W=1 into
# BUILD_DIR, never into the source tree, and fails on any warning.
# Usage: build-modules.sh SOURCE_ROOT BUILD_DIR [KERNEL_BUILD_DIR]
# Exit 77 (skip) only when no kernel build directory exists at all.
set -u
src=$1
out=$2
# Default: the newest Debian amd64 headers installed (scripts/install-deps.sh
# installs the ones matching the installed image, 6.1.0-56 today).
kdir=${3:-${NBDPCIE_KDIR:-$(ls -d /usr/src/linux-headers-*-amd64 2>/dev/null | sort -V | tail -n 1)}}
kdir=${kdir:-/usr/src/linux-headers-6.1.0-56-amd64}

if [ ! -f "$kdir/Makefile" ]; then
	echo "SKIP: no kernel build directory at $kdir (scripts/install-deps.sh installs linux-headers-\$(kernel release))"
	exit 77
fi

tree=$out/tree
rm -rf "$tree"
mkdir -p "$tree/transport" || exit 1
cp -r "$src/kmod" "$tree/kmod" || exit 1
cp -r "$src/transport/include" "$tree/transport/include" || exit 1

# Debian's amd64 kernel has no CONFIG_PCI_ENDPOINT, so its Module.symvers
# lacks the endpoint core's exports. On an EP kernel they are built in;
# here they are declared from kmod/epf/epf-core.symbols for modpost only.
symvers=$tree/epf-core.symvers
grep -v '^#' "$src/kmod/epf/epf-core.symbols" | grep . |
	awk '{ printf "0x00000000\t%s\tvmlinux\tEXPORT_SYMBOL_GPL\t\n", $1 }' > "$symvers"

log=$out/build.log
make -C "$kdir" M="$tree/kmod" W=1 NBDPCIE_EPF=m KBUILD_EXTRA_SYMBOLS="$symvers" modules > "$log" 2>&1
rc=$?
cat "$log"
if [ $rc -ne 0 ]; then
	echo "FAIL: make exited with $rc"
	exit 1
fi
if grep -Eiq 'warning|error' "$log"; then
	echo "FAIL: the build printed warnings:"
	grep -Ei 'warning|error' "$log"
	exit 1
fi
for m in nbd-pcie-host pci-epf-nbd; do
	ko=$tree/kmod/$m.ko
	if [ ! -s "$ko" ]; then
		echo "FAIL: $ko was not produced"
		exit 1
	fi
	# The module must carry the kernel's vermagic and the ioctl-facing
	# parameters/aliases documented in docs/kmod.md.
	want=$(sed -n 's/^#define UTS_RELEASE "\(.*\)"/\1/p' "$kdir/include/generated/utsrelease.h")
	got=$(modinfo -F vermagic "$ko" | cut -d' ' -f1)
	if [ "$got" != "$want" ]; then
		echo "FAIL: $m vermagic '$got', expected kernel release '$want'"
		exit 1
	fi
done
if ! modinfo -F alias "$tree/kmod/nbd-pcie-host.ko" | grep -q '^pci:v00001234d00004E42'; then
	echo "FAIL: nbd-pcie-host.ko lacks the alias for the default ID 1234:4e42"
	exit 1
fi
echo "PASS: both modules built against $kdir without warnings"
