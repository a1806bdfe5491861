#!/usr/bin/env python3
"""Checks the output of `signfsctl audit proof` with an independent RFC 9162
inclusion-proof verifier (hashlib only, none of signfs's code)."""
import base64, hashlib, sys

out = sys.stdin.read().split("\n")
event = next(l for l in out if l.startswith("event: "))[7:]
index = int(next(l for l in out if l.startswith("leaf index: "))[12:])
size = int(next(l for l in out if l.startswith("tree size: "))[11:])
i = out.index("inclusion proof:")
proof = []
for l in out[i + 1:]:
    if not l.startswith("  "):
        break
    proof.append(bytes.fromhex(l.strip()))
cp = out[out.index("checkpoint:") + 1:]
assert int(cp[1]) == size, "checkpoint size differs from the proof's tree size"
root = base64.b64decode(cp[2])

r = hashlib.sha256(b"\x00" + event.encode()).digest()
fn, sn = index, size - 1
for p in proof:
    assert sn != 0, "proof too long"
    if fn & 1 or fn == sn:
        r = hashlib.sha256(b"\x01" + p + r).digest()
        while not fn & 1 and fn != 0:
            fn >>= 1
            sn >>= 1
    else:
        r = hashlib.sha256(b"\x01" + r + p).digest()
    fn >>= 1
    sn >>= 1
assert sn == 0 and r == root, "inclusion proof does not lead to the checkpoint's root"
path = sys.argv[1] if len(sys.argv) > 1 else None
assert path is None or f'"path":"{path}"' in event, "the event is not about " + path
print("inclusion proof verified")
