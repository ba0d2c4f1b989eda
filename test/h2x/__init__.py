"""mod_h2x live-httpd test harness.

The pieces, one concern per file:

- env.py      what the machine offers: apache2, module paths, client tools.
- ports.py    free loopback ports.
- certs.py    the self-signed localhost certificate of a test session.
- httpd.py    one Apache httpd instance in its own temporary server root.
- logscan.py  the error-log scan that fails a test on unexpected errors.
- clients.py  curl, nghttp and h2load wrappers with parsed results.
- frames.py   the raw HTTP/2 frame client (hpack + hyperframe from python3-h2).

test/conftest.py turns these into pytest fixtures.
"""
