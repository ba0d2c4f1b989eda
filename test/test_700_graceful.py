"""Issue 5, point 8: graceful restart and stop lose nothing (DESIGN.md invariant 8).

While one connection has 5 large downloads (read at a moderate pace) and
5 slow CGIs in flight, `apache2 -k graceful` / `-k graceful-stop`:

- the client gets GOAWAY(NO_ERROR) whose last-stream-id is the highest
  stream it opened (RFC 9113 §6.8: every one of them is being processed);
- all 10 responses complete intact (END_STREAM, full bodies, no reset);
- a stream the client opens after the GOAWAY is refused (REFUSED_STREAM)
  or ignored, as §6.8 allows, without disturbing the streams in flight;
- the server then closes the connection; after a graceful restart the
  new generation serves new connections.
"""

import hashlib
import re
import threading
import time

import pytest

from h2x.frames import ErrorCodes
from h2x.httpd import file_content

DL_SIZE = 20_000_000
DOWNLOADS = 5
CGIS = 5
GRANT = 1_000_000          # stream window granted per PERIOD: ~4 MB/s per download
PERIOD = 0.25
SLOW = "/cgi-bin/slow.py?ms=200&s=4"

pytestmark = [pytest.mark.h2, pytest.mark.slow,
              # mod_cgid's daemon is restarted with the generation.
              pytest.mark.expect_log(r"AH01246")]


@pytest.fixture(scope="module")
def big_sha(httpd):
    httpd.make_file("g/big.bin", DL_SIZE)
    return hashlib.sha256(file_content(DL_SIZE)).hexdigest()


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, big_sha):
    httpd.reconfigure(extra_global="Timeout 10\nKeepAliveTimeout 5\n")
    yield


def _pace(c, sids):
    """Top up each unfinished stream's window to GRANT."""
    for sid in sids:
        rec = c.stream(sid)
        if not rec.ended and rec.recv_window < GRANT // 2:
            c.window_update(sid, GRANT - rec.recv_window)


def _start_load(c):
    c.window_update(0, 1_000_000_000)
    downloads = [c.request("GET", "/g/big.bin") for _ in range(DOWNLOADS)]
    cgis = [c.request("GET", SLOW) for _ in range(CGIS)]
    _pace(c, downloads)
    # Everything is under way: some body on each stream.
    ok = c.run(lambda c: all(len(c.stream(s).body) > 0 for s in downloads + cgis), timeout=10)
    assert ok, [c.stream(s) for s in downloads + cgis]
    return downloads, cgis


def _in_background(fn):
    box = {}

    def run():
        try:
            fn()
        except BaseException as e:   # noqa: BLE001 - re-raised by the caller
            box["error"] = e
    t = threading.Thread(target=run)
    t.start()
    return t, box


def _drive_through_goaway(c, downloads, cgis, action):
    """Start `action` in the background, keep reading at pace until the
    GOAWAY; open one more stream then; read until all in-flight streams
    ended.  Returns (late_sid, thread, box)."""
    t, box = _in_background(action)
    deadline = time.monotonic() + 15
    while not c.goaways and not c.closed and time.monotonic() < deadline:
        c.run(timeout=PERIOD)
        _pace(c, downloads)
    assert c.goaways, f"no GOAWAY ({c.close_reason}); {box}"
    in_flight = [s for s in downloads + cgis if not c.stream(s).ended]
    assert in_flight, "the load ended before the GOAWAY: nothing was tested"
    late = c.request("GET", "/1k.txt")
    deadline = time.monotonic() + 40
    while c.unended(include_expected=True) and time.monotonic() < deadline:
        if c.closed:
            break
        c.run(timeout=PERIOD, until=lambda c: not [s for s in downloads + cgis
                                                   if not c.stream(s).ended]
              and c.stream(late).ended)
        _pace(c, downloads)
        if all(c.stream(s).ended for s in downloads + cgis):
            break
    return late, t, box, in_flight


def _assert_goaway(c, downloads, cgis):
    highest = max(downloads + cgis)
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR, g
    assert g.last_stream_id == highest, f"GOAWAY last={g.last_stream_id}, opened up to {highest}"
    for later in c.goaways[1:]:
        assert later.last_stream_id <= g.last_stream_id, c.goaways
        assert later.error_code == ErrorCodes.NO_ERROR, c.goaways


def _assert_complete(c, downloads, cgis, big_sha):
    for sid in downloads:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.rst_code is None, \
            f"download {sid}: {len(s.body)} bytes, {s.ended_by}, rst={s.rst_name}"
        assert s.status == 200
        assert len(s.body) == DL_SIZE and hashlib.sha256(s.body).hexdigest() == big_sha, \
            f"download {sid}: {len(s.body)} bytes"
        assert c.shape(sid) == "HEADERS DATA[ES]"
    for sid in cgis:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.rst_code is None, s
        assert s.status == 200
        lines = s.body.decode().splitlines()
        assert lines == [f"chunk {i}" for i in range(len(lines))], s.body[-200:]
        assert len(lines) >= 15, f"cgi {sid}: only {len(lines)} chunks"


