"""Issue 5, point 4: a client reset frees the work behind the stream.

RST_STREAM(CANCEL) from the client on a stream whose CGI is still
producing (slow.py: a chunk every 200 ms for 60 s) must end the CGI within
5 s (its pid vanishes from /proc), free the worker for the next request,
and leave the connection serving new streams.  The same when the client
closes the whole connection.  The worker pool is kept at WORKERS threads,
so a worker that is not freed shows as a request that never starts.
"""

import os
import socket
import threading
import time
from typing import List

import pytest

from core_helpers import pid_alive, read_http1_head, read_pidfile
from h2x.frames import ErrorCodes

WORKERS = 2
GONE_WITHIN = 5.0
SLOW = "/cgi-bin/slow.py?ms=200&s=60"

pytestmark = [pytest.mark.h2]


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(extra_global=(
        f"H2MinWorkers 1\nH2MaxWorkers {WORKERS}\nLogLevel warn h2x:debug h2x_test:info\n"
        "<Location /h2x/stream>\n    SetHandler h2x-stream\n</Location>\n"))
    yield


def _wait_gone(pids, timeout=GONE_WITHIN):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if pid_alive(p)]
        if not alive:
            return []
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def _start_slow(c, piddir, n):
    """n slow.py streams; wait until each produced a chunk and wrote its pid."""
    sids, pids = [], []
    for i in range(n):
        path = os.path.join(piddir, f"{c.port}-{len(c.streams)}-{i}.pid")
        sids.append(c.request("GET", f"{SLOW}&pidfile={path}"))
        pids.append(path)
    assert c.run(lambda c: all(b"chunk 0" in c.stream(s).body for s in sids), timeout=15), \
        [c.stream(s) for s in sids]
    pids = [read_pidfile(p) for p in pids]
    assert all(pid_alive(p) for p in pids)
    return sids, pids


def _assert_serves(c, n=WORKERS + 1):
    """New streams (more than the pool has workers) complete promptly: the
    workers of the reset streams are free again."""
    sids = [c.request("GET", "/cgi-bin/hello.py") for _ in range(n)]
    assert c.wait_all_ended(timeout=10), c.unended()
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.status == 200, s
    assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_330_01_cancel_ends_cgi(frame_client, piddir, tls):
    c = frame_client(tls=tls)
    for _ in range(3):                     # the same connection, three rounds
        (sid,), (pid,) = _start_slow(c, piddir, 1)
        c.reset(sid, ErrorCodes.CANCEL)
        t0 = time.monotonic()
        left = _wait_gone([pid])
        assert not left, f"CGI {pid} still alive {GONE_WITHIN}s after RST_STREAM(CANCEL)"
        c.run(timeout=0.3)
        # After our reset the server may send nothing more, or RST_STREAM;
        # never END_STREAM (the response was not complete).
        assert not [f for f in c.stream(sid).frames if f.end_stream and f.t > t0]
        _assert_serves(c)


def test_h2x_330_02_cancel_all_workers(frame_client, piddir):
    """Occupy every worker with slow CGIs, reset them all: the pool is free
    again (new requests would queue forever otherwise)."""
    c = frame_client()
    sids, pids = _start_slow(c, piddir, WORKERS)
    # With every worker busy, a further request waits (the limit is real).
    queued = c.request("GET", "/cgi-bin/hello.py")
    c.run(timeout=1.0)
    assert not c.stream(queued).frames, c.stream(queued)
    for sid in sids:
        c.reset(sid, ErrorCodes.CANCEL)
    # The reset frees a worker: the queued request runs now.
    assert c.wait_stream_end(queued, timeout=GONE_WITHIN), c.stream(queued)
    assert c.stream(queued).status == 200
    left = _wait_gone(pids)
    assert not left, f"CGIs {left} still alive {GONE_WITHIN}s after RST_STREAM(CANCEL)"
    _assert_serves(c)


