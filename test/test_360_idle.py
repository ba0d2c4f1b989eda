"""Issue 5, point 7: an idle connection is closed politely.

With no open streams for KeepAliveTimeout, the server sends
GOAWAY(NO_ERROR) with the last stream id it processed (RFC 9113 §6.8) and
then closes the connection.  A connection with a stream in progress is not
idle, however long the stream takes.
"""

import time

import pytest

from h2x.frames import ErrorCodes

KEEPALIVE = 2
TIMEOUT = 4
SLACK = 2.5

pytestmark = [pytest.mark.h2]


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(extra_global=(
        f"Timeout {TIMEOUT}\nKeepAliveTimeout {KEEPALIVE}\n"
        "<Location /h2x/stream>\n    SetHandler h2x-stream\n</Location>\n"))
    yield


def _assert_idle_close(c, last_sid, idle_since, limit=KEEPALIVE):
    assert c.wait_goaway(timeout=limit + SLACK + 2), (c.frames[-5:], c.close_reason)
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR, g
    assert g.last_stream_id == last_sid, g
    took = g.t - idle_since
    assert limit * 0.9 <= took <= limit + SLACK, f"GOAWAY after {took:.2f}s idle"
    assert c.wait_closed(timeout=5), "server did not close the connection after GOAWAY"
    assert len(c.goaways) <= 2, c.goaways


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_360_01_idle_after_requests(frame_client, tls):
    c = frame_client(tls=tls)
    sids = [c.request("GET", "/1k.txt") for _ in range(3)]
    assert c.wait_all_ended(timeout=5)
    idle_since = max(c.stream(s).end_time for s in sids)
    _assert_idle_close(c, max(sids), idle_since)


def test_h2x_360_02_idle_without_requests(frame_client):
    """A connection that never opened a stream: GOAWAY(NO_ERROR, last 0) and
    close, after KeepAliveTimeout (or Timeout, if the first request is
    waited for that long, as HTTP/1.1 does)."""
    c = frame_client()
    assert c.wait_settings()
    t0 = c.frames[0].t
    assert c.wait_goaway(timeout=TIMEOUT + SLACK + 2), c.frames
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == 0, g
    assert KEEPALIVE * 0.9 <= g.t - t0 <= TIMEOUT + SLACK
    assert c.wait_closed(timeout=5)


def test_h2x_360_03_busy_connection_not_idle(frame_client):
    """A stream taking 2 x KeepAliveTimeout keeps the connection open; the
    idle clock starts when it ends."""
    c = frame_client()
    sid = c.request("GET", "/h2x/stream?count=20&size=10&ms=200")     # 4 s
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM" and len(s.body) == 200, s
    assert not c.goaways, c.goaways
    _assert_idle_close(c, sid, s.end_time)


def test_h2x_360_04_ping_does_not_keep_alive(frame_client):
    """Only streams count as activity: a client PINGing every second still
    gets the idle GOAWAY (or, if PING counts, at least no broken stream and
    a close within Timeout)."""
    c = frame_client()
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid)
    idle_since = c.stream(sid).end_time
    deadline = time.monotonic() + TIMEOUT + SLACK + 2
    while not c.goaways and not c.closed and time.monotonic() < deadline:
        c.ping()
        c.run(timeout=1.0)
    assert c.goaways, "no GOAWAY for a connection with only PINGs"
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == sid, g
    assert g.t - idle_since <= TIMEOUT + SLACK
    assert c.wait_closed(timeout=5)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_360_05_short_requests_keep_alive(frame_client, tls):
    """Requests that each end at once (a small static file, served on the
    connection's own thread), one every 0.5 s for 2.5 x KeepAliveTimeout:
    the connection is never idle that long, so no GOAWAY; the idle clock
    starts at the last one. (Found 2026-12-01: the clock started at the
    first idle moment and was never reset by such requests, so a busy
    connection got GOAWAY after KeepAliveTimeout.)"""
    c = frame_client(tls=tls)
    sids = []
    end = time.monotonic() + 2.5 * KEEPALIVE
    while time.monotonic() < end:
        sid = c.request("GET", "/1k.txt")
        assert c.wait_stream_end(sid, timeout=5), c.stream(sid)
        assert c.stream(sid).status == 200, c.stream(sid)
        sids.append(sid)
        c.run(timeout=0.5)
        assert not c.goaways, (f"GOAWAY after {len(sids)} requests, the last one "
                               f"{time.monotonic() - c.stream(sid).end_time:.2f}s ago",
                               c.goaways)
    _assert_idle_close(c, sids[-1], c.stream(sids[-1]).end_time)
