"""Issue 11, point 3: idle connections in mod_h2x's event loop (H2xEventLoop,
h2x_conn_loop.h).

An idle HTTP/2 connection is handed to a loop thread of mod_h2x's own; that
thread serves the next request itself when it is a lone small static file,
and hands the connection to an MPM worker (a timed callback) for anything
that has to wait.  What a client sees must not change:

- every kind of request on one connection, in turns that go from the loop
  to a worker and back: bodies, END_STREAM, statuses (_01);
- a client that stops reading fills its socket; the loop must not wait on
  it: other connections are served meanwhile, and the stalled one gets
  every byte once it reads again (_02);
- KeepAliveTimeout per connection, in the order the connections went idle
  (_03); connections the clients closed are released: a graceful stop
  right after ends at once (_04);
- on by default, `H2xEventLoop off`, and the directive's checks (_05); a
  module whose request hooks may block keeps requests off the loop
  thread (_06); connections the loop closes leave no MPM thread's
  scoreboard slot marked closing (_07); a request logged after its
  connection went idle in the loop counts in server-status (_08);
  connections whose streams are in progress hold no MPM thread (_09).

Timing bounds are generous; they tell "waited for the stalled client" (the
server's Timeout, 10 s here) from "did not", nothing finer.
"""

import re
import socket
import time

import pytest

from h2x.clients import curl
from h2x.frames import ErrorCodes
from h2x.httpd import ONE_CHILD, file_content

pytestmark = [pytest.mark.h2]

KEEPALIVE = 3
TIMEOUT = 10


def _config(extra="", loop="on"):
    """loop: the H2xEventLoop value, None for no directive (the default)."""
    directive = f"H2xEventLoop {loop}\n" if loop else ""
    return (f"Timeout {TIMEOUT}\nKeepAliveTimeout {KEEPALIVE}\n{directive}"
            # A fixed, small send buffer: a client that stops reading fills
            # it after ~100 KB, not after the kernel's autotuned megabytes.
            "SendBufferSize 65536\n"
            "<Location /h2x/echo>\n    SetHandler h2x-echo\n</Location>\n" + extra)


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.make_file("loop/32k.bin", 32 * 1024)
    httpd.make_file("loop/1m.bin", 1024 * 1024)
    httpd.reconfigure(extra_global=_config())
    yield


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_366_01_every_kind_of_request_on_one_connection(frame_client, tls):
    """Static (served by the loop), CGI, a handler with a body, a file too
    big for the loop, a 404, HEAD - three rounds on one connection, each
    request alone, so that each turn starts on the loop."""
    c = frame_client(tls=tls, window=4 << 20)
    cases = [("GET", "/loop/32k.bin", None, 200, file_content(32 * 1024)),
             ("GET", "/cgi-bin/hello.py", None, 200, b"Hello"),
             ("POST", "/h2x/echo", b"x" * 5000, 200, b"x" * 5000),
             ("GET", "/loop/1m.bin", None, 200, file_content(1024 * 1024)),
             ("GET", "/loop/nope.bin", None, 404, None),
             ("HEAD", "/loop/32k.bin", None, 200, b"")]
    for _ in range(3):
        for method, path, body, status, expect in cases:
            time.sleep(0.02)  # idle in between: the loop has it
            sid = c.request(method, path, body=body)
            assert c.wait_stream_end(sid, timeout=10), (method, path)
            s = c.stream(sid)
            assert s.status == status and s.ended_by == "END_STREAM", (method, path, s)
            if expect is not None:
                if path.startswith("/cgi-bin"):
                    assert expect in s.body, s.body[:200]
                else:
                    assert s.body == expect, (method, path, len(s.body))
    assert not c.goaways and not c.closed