@pytest.mark.parametrize("code", [ErrorCodes.CANCEL, ErrorCodes.INTERNAL_ERROR,
                                  ErrorCodes.NO_ERROR], ids=["CANCEL", "INTERNAL", "NO_ERROR"])
def test_h2x_330_03_reset_handler_stops(httpd, frame_client, code):
    """h2x-stream (a chunk every 100 ms for 30 s) stops writing soon after
    the client's reset: it logs 'stopped after N chunks'."""
    c = frame_client()
    sid = c.request("GET", "/h2x/stream?count=300&size=10&ms=100")
    assert c.run(lambda c: len(c.stream(sid).body) >= 20, timeout=10)
    c.reset(sid, code)
    deadline = time.monotonic() + GONE_WITHIN
    stopped = []
    while time.monotonic() < deadline and not stopped:
        stopped = [l for l in httpd.log.new_lines() if "h2x-stream: stopped after" in l]
        time.sleep(0.1)
    assert stopped, "h2x-stream did not stop within 5s of the reset"
    _assert_serves(c)


def test_h2x_330_04_connection_close_ends_cgis(frame_client, piddir):
    """The client closes the TCP connection with slow CGIs in flight: all
    end within 5 s, and the workers serve other connections."""
    c = frame_client()
    sids, pids = _start_slow(c, piddir, WORKERS)
    c.close()
    for sid in sids:
        c.expect_open(sid)         # the client dropped them with the connection
    left = _wait_gone(pids)
    assert not left, f"CGIs {left} still alive {GONE_WITHIN}s after the client closed"
    _assert_serves(frame_client())


def test_h2x_330_05_connection_close_tls_and_goaway(frame_client, piddir):
    """The same over TLS, with a polite GOAWAY before the close."""
    c = frame_client(tls=True)
    sids, pids = _start_slow(c, piddir, WORKERS)
    c.send_goaway(last_stream_id=0)
    c.close()
    for sid in sids:
        c.expect_open(sid)
    left = _wait_gone(pids)
    assert not left, f"CGIs {left} still alive {GONE_WITHIN}s after the client closed"
    _assert_serves(frame_client(tls=True))


def _client_ends(c, sid, how):
    """The client resets stream `sid` ("reset", CANCEL) or closes the whole
    connection ("close"); returns the time it did."""
    t0 = time.monotonic()
    if how == "reset":
        c.reset(sid, ErrorCodes.CANCEL)
    else:
        c.close()
        c.expect_open(sid)
    return t0


SILENT = "/cgi-bin/stall.py?n=100&s=30"
# mod_cgid's daemon ends the script with SIGTERM at once; mod_cgi's script
# gets the SIGTERM of APR's pool cleanup, which it no longer ignores: a
# process forked by a mod_h2x worker starts with no signal blocked
# (h2x_workers.cpp), where it would inherit the threaded MPM's blocked
# SIGTERM and live on until the SIGKILL 3 s later.
SILENT_GONE_WITHIN = {"cgid": 3.0, "cgi": 3.0}


