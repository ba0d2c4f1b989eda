"""Issue 5, point 2: other incomplete responses end with RST_STREAM.

A response whose final headers went out but whose body cannot complete
(an error bucket, a Content-Length that is never reached, a proxied
backend that closes early) must end with RST_STREAM(INTERNAL_ERROR), never
with END_STREAM, which would present a truncated body as whole (DESIGN.md
invariant 2, STYLE §3.4).  A handler that stalls before any headers gets the
error response httpd gives over HTTP/1.1 (mod_cgid: 504), complete.
A handler that returns an error status after its response started (what
mod_proxy_http2 does when its backend dies mid-body) is reset too: httpd
would append its error document, or the ErrorDocument, to the body.
"""

import socket
import threading
import time

import pytest

from h2x.frames import ErrorCodes
from h2x.ports import free_port

TIMEOUT = 2
HANDLERS = """
<Location /h2x/error-bucket>
    SetHandler h2x-error-bucket
</Location>
<Location /h2x/short-cl>
    SetHandler h2x-short-cl
</Location>
<Location /h2x/stall>
    SetHandler h2x-stall
</Location>
<Location /h2x/stall-ed>
    SetHandler h2x-stall
    ErrorDocument 503 /hello.txt
    ErrorDocument 500 "a custom error text"
</Location>
<Location /h2x/status>
    SetHandler h2x-status
</Location>
<Location /h2x/status-ed>
    SetHandler h2x-status
    ErrorDocument 503 /hello.txt
</Location>
"""
HELLO = b"hello\n"  # htdocs/hello.txt
REPEAT = 10          # streams per case, all at once on one connection

pytestmark = [pytest.mark.h2]


