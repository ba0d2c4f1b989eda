#!/usr/bin/python3
# Echoes the request body back as application/octet-stream.
# Query: sha=1 replies "<sha256 hex> <length>\n" instead of the body.
import hashlib
import os
import sys
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
inp = sys.stdin.buffer
cl = os.environ.get("CONTENT_LENGTH", "")
# CONTENT_LENGTH when given, otherwise read until EOF.
body = inp.read(int(cl)) if cl.isdigit() else inp.read()

out = sys.stdout.buffer
if q.get("sha", ["0"])[0] == "1":
    reply = ("%s %d\n" % (hashlib.sha256(body).hexdigest(), len(body))).encode()
    out.write(b"Content-Type: text/plain\n\n" + reply)
else:
    out.write(b"Content-Type: application/octet-stream\n")
    out.write(b"Content-Length: %d\n\n" % len(body))
    out.write(body)
