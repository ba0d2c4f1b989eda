"""Issue 5, point 6: timeouts apply to blocked IO only (DESIGN.md invariant 6).

- A handler busy computing for longer than `Timeout` before its first byte
  is not cut off: its response completes.
- A client that stops reading (its stream window held at 0) for longer
  than Timeout has that stream reset; the connection's other streams work.
- A client that sends part of a request body and stalls past Timeout has
  its stream reset, and the handler sees a read error.
- Where `H2StreamTimeout` is set, it governs the streams instead of Timeout.
"""

import threading
import time

import pytest

from h2x.frames import ErrorCodes

TIMEOUT = 2
SLACK = 3
BIG = 2_000_000
HANDLERS = """
LogLevel warn h2x:debug h2x_test:info
<Location /h2x/delay>
    SetHandler h2x-delay
</Location>
<Location /h2x/echo>
    SetHandler h2x-echo
</Location>
<Location /h2x/stream>
    SetHandler h2x-stream
</Location>
"""

pytestmark = [pytest.mark.h2]


def _config(timeout=TIMEOUT, stream_timeout=None):
    extra = f"Timeout {timeout}\n" + HANDLERS
    if stream_timeout is not None:
        extra += f"H2StreamTimeout {stream_timeout}\n"
    return dict(extra_global=extra)


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.make_file("t/big.bin", BIG)
    httpd.reconfigure(**_config())
    yield


def _assert_other_streams_work(c, n=3):
    sids = [c.request("GET", "/1k.txt") for _ in range(n)]
    assert c.run(lambda c: all(c.stream(s).ended for s in sids), timeout=5), \
        [c.stream(s) for s in sids]
    for s in sids:
        assert c.stream(s).ended_by == "END_STREAM" and c.stream(s).status == 200, c.stream(s)
        assert len(c.stream(s).body) == 1024
    assert not c.goaways and not c.closed


# -- a busy handler is not an IO timeout ------------------------------------

def test_h2x_350_01_busy_handler_not_cut_off(frame_client):
    """h2x-delay computes 5 s (> Timeout 2) before its first byte, on two
    connections at once (h2c and h2), next to quick streams."""
    clients = [frame_client(), frame_client(tls=True)]
    slow = [(c, c.request("GET", "/h2x/delay?s=5&n=100")) for c in clients for _ in range(2)]
    for c in clients:
        _assert_other_streams_work(c)
    for c in clients:
        assert c.wait_all_ended(timeout=15), c.unended()
    for c, sid in slow:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.status == 200, s
        assert s.body == (b"0123456789abcdef" * 7)[:100]
        assert c.shape(sid) == "HEADERS DATA[ES]", s
        assert s.end_time - s.start_time >= 4.9


# -- the client stops reading ------------------------------------------------

def _window_stall(c, path="/t/big.bin"):
    """Open the connection window wide, hold the stream's at its initial
    65535; request `path` and read until the stream window is used up.
    Returns (sid, time the last DATA arrived)."""
    c.window_update(0, 50_000_000)
    sid = c.request("GET", path)
    assert c.run(lambda c: len(c.stream(sid).body) >= 65535 or c.stream(sid).ended,
                 timeout=10), c.stream(sid)
    s = c.stream(sid)
    assert len(s.body) == 65535 and not s.ended, s
    return sid, [f.t for f in s.frames if f.type == "DATA"][-1]


def _assert_window_reset(c, sid, last_data, timeout):
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM", s
    assert not any(f.end_stream for f in s.frames), s
    took = s.end_time - last_data
    assert timeout * 0.9 <= took <= timeout + SLACK, f"reset {took:.2f}s after the window closed: {s!r}"
    return s.rst_name


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_350_02_client_stops_reading(frame_client, tls):
    """The stream window stays at 0 longer than Timeout: reset.  Meanwhile
    and afterwards the connection's other streams work."""
    c = frame_client(tls=tls, auto_window_update=False)
    sid, last = _window_stall(c)
    # Other streams work while the big one is blocked (their own windows
    # are fresh, the connection window is open).
    _assert_other_streams_work(c)
    assert c.wait_stream_end(sid, timeout=TIMEOUT + SLACK + 2), c.stream(sid)
    _assert_window_reset(c, sid, last, TIMEOUT)
    _assert_other_streams_work(c)


def test_h2x_350_03_client_stops_reading_streaming_handler(frame_client):
    """The same for a handler that streams (h2x-stream: 20 KB every 50 ms)."""
    c = frame_client(auto_window_update=False)
    sid, last = _window_stall(c, "/h2x/stream?count=200&size=20000&ms=50")
    assert c.wait_stream_end(sid, timeout=TIMEOUT + SLACK + 2), c.stream(sid)
    _assert_window_reset(c, sid, last, TIMEOUT)
    _assert_other_streams_work(c)


def test_h2x_350_04_slow_reader_is_not_cut_off(frame_client):
    """A client that reads slowly but steadily (window opened every 1 s,
    less than Timeout) is not reset: the download completes."""
    c = frame_client(auto_window_update=False)
    c.window_update(0, 50_000_000)
    sid = c.request("GET", "/t/big.bin?slow")
    deadline = time.monotonic() + 30
    while not c.stream(sid).ended and time.monotonic() < deadline:
        c.run(timeout=1.0)
        c.window_update(sid, 512 * 1024)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM", s
    assert len(s.body) == BIG