def body(n):
    return (b"0123456789abcdef" * (n // 16 + 1))[:n]


class ShortBackend:
    """An HTTP/1.1 server on a free port that answers every request with
    `Content-Length: 1000`, 100 body bytes, and then closes."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.requests = 0
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.5)
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn):
        try:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            self.requests += 1
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                         b"Content-Length: 1000\r\n\r\n" + body(100))
            time.sleep(0.1)
        except OSError:
            pass
        finally:
            conn.close()

    def close(self):
        self._stop = True
        self.sock.close()


@pytest.fixture(scope="module")
def backend():
    b = ShortBackend()
    yield b
    b.close()


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, backend):
    httpd.reconfigure(extra_global=(
        f"Timeout {TIMEOUT}\n{HANDLERS}\n"
        f"ProxyPass /backend/ http://127.0.0.1:{backend.port}/\n"))
    yield


def _assert_reset(c, sid):
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM", f"stream {sid}: {s!r}"
    assert s.rst_code == ErrorCodes.INTERNAL_ERROR, f"stream {sid}: {s!r}"
    assert not any(f.end_stream for f in s.frames), f"stream {sid}: {s!r}"
    # The flushed headers and body and the error reach c1 together; c1
    # resets at once and may drop what it had not yet written (STYLE §3.4).
    assert c.shape(sid) in ("HEADERS DATA RST(INTERNAL_ERROR)", "HEADERS RST(INTERNAL_ERROR)",
                            "RST(INTERNAL_ERROR)"), f"stream {sid}: {s!r}"
    if s.status is not None:
        assert s.status == 200
    assert body(100).startswith(s.body), f"stream {sid}: {s!r}"


def _assert_usable(c):
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=10)
    assert c.shape(sid) == "HEADERS DATA[ES]", c.stream(sid)
    assert not c.goaways and not c.closed


def _many(c, path, n=REPEAT, timeout=10):
    sids = [c.request("GET", path) for _ in range(n)]
    assert c.wait_all_ended(timeout=timeout), c.unended()
    return sids


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("eos", [0, 1], ids=["no-eos", "eos"])
def test_h2x_310_01_error_bucket(frame_client, tls, eos):
    """Headers, 100 bytes, an error bucket (mod_proxy's broken backend):
    reset, even when an EOS follows the error bucket."""
    c = frame_client(tls=tls)
    for sid in _many(c, f"/h2x/error-bucket?n=100&e=502&eos={eos}"):
        _assert_reset(c, sid)
    _assert_usable(c)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_310_02_short_content_length(frame_client, tls):
    """Content-Length: 1000 announced, 100 bytes sent, then EOS: the body is
    short of its declared length, so it is not complete (RFC 9110 §8.6,
    RFC 9113 §8.1.1): reset, never END_STREAM."""
    c = frame_client(tls=tls)
    sids = _many(c, "/h2x/short-cl?cl=1000&n=100")
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s
        assert not any(f.end_stream for f in s.frames), s
        assert c.shape(sid) in ("HEADERS DATA RST(INTERNAL_ERROR)", "HEADERS RST(INTERNAL_ERROR)",
                                "RST(INTERNAL_ERROR)"), s
        if s.status is not None:
            assert s.header("content-length") == "1000", s.response_headers
            assert len(s.body) <= 100
    _assert_usable(c)


@pytest.mark.expect_log(r"AH01110", r"AH01102", r"AH00574", r"AH01095", r"AH01097",
                        r"AH02609")
def test_h2x_310_03_proxy_backend_closes_early(frame_client, backend):
    """mod_proxy_http to an HTTP/1.1 backend that announces 1000 bytes,
    sends 100 and closes: reset."""
    c = frame_client()
    before = backend.requests
    sids = _many(c, "/backend/short", n=5)
    assert backend.requests - before == 5
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s
        assert not any(f.end_stream for f in s.frames), s
        # Headers and the 100 bytes may or may not have left before the
        # failure was seen; they must never end the stream.
        assert c.shape(sid) in ("HEADERS DATA RST(INTERNAL_ERROR)",
                                "HEADERS RST(INTERNAL_ERROR)", "RST(INTERNAL_ERROR)"), s
        assert len(s.body) <= 100
    _assert_usable(c)


@pytest.mark.expect_log(r"AH01220", r"Timeout waiting for output from CGI script",
                        r"Script timed out before returning headers", r"AH01246")
def test_h2x_310_04_stall_before_headers_504(frame_client):
    """A CGI silent before its headers: mod_cgid answers 504 after Timeout,
    as over HTTP/1.1, and that response is complete (END_STREAM)."""
    c = frame_client()
    sids = _many(c, "/cgi-bin/stall_before_headers.py?s=8", n=5, timeout=TIMEOUT + 8)
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM", s
        assert s.status == 504, s
        assert s.rst_code is None
        assert c.shape(sid) in ("HEADERS DATA[ES]", "HEADERS DATA DATA(0)[ES]"), s
        took = s.end_time - s.start_time
        assert TIMEOUT * 0.9 <= took <= TIMEOUT + 3, f"{took:.2f}s {s!r}"
    _assert_usable(c)


def test_h2x_310_05_slow_handler_returning_ok_is_complete(frame_client):
    """Control: h2x-stall sleeps after its body and returns OK, so httpd
    adds the EOS; that response is complete and must not be reset (and a
    busy handler is not cut off by Timeout, DESIGN invariant 6)."""
    c = frame_client()
    sids = _many(c, f"/h2x/stall?n=100&s={TIMEOUT + 0.5}", n=5, timeout=TIMEOUT + 8)
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM", s
        assert s.status == 200 and s.body == body(100), s
        assert c.shape(sid) in ("HEADERS DATA[ES]", "HEADERS DATA DATA(0)[ES]"), s
    _assert_usable(c)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("path", ["/h2x/stall?n=100&s=0&ret=503",
                                  "/h2x/stall?n=100&s=0&ret=500",
                                  "/h2x/stall?n=100&s=0&ret=404",
                                  "/h2x/stall-ed?n=100&s=0&ret=503",
                                  "/h2x/stall-ed?n=100&s=0&ret=500"],
                         ids=["503", "500", "404", "ErrorDocument-url", "ErrorDocument-text"])
def test_h2x_310_06_error_status_after_body(frame_client, tls, path):
    """Headers and 100 bytes flushed, then the handler returns an error
    status: httpd starts its error response (a canned page, an
    ErrorDocument text, or an internal redirect to an ErrorDocument URL)
    as if nothing had been sent. The stream is reset instead, and none of
    that document reaches the client after the body (before, mod_h2x and
    mod_http2 both sent it as more body and ended the stream with
    END_STREAM)."""
    c = frame_client(tls=tls)
    for sid in _many(c, path):
        _assert_reset(c, sid)
    _assert_usable(c)


@pytest.mark.parametrize("path,text", [
    ("/h2x/status?s=503&err=1", b"Service Unavailable"),
    ("/h2x/status-ed?s=503&err=1", HELLO)], ids=["canned", "ErrorDocument-url"])
def test_h2x_310_07_error_status_before_head_is_complete(frame_client, path, text):
    """Control: an error status returned before anything went out is an
    ordinary, complete error response (END_STREAM), ErrorDocument and all."""
    c = frame_client()
    sid = c.request("GET", path)
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM" and s.status == 503, s
    assert text in s.body, s
    _assert_usable(c)
