#!/usr/bin/python3
# A 204 No Content: header-only, must end cleanly, never reset.
import sys

sys.stdout.write("Status: 204\n\n")
