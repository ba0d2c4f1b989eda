#!/usr/bin/python3
# Streams "chunk <i>\n" every ms milliseconds for s seconds, flushing each,
# and exits as soon as the output breaks (client gone, stream reset).
# Query: ms=interval (200), s=duration in seconds (60),
#        pidfile=/tmp/... writes this process's pid there first.
import os
import signal
import sys
import time
import urllib.parse

# Die quietly on SIGPIPE rather than raising inside a write.
signal.signal(signal.SIGPIPE, signal.SIG_DFL)

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
ms = float(q.get("ms", ["200"])[0])
s = float(q.get("s", ["60"])[0])
pidfile = q.get("pidfile", [None])[0]
if pidfile and pidfile.startswith("/tmp/") and ".." not in pidfile:
    try:  # the directory must be writable by the httpd user (www-data)
        with open(pidfile, "w") as f:
            f.write("%d\n" % os.getpid())
    except OSError as e:
        sys.stderr.write("%s: cannot write pidfile: %s\n" % (sys.argv[0], e))

out = sys.stdout.buffer
try:
    out.write(b"Content-Type: text/plain\n\n")
    out.flush()
    end = time.time() + s
    i = 0
    while time.time() < end:
        out.write(b"chunk %d\n" % i)
        out.flush()
        i += 1
        time.sleep(ms / 1000.0)
except (BrokenPipeError, ConnectionResetError):
    os._exit(0)
