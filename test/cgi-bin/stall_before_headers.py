#!/usr/bin/python3
# Sleeps s seconds (30) before writing anything, so mod_cgid times out
# waiting for the headers and answers 504 itself.
import os
import sys
import time
import urllib.parse

q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
time.sleep(float(q.get("s", ["30"])[0]))
sys.stdout.write("Content-Type: text/plain\n\ntoo late\n")
