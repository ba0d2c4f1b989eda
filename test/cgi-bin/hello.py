#!/usr/bin/python3
# A small, fixed text response: the simplest CGI round trip.
import sys

body = "Hello from h2x test CGI\n"
sys.stdout.write("Content-Type: text/plain\n")
sys.stdout.write("Content-Length: %d\n\n" % len(body))
sys.stdout.write(body)