def _assert_late(c, late):
    """RFC 9113 §6.8: a stream above the GOAWAY's last id is refused or
    ignored; it is never served."""
    s = c.stream(late)
    if s.frames:
        assert c.shape(late) == "RST(REFUSED_STREAM)" or s.ended_by == "GOAWAY", s
    else:
        c.expect_open(late)       # ignored, as §6.8 allows


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_700_01_graceful_restart(httpd, frame_client, big_sha, tls):
    c = frame_client(tls=tls, auto_window_update=False)
    downloads, cgis = _start_load(c)
    late, t, box, in_flight = _drive_through_goaway(c, downloads, cgis, httpd.graceful)
    t.join(30)
    assert "error" not in box, box["error"]
    _assert_goaway(c, downloads, cgis)
    _assert_complete(c, downloads, cgis, big_sha)
    _assert_late(c, late)
    # All accepted streams done: the server closes the connection.
    assert c.wait_closed(timeout=10), "connection still open after its streams finished"
    # The new generation serves.
    c2 = frame_client(tls=tls)
    sids = [c2.request("GET", "/1k.txt"), c2.request("GET", "/cgi-bin/hello.py")]
    assert c2.wait_all_ended(timeout=10), c2.unended()
    assert all(c2.stream(s).status == 200 for s in sids)


def test_h2x_700_02_graceful_stop(httpd, frame_client, big_sha):
    c = frame_client(auto_window_update=False)
    c_tls = frame_client(tls=True)
    tls_sid = c_tls.request("GET", "/cgi-bin/slow.py?ms=200&s=3")
    # Keep reading the TLS connection while the server drains: a client that
    # does not read while the server lingers and closes can lose what the
    # server wrote (its own late sends fail and the socket is torn down).
    tls_reader = threading.Thread(target=c_tls.wait_stream_end, args=(tls_sid,),
                                  kwargs={"timeout": 30})
    tls_reader.start()
    downloads, cgis = _start_load(c)
    pid = httpd.pid
    try:
        late, t, box, in_flight = _drive_through_goaway(
            c, downloads, cgis, lambda: httpd.graceful_stop(timeout=60))
        _assert_goaway(c, downloads, cgis)
        _assert_complete(c, downloads, cgis, big_sha)
        _assert_late(c, late)
        assert c.wait_closed(timeout=10), "connection still open after its streams finished"
        # The other connection also got its GOAWAY and finished its stream.
        tls_reader.join(30)
        assert c_tls.stream(tls_sid).ended_by, c_tls.stream(tls_sid)
        st = c_tls.stream(tls_sid)
        assert st.ended_by == "END_STREAM" and st.status == 200, st
        assert c_tls.goaways and c_tls.goaway.last_stream_id == tls_sid, c_tls.goaways
        t.join(30)
        assert "error" not in box, box["error"]
        assert not httpd.running, f"httpd {pid} still running after graceful-stop"
    finally:
        if not httpd.running:
            httpd.start()
    c2 = frame_client()
    sid = c2.request("GET", "/1k.txt")
    assert c2.wait_stream_end(sid) and c2.stream(sid).status == 200


@pytest.mark.expect_log(r"AH00574", r"AH01220", r"Timeout waiting for output from CGI script")
def test_h2x_700_03_graceful_with_stalled_stream(httpd, frame_client):
    """A graceful restart does not keep a stalled stream alive forever: it
    gets its RST_STREAM(INTERNAL_ERROR) after Timeout, its healthy
    neighbour completes, and then the connection closes."""
    httpd.reconfigure(extra_global="Timeout 2\nKeepAliveTimeout 5\n")
    try:
        c = frame_client()
        stalled = c.request("GET", "/cgi-bin/stall.py?n=100&s=10")
        slow = c.request("GET", "/cgi-bin/slow.py?ms=200&s=3")
        assert c.run(lambda c: c.stream(stalled).body and c.stream(slow).body, timeout=10)
        t, box = _in_background(httpd.graceful)
        assert c.wait_goaway(timeout=10), c.frames[-5:]
        assert c.goaway.last_stream_id == slow and c.goaway.error_code == ErrorCodes.NO_ERROR
        assert c.wait_all_ended(timeout=10), c.unended()
        t.join(30)
        assert "error" not in box, box["error"]
        s = c.stream(stalled)
        assert c.shape(stalled) == "HEADERS DATA RST(INTERNAL_ERROR)", s
        assert s.end_time - s.start_time <= 2 + 3 + 1, s
        assert c.stream(slow).ended_by == "END_STREAM", c.stream(slow)
        assert c.wait_closed(timeout=10), "connection still open after its streams ended"
    finally:
        httpd.reconfigure(extra_global="Timeout 10\nKeepAliveTimeout 5\n")
