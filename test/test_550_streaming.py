"""Issue 4: streaming responses are not held back.

lines.py writes a line every 200 ms, each carrying the time.time() it was
written; the client notes when each line arrives.  Every line must arrive
within 100 ms of being written; the bound asserted is 150 ms to allow for a
loaded 2-core machine (the measured maximum is in the assertion message).
With the default `H2OutputBuffering on` a line is sometimes held until the
next one (F9, pending_test_550_streaming.py); here with
`H2OutputBuffering off`, over h2c and h2, and with the
h2x-stream handler (chunks flushed every 200 ms arrive spread out, not
batched).
"""

import time

import pytest

pytestmark = [pytest.mark.h2]

BOUND = 0.150
COUNT = 8


def _latencies(c, sid):
    """[(line index, receive time - write time)] from the DATA frames."""
    offset = time.time() - time.monotonic()       # monotonic -> wall clock
    out = []
    buf = b""
    for f in c.stream(sid).frames:
        if f.type != "DATA" or not f.data:
            continue
        buf += f.data
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            i, written = line.split()
            out.append((int(i), f.t + offset - float(written)))
    return out


def _run_lines(frame_client, tls):
    c = frame_client(tls=tls)
    sid = c.request("GET", f"/cgi-bin/lines.py?ms=200&count={COUNT}")
    assert c.wait_stream_end(sid, timeout=20)
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", repr(s)
    lat = _latencies(c, sid)
    assert [i for i, _ in lat] == list(range(COUNT)), s.body
    worst = max(d for _, d in lat)
    print(f"lines.py tls={tls}: max latency {worst * 1000:.1f} ms, "
          f"all {[round(d * 1000, 1) for _, d in lat]}")
    assert worst < BOUND, f"max latency {worst * 1000:.1f} ms: {lat}"
    assert min(d for _, d in lat) > -0.05, lat       # clocks are the same machine's


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_550_02_lines_latency_unbuffered(httpd, frame_client, tls):
    if getattr(httpd, "_h2x_550_unbuffered", False) is False:
        httpd.reconfigure(extra_global="""
H2OutputBuffering off
<Location /h2x/stream>
    SetHandler h2x-stream
</Location>
""")
        httpd._h2x_550_unbuffered = True
    _run_lines(frame_client, tls)


def test_h2x_550_03_handler_chunks_spread(httpd, frame_client):
    """h2x-stream: 6 chunks of 10 bytes, 200 ms apart, arrive as separate
    DATA frames about 200 ms apart (H2OutputBuffering off from 550_02)."""
    c = frame_client()
    sid = c.request("GET", "/h2x/stream?count=6&size=10&ms=200")
    assert c.wait_stream_end(sid, timeout=20)
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", repr(s)
    assert len(s.body) == 60
    times = [f.t for f in s.frames if f.type == "DATA" and f.length > 0]
    assert len(times) == 6, s.frames_str()
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(0.1 < g < 0.35 for g in gaps), gaps
