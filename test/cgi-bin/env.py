#!/usr/bin/python3
# Prints the CGI environment sorted, one "NAME=value" per line
# (HTTP2, H2_STREAM_ID, H2PUSH, SSL_*, REQUEST_URI, ...).
import os
import sys

sys.stdout.write("Content-Type: text/plain\n\n")
for k in sorted(os.environ):
    sys.stdout.write("%s=%s\n" % (k, os.environ[k]))
