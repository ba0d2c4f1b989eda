#!/usr/bin/python3
# Writes n bytes (1048576) of deterministic content in 64 KiB chunks:
# byte i is "0123456789abcdef"[i % 16], same as mod_h2x_test's bodies.
import os
import sys
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
n = int(q.get("n", [str(1024 * 1024)])[0])

CHUNK = 65536                              # a multiple of 16 keeps the phase
block = b"0123456789abcdef" * (CHUNK // 16)
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\n")
out.write(b"Content-Length: %d\n\n" % n)
while n > 0:
    k = min(n, CHUNK)
    out.write(block[:k])
    n -= k
out.flush()
