#!/usr/bin/python3
# A 200 with "Content-Length: 0" and no body: must end without a
# zero-length DATA frame (END_STREAM on HEADERS).
import sys

sys.stdout.write("Status: 200\nContent-Type: text/plain\nContent-Length: 0\n\n")
