"""557: mod_ratelimit's RATE_LIMIT filter on h2 downloads.

Hosting servers throttle downloads with `SetOutputFilter RATE_LIMIT`: the
filter sleeps between the pieces it passes on. The throttled stream must
take about as long as the rate says, arrive whole and end with
END_STREAM, while other streams of the same connection are served at
once (the sleeping filter holds a worker, never the connection's thread).
"""

import time

import pytest

from h2x.httpd import file_content

pytestmark = pytest.mark.h2

SIZE = 96 * 1024
RATE_KIB = 64     # KiB/s: ~1.5 s for SIZE


@pytest.fixture(scope="module")
def server(httpd, env):
    ratelimit = env.apache_module("ratelimit")
    assert ratelimit, "Debian's mod_ratelimit.so is part of apache2"
    httpd.make_file("/slow557/f.bin", SIZE)
    httpd.reconfigure(extra_global=f"""
LoadModule ratelimit_module {ratelimit}
<Location /slow557/>
    SetOutputFilter RATE_LIMIT
    SetEnv rate-limit {RATE_KIB}
</Location>
""")
    yield httpd
    httpd.reconfigure()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_557_01_throttled_and_others_served(server, frame_client, tls):
    c = frame_client(tls=tls)
    t0 = time.monotonic()
    slow = c.request("GET", "/slow557/f.bin")
    c.run(timeout=0.3)
    quick = [c.request("GET", "/1k.txt") for _ in range(5)]
    assert c.run(until=lambda cl: all(cl.stream(q).ended for q in quick), timeout=5)
    quick_done = time.monotonic() - t0
    assert not c.stream(slow).ended, "the throttled stream ended too soon"
    assert c.wait_stream_end(slow, timeout=15), c.stream(slow).frames_str()
    took = time.monotonic() - t0
    s = c.stream(slow)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == file_content(SIZE)
    for q in quick:
        assert c.stream(q).status == 200 and len(c.stream(q).body) == 1024
    # Generous bounds: 96 KiB at 64 KiB/s (mod_ratelimit sends its first
    # burst at once) takes ~1-1.5 s; the quick streams came at once.
    assert 0.7 < took < 8, took
    assert quick_done < took / 2, (quick_done, took)
