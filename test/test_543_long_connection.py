"""A long-lived connection does not grow the server with each request it
carries (found 2026-12-01 while measuring issue 11's memory).

nghttp2 keeps a server's closed streams for its RFC 7540 priority tree, as
many as SETTINGS_MAX_CONCURRENT_STREAMS allows. mod_h2x does not hand that
setting to nghttp2 (it refuses excess streams itself, h2x_session.cpp), so
the retention had no bound: about 240 bytes per request, for as long as
the connection stayed open - a gRPC channel or a proxy's connection pool
doing millions of requests grew by hundreds of megabytes.

h2load sends 40,000 requests, one at a time, over one h2c connection after
a warm-up on the same server (worker threads, their pools and a sanitizer's
quarantine exist before the baseline); the server's RSS (sum over its
processes, from /proc) grows by less than 4 MB (before the fix: 8-9 MB).
"""

import pytest

from core_helpers import httpd_pids, rss_kb
from h2x.clients import h2load

pytestmark = [pytest.mark.h2]

REQUESTS = 40_000
MAX_GROWTH_KB = 4 * 1024


def test_h2x_543_01_one_connection_many_requests(httpd):
    httpd.make_file("long/1k.bin", 1024)
    url = httpd.url("/long/1k.bin")
    # Warm-up: several connections, so that every child's threads have
    # served h2 requests before the baseline.
    for c in (4, 1, 1, 1):
        r = h2load(url, 10_000, c, 1, timeout=120)
        assert r.requests.get("succeeded") == 10_000, r.stdout
    base = rss_kb(httpd_pids(httpd))
    r = h2load(url, REQUESTS, 1, 1, timeout=300)
    assert r.requests.get("succeeded") == REQUESTS, r.stdout
    assert r.status.get("2xx") == REQUESTS, r.stdout
    after = rss_kb(httpd_pids(httpd))
    growth = after - base
    print(f"RSS {base} kB -> {after} kB: {growth} kB over {REQUESTS} requests "
          f"on one connection ({growth * 1024 / REQUESTS:.0f} bytes per request)")
    assert growth < MAX_GROWTH_KB, (
        f"RSS grew by {growth} kB over {REQUESTS} requests on one connection "
        f"(base {base} kB, after {after} kB)")