# -- the client stops sending -------------------------------------------------

def _body_stall(c, httpd):
    """POST 1000 of 10000 announced bytes to h2x-echo, then nothing."""
    sid = c.request("POST", "/h2x/echo", headers=[("content-length", "10000"),
                                                   ("content-type", "application/octet-stream")],
                    body=b"x" * 1000, end_stream=False)
    return sid, time.monotonic()


def _wait_log(httpd, needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = [l for l in httpd.log.new_lines() if needle in l]
        if lines:
            return lines
        time.sleep(0.1)
    return []


def _assert_body_stall_reset(c, sid, t_sent, timeout):
    """The stream gets a RST_STREAM after `timeout` (+ slack).  A complete
    error response before it (RFC 9113 §8.1 allows a response before the
    request ended) is fine if RST_STREAM follows."""
    assert c.run(lambda c: c.stream(sid).rst_code is not None, timeout=timeout + SLACK + 2), \
        c.stream(sid)
    s = c.stream(sid)
    rst = [f for f in s.frames if f.type == "RST_STREAM"][0]
    took = rst.t - t_sent
    assert timeout * 0.9 <= took <= timeout + SLACK, f"reset after {took:.2f}s: {s!r}"
    if s.ended_by == "END_STREAM":       # a full response first
        assert s.status in (400, 408), s
        assert rst.error_code == ErrorCodes.NO_ERROR, s
    return s


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_350_05_request_body_stalls(httpd, frame_client, tls):
    c = frame_client(tls=tls)
    sid, t_sent = _body_stall(c, httpd)
    _assert_other_streams_work(c)
    _assert_body_stall_reset(c, sid, t_sent, TIMEOUT)
    assert _wait_log(httpd, "h2x-echo: read error", 2), "the handler saw no read error"
    _assert_other_streams_work(c)


# -- H2StreamTimeout ------------------------------------------------------------

def test_h2x_350_06_stream_timeout_shorter(httpd, frame_client):
    """Timeout 30, H2StreamTimeout 2: the streams time out after 2 s."""
    httpd.reconfigure(**_config(timeout=30, stream_timeout=TIMEOUT))
    try:
        c = frame_client(auto_window_update=False)
        sid, last = _window_stall(c)
        c2 = frame_client()
        sid2, t_sent = _body_stall(c2, httpd)
        done = threading.Event()
        errors = []

        def body_side():
            try:
                _assert_body_stall_reset(c2, sid2, t_sent, TIMEOUT)
            except BaseException as e:    # noqa: BLE001
                errors.append(e)
            done.set()
        t = threading.Thread(target=body_side)
        t.start()
        assert c.wait_stream_end(sid, timeout=TIMEOUT + SLACK + 2), c.stream(sid)
        _assert_window_reset(c, sid, last, TIMEOUT)
        t.join(15)
        assert not errors, errors
        assert _wait_log(httpd, "h2x-echo: read error", 2), "the handler saw no read error"
        _assert_other_streams_work(c)
    finally:
        httpd.reconfigure(**_config())


def test_h2x_350_07_stream_timeout_longer(httpd, frame_client):
    """Timeout 2, H2StreamTimeout 6: not reset after Timeout, but after 6 s."""
    httpd.reconfigure(**_config(timeout=TIMEOUT, stream_timeout=6))
    try:
        c = frame_client(auto_window_update=False)
        sid, last = _window_stall(c)
        c.run(lambda c: c.stream(sid).ended, timeout=TIMEOUT + 2)
        assert not c.stream(sid).ended, c.stream(sid)
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid)
        _assert_window_reset(c, sid, last, 6)
        _assert_other_streams_work(c)
    finally:
        httpd.reconfigure(**_config())


@pytest.mark.expect_log(r"AH01270", r"AH01225", r"AH01224", r"AH02550", r"AH01215", r"AH00574",
                        r"AH01220", r"Timeout waiting for", r"AH01246")
def test_h2x_350_08_request_body_stalls_into_cgi(httpd, frame_client):
    """The same with a CGI (mod_cgid) reading the body: the stream is
    reset and the connection keeps working."""
    c = frame_client()
    sids = [c.request("POST", "/cgi-bin/echo.py",
                      headers=[("content-length", "10000"),
                               ("content-type", "application/octet-stream")],
                      body=b"x" * 1000, end_stream=False) for _ in range(3)]
    t_sent = time.monotonic()
    _assert_other_streams_work(c)
    assert c.run(lambda c: all(c.stream(s).rst_code is not None for s in sids),
                 timeout=TIMEOUT + SLACK + 2), [c.stream(s) for s in sids]
    for sid in sids:
        s = c.stream(sid)
        rst = [f for f in s.frames if f.type == "RST_STREAM"][0]
        assert rst.t - t_sent <= TIMEOUT + SLACK, s
        if s.ended_by == "END_STREAM":
            assert s.status in (400, 408, 500) and rst.error_code == ErrorCodes.NO_ERROR, s
    _assert_other_streams_work(c)