@pytest.mark.parametrize("cgi", ["cgid", "cgi"])
@pytest.mark.parametrize("how", ["reset", "close"])
def test_h2x_330_06_silent_cgi_freed_within_3s(httpd, frame_client, piddir, cgi, how):
    """Issue 10: a CGI that writes once and then stays silent (stall.py:
    100 bytes, then 30 s asleep) is gone within 3 s of the client's
    RST_STREAM(CANCEL) or connection close, under mod_cgid and mod_cgi -
    not after Timeout (10 s here) - and its worker serves again."""
    httpd.reconfigure(cgi=cgi, extra_global=(
        f"Timeout 10\nH2MinWorkers 1\nH2MaxWorkers {WORKERS}\n"
        "LogLevel warn h2x:debug h2x_test:info\n"))
    try:
        c = frame_client()
        path = os.path.join(piddir, f"silent-{cgi}-{how}.pid")
        sid = c.request("GET", f"{SILENT}&pidfile={path}")
        assert c.run(lambda cl: len(cl.stream(sid).body) >= 100, timeout=15), c.stream(sid)
        pid = read_pidfile(path)
        time.sleep(0.3)                    # the worker is blocked on the silent CGI now
        t0 = _client_ends(c, sid, how)
        left = _wait_gone([pid], timeout=SILENT_GONE_WITHIN[cgi] + 2)
        elapsed = time.monotonic() - t0
        assert not left, f"silent CGI {pid} alive {elapsed:.1f}s after the client's {how}"
        assert elapsed < SILENT_GONE_WITHIN[cgi], f"silent CGI ended only after {elapsed:.1f}s"
        _assert_serves(c if how == "reset" else frame_client())
    finally:
        httpd.reconfigure(cgi="cgid", extra_global=(
            f"H2MinWorkers 1\nH2MaxWorkers {WORKERS}\nLogLevel warn h2x:debug h2x_test:info\n"
            "<Location /h2x/stream>\n    SetHandler h2x-stream\n</Location>\n"))


class _SilentBackend:
    """An HTTP/1.1 backend on its own port: answers every request with a
    chunked head and 100 body bytes, then stays silent (holding the
    connection) and records when the proxy closes it."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.closed_at: List[float] = []
        self.answered = threading.Event()
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        with conn:
            if not read_http1_head(conn).endswith(b"\r\n\r\n"):
                return
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Transfer-Encoding: chunked\r\n\r\n64\r\n" + b"x" * 100 + b"\r\n")
            self.answered.set()
            conn.settimeout(60)
            try:
                while conn.recv(4096):
                    pass
            except OSError:
                pass
            self.closed_at.append(time.monotonic())

    def close(self):
        self._stop = True
        self.sock.close()


PROXY_GONE_WITHIN = 3.0


@pytest.mark.parametrize("how", ["reset", "close"])
def test_h2x_330_07_silent_backend_freed_within_3s(httpd, frame_client, how):
    """Issue 10: a proxied request (mod_proxy_http) whose backend sent 100
    bytes and then went silent ends within 3 s of the client's
    RST_STREAM(CANCEL) or connection close - the proxy's connection to the
    backend is closed - not after ProxyTimeout (30 s here)."""
    backend = _SilentBackend()
    # mod_proxy_http says so when its backend read is cut short.
    httpd.expect_log(r"AH01110: error reading response")
    httpd.reconfigure(extra_global=(
        f"Timeout 30\nH2MinWorkers 1\nH2MaxWorkers {WORKERS}\n"
        "LogLevel warn h2x:debug h2x_test:info\n"
        f"ProxyPass /330-backend/ http://127.0.0.1:{backend.port}/\n"))
    try:
        c = frame_client()
        sid = c.request("GET", "/330-backend/silent")
        assert c.run(lambda cl: len(cl.stream(sid).body) >= 100, timeout=15), c.stream(sid)
        assert backend.answered.wait(5)
        time.sleep(0.3)                    # the proxy is blocked on its backend now
        assert not backend.closed_at, "backend connection closed before the reset"
        t0 = _client_ends(c, sid, how)
        deadline = t0 + PROXY_GONE_WITHIN + 2
        while not backend.closed_at and time.monotonic() < deadline:
            time.sleep(0.05)
        assert backend.closed_at, f"backend connection still open {PROXY_GONE_WITHIN + 2}s " \
                                  f"after the client's {how}"
        elapsed = backend.closed_at[0] - t0
        assert elapsed < PROXY_GONE_WITHIN, f"backend connection closed only after {elapsed:.1f}s"
        _assert_serves(c if how == "reset" else frame_client())
    finally:
        backend.close()
        httpd.reconfigure(extra_global=(
            f"H2MinWorkers 1\nH2MaxWorkers {WORKERS}\nLogLevel warn h2x:debug h2x_test:info\n"
            "<Location /h2x/stream>\n    SetHandler h2x-stream\n</Location>\n"))