def _stalled_client(frame_client, tls, n):
    """A connection that asks for n x 32 KB and then reads nothing: its
    receive buffer is small, the server's send buffer too (SendBufferSize)."""
    c = frame_client(tls=tls, window=16 << 20)
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=5)
    time.sleep(0.1)     # idle: in the loop now
    c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sids = [c.request("GET", "/loop/32k.bin") for _ in range(n)]
    return c, sids


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_366_02_stalled_reader_does_not_hold_the_loop(frame_client, tls):
    """40 x 32 KB asked for and not read: far more than the two socket
    buffers hold. Meanwhile 4 other connections, idle in the same loop,
    make 10 requests each: every one is answered within 3 s (the stalled
    write would take Timeout = 10 s). Then the stalled client reads and
    gets all 40 bodies, whole and in order."""
    n = 40
    others = []
    for _ in range(4):
        o = frame_client(tls=tls)
        sid = o.request("GET", "/1k.txt")
        assert o.wait_stream_end(sid, timeout=5)
        others.append(o)
    time.sleep(0.1)
    stalled, sids = _stalled_client(frame_client, tls, n)
    time.sleep(0.5)     # the server has written what fits by now
    slow = []
    for o in others:
        for _ in range(10):
            t0 = time.monotonic()
            sid = o.request("GET", "/1k.txt")
            ok = o.wait_stream_end(sid, timeout=TIMEOUT + 5)
            took = time.monotonic() - t0
            assert ok and o.stream(sid).status == 200, o.stream(sid)
            if took > 3:
                slow.append(round(took, 2))
    assert not slow, f"requests beside the stalled client took {slow} s"
    assert stalled.wait_all_ended(timeout=30), [stalled.stream(s) for s in sids[-3:]]
    for sid in sids:
        s = stalled.stream(sid)
        assert s.status == 200 and s.ended_by == "END_STREAM", s
        assert s.body == file_content(32 * 1024)


def test_h2x_366_03_keepalive_in_idle_order(frame_client):
    """Three connections go idle 0.8 s apart: each gets GOAWAY(NO_ERROR)
    naming its last stream about KeepAliveTimeout after its own last
    request, then the close."""
    clients = []
    for i in range(3):
        c = frame_client()
        sid = c.request("GET", "/1k.txt")
        assert c.wait_stream_end(sid, timeout=5)
        clients.append((c, sid, time.monotonic()))
        if i < 2:
            time.sleep(0.8)
    for c, sid, idle_at in clients:
        assert c.wait_goaway(timeout=KEEPALIVE + 5), c.frames[-3:]
        took = time.monotonic() - idle_at
        g = c.goaway
        assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == sid, g
        assert c.wait_closed(timeout=5)
        assert KEEPALIVE - 0.5 <= took, (took, sid)
    # All three within their own deadline (+ 2.5 s for the slack and this
    # loop's own order of waiting).
    assert time.monotonic() - clients[-1][2] < KEEPALIVE + 2.5


def test_h2x_366_04_closed_connections_are_released(httpd, frame_client):
    """30 connections, each with a few requests, closed by their clients;
    connections still open and idle in the loop get GOAWAY on a graceful
    stop; the stop then ends within seconds (a connection the loop never
    released would keep the child to the end of GracefulShutdownTimeout)."""
    for i in range(30):
        c = frame_client(tls=(i % 2 == 1))
        for _ in range(3):
            sid = c.request("GET", "/1k.txt")
            assert c.wait_stream_end(sid, timeout=5)
        c.close()
    idle = []
    for i in range(4):
        c = frame_client(tls=(i % 2 == 1))
        sid = c.request("GET", "/1k.txt")
        assert c.wait_stream_end(sid, timeout=5)
        idle.append((c, sid))
    time.sleep(0.5)
    t0 = time.monotonic()
    httpd.graceful_stop(timeout=20, wait=False)
    for c, sid in idle:
        assert c.wait_goaway(timeout=5), c.frames[-3:]
        assert c.goaway.error_code == ErrorCodes.NO_ERROR and c.goaway.last_stream_id == sid
        c.close()
    pid = httpd.pid
    while pid and time.monotonic() - t0 < 20:
        try:
            import os
            os.kill(pid, 0)
        except OSError:
            break
        time.sleep(0.1)
    took = time.monotonic() - t0
    httpd.reconfigure(extra_global=_config())
    assert took < 8, f"graceful stop took {took:.1f} s"


