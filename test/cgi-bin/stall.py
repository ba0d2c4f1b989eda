#!/usr/bin/python3
# Sends a 200, headers and n bytes of body, then stalls for s seconds
# without finishing: a CGI stuck mid-body past Timeout (mod_cgid gives up,
# the response has final headers but no EOS).
# Query: n=body bytes (100), s=seconds to sleep (30),
#        pidfile=/tmp/... writes this process's pid there first.
import os
import sys
import time
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
n = int(q.get("n", ["100"])[0])
s = float(q.get("s", ["30"])[0])
pidfile = q.get("pidfile", [None])[0]
if pidfile and pidfile.startswith("/tmp/") and ".." not in pidfile:
    try:  # the directory must be writable by the httpd user (www-data)
        with open(pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    except OSError as e:
        sys.stderr.write("%s: cannot write pidfile: %s\n" % (sys.argv[0], e))

out = sys.stdout.buffer
out.write(b"Status: 200\nContent-Type: text/plain\n\n")
out.write((b"0123456789abcdef" * (n // 16 + 1))[:n])
out.flush()
time.sleep(s)
