#!/usr/bin/python3
# Writes count lines (5), one every ms milliseconds (200), each holding the
# time.time() it was written, flushing each: streaming-latency tests compare
# that with the time the client received the line.
# Line format: "<i> <time.time() with microseconds>\n"
# Content-Type text/event-stream, as a real stream (SSE) has: the standard
# test server has Debian's deflate.conf, and httpd holds back the first
# lines of a text/plain CGI stream in its filters (over HTTP/1.1 as well:
# lines 0-2 arrived together 600 ms late, with or without no-gzip).
import os
import sys
import time
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
ms = float(q.get("ms", ["200"])[0])
count = int(q.get("count", ["5"])[0])

out = sys.stdout
out.write("Content-Type: text/event-stream\n\n")
out.flush()
for i in range(count):
    if i:
        time.sleep(ms / 1000.0)
    out.write("%d %.6f\n" % (i, time.time()))
    out.flush()
