"""Issue 4 / DESIGN.md invariant 5: H2StreamMaxMemSize bounds the output a
stream buffers.

- A 1 GB download (a sparse static file; big.py through mod_cgid) read
  slowly by the client (window updates at a limited rate for a few
  seconds, then RST_STREAM) keeps the growth of the server's RSS (sum over
  its httpd processes, from /proc) under 50 MB.
- A client that never opens its flow-control windows on 8 streams of big
  CGI output makes the server hold no more than about the bound per stream.
"""

import os
import subprocess
import time

import pytest

from core_helpers import httpd_pids, rss_kb

pytestmark = [pytest.mark.h2, pytest.mark.slow]

GB = 1 << 30
MAX_MEM = 65536


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    path = os.path.join(httpd.docroot, "big", "1g.bin")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    subprocess.run(["truncate", "-s", "1G", path], check=True)
    os.chmod(path, 0o644)
    httpd.reconfigure(extra_global=f"H2StreamMaxMemSize {MAX_MEM}\n")
    yield
    os.unlink(path)


def _warm_up(httpd, frame_client):
    """Some requests first, so threads and pools exist before the baseline."""
    c = frame_client()
    sids = [c.request("GET", "/cgi-bin/big.py?n=200000") for _ in range(4)]
    sids += [c.request("GET", "/index.html") for _ in range(4)]
    assert c.wait_all_ended(timeout=20)
    c.close()
    time.sleep(0.3)


@pytest.mark.parametrize("path", ["/big/1g.bin", f"/cgi-bin/big.py?n={GB}"],
                         ids=["static", "cgi"])
def test_h2x_540_01_slow_reader_1g(httpd, frame_client, path):
    _warm_up(httpd, frame_client)
    base = rss_kb(httpd_pids(httpd))
    c = frame_client(auto_window_update=False, window=MAX_MEM)
    sid = c.request("GET", path)
    rate_step = 256 * 1024                      # ~2.5 MB/s: far below what the server can do
    peak = base
    received = 0
    t0 = time.monotonic()
    end = t0 + 4.0
    at_1s = None
    while time.monotonic() < end:
        c.run(timeout=0.1)
        rec = c.stream(sid)
        assert rec.ended_by is None, repr(rec)
        got = len(rec.data) - received
        received = len(rec.data)
        if got:
            c.window_update(sid, min(got, rate_step))
            c.window_update(0, min(got, rate_step))
        now_kb = rss_kb(httpd_pids(httpd))
        peak = max(peak, now_kb)
        if at_1s is None and time.monotonic() - t0 >= 1.0:
            at_1s = now_kb
    last = rss_kb(httpd_pids(httpd))
    rec = c.stream(sid)
    assert rec.status == 200, repr(rec)
    assert 100_000 < len(rec.data) < 50 * 1024 * 1024, len(rec.data)
    growth_mb = (peak - base) / 1024
    print(f"{path}: received {len(rec.data)} bytes, RSS base {base} kB, "
          f"peak {peak} kB, growth {growth_mb:.1f} MB, after 1 s {at_1s} kB, end {last} kB")
    c.reset(sid)
    assert growth_mb < 50, f"RSS grew by {growth_mb:.1f} MB (base {base} kB, peak {peak} kB)"
    # no steady growth while the client keeps reading slowly
    assert last - at_1s < 10 * 1024, f"RSS after 1 s {at_1s} kB, at 4 s {last} kB"
    # the connection carries on
    sid2 = c.request("GET", "/index.html")
    c.window_update(0, 1 << 20)
    assert c.wait_stream_end(sid2, timeout=10)
    assert c.stream(sid2).status == 200


def _never_reading(httpd, frame_client, n, seconds):
    """n streams of 100 MB CGI output on a client that never opens its
    windows; returns (client, stream ids, peak RSS) after `seconds`."""
    c = frame_client(auto_window_update=False)
    sids = [c.request("GET", f"/cgi-bin/big.py?n={100 * 1024 * 1024}&i={i}") for i in range(n)]
    peak = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        c.run(timeout=0.2)
        peak = max(peak, rss_kb(httpd_pids(httpd)))
    return c, sids, peak


def test_h2x_540_02_never_reading_client(httpd, frame_client, env):
    """8 streams of 100 MB CGI output, the client grants only a 64 KB
    connection window and never a WINDOW_UPDATE: after 3 s the server holds
    about H2StreamMaxMemSize (+ pipe and read buffers) per stream, far below
    what the CGIs could produce.  The same is done once before the
    baseline: the worker threads it takes touch their stacks and glibc
    may give them malloc arenas of their own, a one-time cost (it made
    the growth 3 MB in one run and 11 MB in the next, on a loaded machine)."""
    _warm_up(httpd, frame_client)
    n = 8
    c, sids, _ = _never_reading(httpd, frame_client, n, 1.5)
    for s in sids:
        c.reset(s)
    c.run(timeout=1.0)
    c.close()
    time.sleep(0.5)
    base = rss_kb(httpd_pids(httpd))
    c, sids, peak = _never_reading(httpd, frame_client, n, 3.0)
    peak = max(peak, base)
    got = sum(len(c.stream(s).data) for s in sids)
    assert got <= 65535, got
    for s in sids:
        assert c.stream(s).ended_by is None, repr(c.stream(s))
    growth_kb = peak - base
    print(f"never-reading: {n} streams, RSS base {base} kB, peak {peak} kB, "
          f"growth {growth_kb} kB")
    for s in sids:
        c.reset(s)
    # per stream: the beam bound, plus a 64 KB CGI read buffer and a frame
    # or two; 1 MB per stream is generous and still far from unbounded.
    # Under ASan freed memory waits in its quarantine, so RSS also holds
    # what was already given back (x4, as test_605 allows x8).
    bound = n * 1024 * (4 if env.sanitize else 1)
    assert growth_kb < bound, f"RSS grew by {growth_kb} kB for {n} streams"
