#!/usr/bin/env python3
"""Writes the seed corpora of the proto fuzz targets (run from this folder).

Each seed is a short, valid conversation so the fuzzer starts from inputs
that reach deep into the machines. The first byte of the server and client
seeds is the target's control byte (feed size, goal)."""
import os
import struct

IHAVEOPT = 0x49484156454F5054
NBDMAGIC = 0x4e42444d41474943
REP_MAGIC = 0x3e889045565a9


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def info_go(o, name, reqs):
    n = name.encode()
    d = struct.pack(">I", len(n)) + n + struct.pack(">H", len(reqs))
    d += b"".join(struct.pack(">H", r) for r in reqs)
    return opt(o, d)


def rep(o, t, data=b""):
    return struct.pack(">QIII", REP_MAGIC, o, t, len(data)) + data


def write(target, name, data):
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, name), "wb") as f:
        f.write(data)


FLAGS = struct.pack(">I", 3)
S = "fuzz-proto-server"
write(S, "go", b"\xff" + FLAGS + info_go(7, "disk", [3, 1, 2]))
write(S, "go-aligned-no-bs", b"\x00" + FLAGS + info_go(7, "aligned", []) + info_go(7, "aligned", [3]))
write(S, "list-info-abort", b"\x07" + FLAGS + opt(3) + info_go(6, "", [0, 2]) + opt(8) + opt(2))
write(S, "export-name", b"\x10" + struct.pack(">I", 1) + opt(1, b"disk"))
write(S, "unknown-options", b"\x30" + FLAGS + opt(5) + opt(9, b"\0" * 12) + opt(99, b"abc") + info_go(7, "nope", []))

C = "fuzz-proto-client"
greet = struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 3)
info_export = struct.pack(">HQH", 0, 1 << 20, 1 | 4)
block = struct.pack(">HIII", 3, 512, 4096, 1 << 20)
go_ok = rep(7, 3, info_export) + rep(7, 3, block) + rep(7, 3, b"\0\1disk") + rep(7, 3, b"\0\2desc") + rep(7, 1)
write(C, "go", b"\x00" + greet + go_ok)
write(C, "go-fallback", b"\x04" + greet + rep(7, 0x80000001) + struct.pack(">QH", 4096, 1))
write(C, "export-name-zeroes", b"\x80" + struct.pack(">QQH", NBDMAGIC, IHAVEOPT, 1) + struct.pack(">QH", 4096, 1) + b"\0" * 124)
write(C, "info", b"\x01" + greet + rep(6, 3, info_export) + rep(6, 1))
write(C, "list", b"\x02" + greet + rep(3, 2, b"\0\0\0\4diskdesc") + rep(3, 2, b"\0\0\0\2ro") + rep(3, 1))
write(C, "refused", b"\x00" + greet + rep(7, 0x80000006, b"no such export"))

R = "fuzz-proto-request"
limits = struct.pack(">QHB", 1 << 20, 0x0c6d, 9) + struct.pack(">I", 1 << 20)
for i, (t, f, off, ln) in enumerate([(0, 0, 4096, 4096), (1, 1, 0, 512), (3, 0, 0, 0),
                                     (4, 0, 1 << 19, 1 << 19), (6, 0x12, 0, 4096), (2, 0, 0, 0),
                                     (1, 0, (1 << 20) - 512, 1024), (9, 0, 0, 0)]):
    hdr = struct.pack(">IHHQQI", 0x25609513, f, t, i, off, ln)
    write(R, "req-%d" % i, hdr + limits)
