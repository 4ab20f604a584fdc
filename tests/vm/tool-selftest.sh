#!/usr/bin/env bash
# vmtool-pattern: the guest tests' data checks are only as good as
# nbdpcie-vmtool's pattern verify; this proves it accepts what was written
# (any sub-range, any alignment) and rejects a single changed byte, another
# seed, and zeros where a pattern should be.
#   usage: tool-selftest.sh PATH-TO-nbdpcie-vmtool
set -uo pipefail
tool=$1
dir=$(mktemp -d "${TMPDIR:-/tmp}/nbdpcie-vmtool-selftest-$$.XXXXXX")
trap 'rm -rf "$dir"' EXIT
f=$dir/data
failures=0
ok() { if "$@" >/dev/null 2>"$dir/err"; then echo "ok: $*"; else echo "FAIL (expected success): $*"; cat "$dir/err"; failures=$((failures + 1)); fi; }
no() { if "$@" >/dev/null 2>"$dir/err"; then echo "FAIL (expected a mismatch): $*"; failures=$((failures + 1)); else echo "ok (rejected): $*: $(cat "$dir/err")"; fi; }

truncate -s 8M "$f"
ok "$tool" pattern verify "$f" 0 8M zero
ok "$tool" pattern write "$f" 1M 4M 4242 sync
ok "$tool" pattern verify "$f" 1M 4M 4242
ok "$tool" pattern verify "$f" $((1048576 + 3)) 1000 4242       # unaligned sub-range
ok "$tool" pattern verify "$f" $((5 * 1048576 - 5)) 5 4242     # the last bytes
ok "$tool" pattern verify "$f" 0 1M zero                          # untouched before
ok "$tool" pattern verify "$f" 5M 3M zero                         # untouched after
no "$tool" pattern verify "$f" 1M 4M 4243                         # another seed
no "$tool" pattern verify "$f" 0 $((1048576 + 1)) zero            # one pattern byte where zeros belong
# An unaligned write lands exactly in its range.
ok "$tool" pattern write "$f" $((2 * 1048576 + 7)) 9 77
ok "$tool" pattern verify "$f" $((2 * 1048576 + 7)) 9 77
ok "$tool" pattern verify "$f" 1M $((1048576 + 7)) 4242
ok "$tool" pattern verify "$f" $((2 * 1048576 + 16)) 1M 4242
# One flipped byte in the middle is found, with its offset in the message.
off=$((3 * 1048576 + 12345))
b=$(od -An -tu1 -j $off -N1 "$f" | tr -d ' ')
printf "\\$(printf '%03o' $(((b + 1) % 256)))" | dd of="$f" bs=1 seek=$off conv=notrunc status=none
no "$tool" pattern verify "$f" 3M 1M 4242
grep -q "first at offset $off " "$dir/err" || { echo "FAIL: the message does not name offset $off: $(cat "$dir/err")"; failures=$((failures + 1)); }
# writeloop acknowledges what it wrote, block by block.
ok "$tool" writeloop "$f" 64K 20 99
ok "$tool" pattern verify "$f" 0 $((20 * 65536)) 99
grep -q . "$dir/err" && { echo "FAIL: writeloop wrote to stderr: $(cat "$dir/err")"; failures=$((failures + 1)); }
"$tool" writeloop "$f" 64K 20 99 | grep -q '^VMTOOL-ACKED 20 blocks of 65536 bytes (20 writes' ||
    { echo "FAIL: writeloop did not report 20 acknowledged blocks"; failures=$((failures + 1)); }
# With a time floor it starts over at block 0, rewriting the same bytes.
"$tool" writeloop "$f" 64K 4 123 1 >"$dir/loop" || { echo "FAIL: timed writeloop"; failures=$((failures + 1)); }
n=$(sed -n 's/^VMTOOL-ACKED 4 blocks of 65536 bytes (\([0-9]*\) writes.*/\1/p' "$dir/loop")
[ -n "$n" ] && [ "$n" -gt 4 ] || { echo "FAIL: timed writeloop did not loop: $(cat "$dir/loop")"; failures=$((failures + 1)); }
ok "$tool" pattern verify "$f" 0 $((4 * 65536)) 123
ok "$tool" pattern verify "$f" $((4 * 65536)) $((16 * 65536)) 99  # beyond block 4: untouched
no "$tool" pattern verify "$f" 0 4096 12x                         # bad seed is a usage error

[ $failures -eq 0 ] && echo "vmtool-pattern: all checks passed" || echo "vmtool-pattern: $failures checks failed"
exit $((failures != 0))
