"""H2StreamMaxMemSize with static files: a client that never reads makes the
server hold about the bound per stream (a file bucket is moved in pieces,
not mapped or copied whole)."""

import time

import pytest

from test_540_memory import MAX_MEM, _server, _warm_up  # noqa: F401


def _rss_by_pid(httpd) -> dict:
    out = {}
    for pid in httpd._our_processes():
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        out[pid] = int(line.split()[1])
        except OSError:
            pass
    return out


def _growth_kb(base: dict, now: dict) -> int:
    """RSS growth of the server. A child the MPM started meanwhile counts
    from the size of a fresh child (the smallest one at the baseline), not
    from zero: its own code and data are not what the streams hold."""
    fresh = min(base.values())
    return sum(rss - base.get(pid, fresh) for pid, rss in now.items())

pytestmark = [pytest.mark.h2, pytest.mark.slow]


def test_h2x_540_03_never_reading_client_static(env, httpd, frame_client):
    """4 streams of the 1 GB static file; the client never opens its
    windows (64 KB for the connection).  The server may hold about
    H2StreamMaxMemSize (64 KB) per stream; 1 MB per stream is allowed
    (16 MB under H2X_SANITIZE: ASan's shadow memory, redzones and
    quarantine grow the RSS, still far below a mapped or copied file)."""
    _warm_up(httpd, frame_client)
    base = _rss_by_pid(httpd)
    n = 4
    c = frame_client(auto_window_update=False, window=MAX_MEM)
    sids = [c.request("GET", f"/big/1g.bin?i={i}") for i in range(n)]
    growth_kb = 0
    end = time.monotonic() + 3.0
    while time.monotonic() < end:
        c.run(timeout=0.2)
        growth_kb = max(growth_kb, _growth_kb(base, _rss_by_pid(httpd)))
    for s in sids:
        assert c.stream(s).ended_by is None, repr(c.stream(s))
    print(f"never-reading static: {n} streams, RSS growth {growth_kb} kB")
    for s in sids:
        c.reset(s)
    per_stream_kb = 16 * 1024 if env.sanitize else 1024
    assert growth_kb < n * per_stream_kb, f"RSS grew by {growth_kb} kB for {n} streams"