def test_h2x_366_05_directive(httpd, frame_client):
    """The loop is on without the directive (the child logs H2X10049 at
    start) and not with `H2xEventLoop off`, where requests on one
    connection are served alike; bad values fail `apache2 -t` naming the
    directive and the value; a virtual host may set it."""
    rc, out = httpd.check_config(extra_global="H2xEventLoop maybe\n")
    assert rc != 0 and "H2xEventLoop" in out and "maybe" in out, out
    rc, out = httpd.check_config(extra_global="H2xEventLoop\n")
    assert rc != 0 and "H2xEventLoop" in out, out
    rc, out = httpd.check_config(extra_vhost="H2xEventLoop off\n")
    assert rc == 0, out
    def started(loop):
        seen = len(httpd.error_log_lines())
        httpd.reconfigure(extra_global=_config("LogLevel warn h2x:debug\n", loop=loop))
        time.sleep(0.5)  # the children's start-up lines
        return any("H2X10049: mod_h2x: event loop started" in ln
                   for ln in httpd.error_log_lines()[seen:])
    try:
        assert started(None), httpd.error_log_tail()
        assert not started("off"), httpd.error_log_tail()
        for tls in (False, True):
            c = frame_client(tls=tls)
            for path in ("/loop/32k.bin", "/cgi-bin/hello.py", "/loop/32k.bin"):
                time.sleep(0.02)
                sid = c.request("GET", path)
                assert c.wait_stream_end(sid, timeout=10)
                assert c.stream(sid).status == 200
            assert c.stream(sid).body == file_content(32 * 1024)
    finally:
        httpd.reconfigure(extra_global=_config())


def test_h2x_366_06_blocking_module_keeps_requests_off_the_loop(httpd, frame_client, env):
    """With mod_authn_dbm loaded (its lookups may wait on a file system or
    a network DBM), the loop starts no request itself: the log says so at
    child start, and requests are served as before."""
    so = env.apache_module("authn_dbm")
    assert so, "mod_authn_dbm.so missing: apache2-bin ships it"
    httpd.reconfigure(extra_global=_config(
        f"LoadModule authn_dbm_module {so}\nLogLevel warn h2x:debug\n"))
    try:
        c = frame_client()
        for _ in range(3):
            time.sleep(0.02)
            sid = c.request("GET", "/loop/32k.bin")
            assert c.wait_stream_end(sid, timeout=10)
            s = c.stream(sid)
            assert s.status == 200 and s.body == file_content(32 * 1024)
        assert any("mod_authn_dbm.c is loaded: requests start on MPM threads" in ln
                   for ln in httpd.error_log_lines()), httpd.error_log_tail()
    finally:
        httpd.reconfigure(extra_global=_config())


def test_h2x_366_07_closing_leaves_the_scoreboard_clean(httpd, frame_client):
    """Connections the loop closes do not leave an MPM thread's scoreboard
    slot marked closing ('C'): the close runs on whatever worker the loop
    got, and a mark on the slot of the thread that last ran the connection
    stayed there - server-status showed it, and the parent counted one
    idle thread less per mark and started spare children (mod_http2's
    suite saw its restarts race with them)."""
    httpd.reconfigure(extra_global=_config(ONE_CHILD))
    try:
        for i in range(20):
            c = frame_client(tls=(i % 2 == 1))
            for _ in range(2):
                time.sleep(0.02)
                sid = c.request("GET", "/1k.txt")
                assert c.wait_stream_end(sid, timeout=5)
            c.close()
        # The loop lingers up to 2 s on a closed connection, then frees it.
        time.sleep(3)
        r = curl(httpd.url("/server-status?auto"), http="1.1")
        assert r.status == 200, r
        board = re.search(r"^Scoreboard: (\S+)$", r.text, re.M)
        assert board, r.text[-500:]
        assert "C" not in board.group(1), board.group(1)
    finally:
        httpd.reconfigure(extra_global=_config())


def test_h2x_366_08_every_request_counts(httpd, frame_client):
    """server-status counts every request, also those whose stream is
    cleaned up only when the loop closes the connection (a client that
    closes right after its response, as curl does) and those logged after
    the connection went idle in the loop (a handler that returns 0.3 s
    after the response's last byte): on the slot the connection had when
    the stream started, since the MPM drops the connection's own slot
    once the loop has it, and the close runs without one."""
    httpd.reconfigure(extra_global=_config(
        ONE_CHILD + "<Location /h2x/delay>\n    SetHandler h2x-delay\n</Location>\n"))
    try:
        def accesses():
            r = curl(httpd.url("/server-status?auto"), http="1.1")
            assert r.status == 200, r
            m = re.search(r"^Total Accesses: (\d+)$", r.text, re.M)
            assert m, r.text[:500]
            return int(m.group(1))

        before = accesses()
        n = 0
        for i in range(8):
            c = frame_client(tls=(i % 2 == 1))
            sid = c.request("GET", "/loop/32k.bin" if i < 4 else "/h2x/delay?s=0&n=100")
            assert c.wait_stream_end(sid, timeout=5)
            assert c.stream(sid).status == 200
            c.close()
            n += 1
        c = frame_client()
        for _ in range(3):
            sid = c.request("GET", "/h2x/delay?s=0&n=100&after=0.3")
            assert c.wait_stream_end(sid, timeout=5)
            assert c.stream(sid).status == 200
            time.sleep(0.6)  # idle in the loop while the handler returns
            n += 1
        c.close()
        time.sleep(1)
        # the status request before counts too, the one after not yet
        assert accesses() - before == n + 1
    finally:
        httpd.reconfigure(extra_global=_config())


FEW_THREADS = """
ServerLimit 1
StartServers 1
ThreadsPerChild 4
MaxRequestWorkers 4
MinSpareThreads 1
MaxSpareThreads 4
H2MaxWorkers 16
<Location /h2x/stream>
    SetHandler h2x-stream
</Location>
"""


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_366_09_streams_hold_no_mpm_thread(httpd, frame_client, tls):
    """Connections whose streams are in progress wait in the loop, not on
    MPM threads: with 4 MPM threads, 6 connections each streaming a slow
    response (a chunk every 100 ms for 4 s) leave room for a new
    connection, served within a second or two, and every stream gets all
    its chunks, each ended with END_STREAM."""
    httpd.reconfigure(extra_global=_config(FEW_THREADS))
    try:
        busy = []
        for i in range(6):
            c = frame_client(tls=tls)
            sid = c.request("GET", "/1k.txt")  # then idle: the loop has it
            assert c.wait_stream_end(sid, timeout=5)
            busy.append(c)
        time.sleep(0.2)
        t0 = time.monotonic()
        sids = [c.request("GET", "/h2x/stream?count=40&size=100&ms=100") for c in busy]
        for c, sid in zip(busy, sids):
            assert c.run(lambda c, sid=sid: len(c.stream(sid).body) > 0, timeout=5)
        assert time.monotonic() - t0 < 3.5  # all six are streaming at once
        newc = frame_client(tls=tls)
        t1 = time.monotonic()
        sid = newc.request("GET", "/1k.txt")
        assert newc.wait_stream_end(sid, timeout=10)
        took = time.monotonic() - t1
        assert newc.stream(sid).status == 200
        assert took < 2.0, f"a new connection waited {took:.1f} s for an MPM thread"
        for c, sid in zip(busy, sids):
            assert c.wait_stream_end(sid, timeout=15)
            s = c.stream(sid)
            assert s.status == 200 and s.ended_by == "END_STREAM", s
            assert len(s.body) == 40 * 100
    finally:
        httpd.reconfigure(extra_global=_config())
