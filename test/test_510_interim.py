"""Issue 4: interim responses (1xx) over HTTP/2.

- `Expect: 100-continue`: the 100 (an interim HEADERS with :status 100)
  goes out when the handler first reads the request body (h2x-echo), never
  for a request answered without reading it (404, 401 from auth, 413 from
  LimitRequestBody with a known Content-Length); the client then sends no
  body.  Through mod_proxy_http with `Proxy100Continue on` the 100 reaches
  the client only when the backend sent its own.
- 103 Early Hints, with `H2EarlyHints on`: from `H2EarlyHint`, from a
  handler (h2x-early-hints) and from a proxied backend.  Shape:
  `HEADERS(103) HEADERS(200) DATA...[ES]`.

The backends are tiny HTTP/1.1 servers on a thread (Backend below), also
used by test_520_trailers.
"""

import socket
import threading
import time
from typing import Callable, List, Optional

import pytest

pytestmark = [pytest.mark.h2]


# -- a tiny scripted HTTP/1.1 backend --------------------------------------

class BackendConn:
    """One accepted backend connection with request-reading helpers."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.buf = b""
        self.head = b""
        self.headers = {}
        self.request_line = ""

    def read_head(self, timeout: float = 10.0) -> bool:
        self.sock.settimeout(timeout)
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return False
            self.buf += chunk
        self.head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = self.head.decode("latin-1").split("\r\n")
        self.request_line = lines[0]
        self.headers = {}
        for ln in lines[1:]:
            if ":" in ln:
                k, v = ln.split(":", 1)
                self.headers[k.strip().lower()] = v.strip()
        return True

    def read_body(self, timeout: float = 10.0) -> bytes:
        """The request body (Content-Length or chunked)."""
        self.sock.settimeout(timeout)
        if "content-length" in self.headers:
            n = int(self.headers["content-length"])
            while len(self.buf) < n:
                chunk = self.sock.recv(65536)
                if not chunk:
                    break
                self.buf += chunk
            body, self.buf = self.buf[:n], self.buf[n:]
            return body
        if "chunked" in self.headers.get("transfer-encoding", "").lower():
            body = b""
            while True:
                while b"\r\n" not in self.buf:
                    self.buf += self.sock.recv(65536)
                line, self.buf = self.buf.split(b"\r\n", 1)
                size = int(line.split(b";")[0], 16)
                while len(self.buf) < size + 2:
                    self.buf += self.sock.recv(65536)
                body += self.buf[:size]
                self.buf = self.buf[size + 2:]
                if size == 0:
                    return body
        return b""

    def send(self, data: bytes):
        self.sock.sendall(data)


class Backend:
    """An HTTP/1.1 server on 127.0.0.1:<free port> running `script(conn)` for
    every connection, in a daemon thread.  Each request is recorded in
    `self.requests` (request line, headers, body if the script read it)."""

    def __init__(self, script: Callable[["BackendConn"], None]):
        self.script = script
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))          # the kernel picks a free port
        self.port = self.lsock.getsockname()[1]
        self.lsock.listen(16)
        self.lsock.settimeout(0.5)
        self.conns: List[BackendConn] = []
        self.errors: List[str] = []
        self._stop = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self._stop:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            conn = BackendConn(s)
            self.conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: BackendConn):
        try:
            self.script(conn)
        except Exception as e:   # noqa: BLE001 - recorded for the test
            self.errors.append(f"{type(e).__name__}: {e}")
        finally:
            try:
                conn.sock.close()
            except OSError:
                pass

    def close(self):
        self._stop = True
        self.lsock.close()
        self.thread.join(timeout=2)


def final_response(body: bytes, status: str = "200 OK", extra: str = "") -> bytes:
    return (f"HTTP/1.1 {status}\r\nContent-Type: text/plain\r\n{extra}"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode() + body


# -- the server ---------------------------------------------------------------

def _script_100(conn: BackendConn):
    """Answers 100 Continue when asked, reads the body, echoes its length."""
    conn.read_head()
    if conn.headers.get("expect", "").lower() == "100-continue":
        conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
    body = conn.read_body()
    conn.send(final_response(b"got %d\n" % len(body)))


def _script_417(conn: BackendConn):
    """Answers 417 at once, without a 100 and without reading the body."""
    conn.read_head()
    conn.send(final_response(b"no\n", status="417 Expectation Failed"))


def _script_401(conn: BackendConn):
    conn.read_head()
    conn.send(final_response(b"auth\n", status="401 Unauthorized",
                             extra='WWW-Authenticate: Basic realm="be"\r\n'))


def _script_103(conn: BackendConn):
    conn.read_head()
    conn.send(b"HTTP/1.1 103 Early Hints\r\nLink: </be.css>; rel=preload; as=style\r\n\r\n")
    time.sleep(0.3)
    conn.send(final_response(b"x" * 1000, extra="Link: </be.css>; rel=preload; as=style\r\n"))


BACKENDS = {"100": _script_100, "417": _script_417, "401": _script_401, "103": _script_103}


@pytest.fixture(scope="module")
def backends():
    bes = {name: Backend(script) for name, script in BACKENDS.items()}
    yield bes
    for be in bes.values():
        be.close()


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, backends):
    htpasswd = f"{httpd.root}/conf/htpasswd"
    with open(htpasswd, "w") as f:
        f.write("")
    httpd.make_file("hints/x.html", 2000)
    proxies = "\n".join(
        f"ProxyPass /be{name}/ http://127.0.0.1:{be.port}/\n"
        f"ProxyPassReverse /be{name}/ http://127.0.0.1:{be.port}/"
        for name, be in backends.items())
    conf = f"""
H2EarlyHints on
Proxy100Continue on
ProxyTimeout 10
<Location /h2x/echo>
    SetHandler h2x-echo
</Location>
<Location /h2x/limited>
    SetHandler h2x-echo
    LimitRequestBody 1000
</Location>
<Location /auth>
    SetHandler h2x-echo
    AuthType Basic
    AuthName "h2x"
    AuthBasicProvider file
    AuthUserFile "{htpasswd}"
    Require valid-user
</Location>
<Location /h2x/hints>
    SetHandler h2x-early-hints
</Location>
<Location /hints/>
    H2EarlyHint Link "</x.css>; rel=preload"
</Location>
{proxies}
"""
    httpd.reconfigure(extra_global=conf)
    yield


# -- helpers ------------------------------------------------------------------

def _statuses(rec) -> List[str]:
    return [dict(h).get(":status") for h in rec.headers]


def _expect_request(c, path, length, method="POST"):
    """HEADERS with expect: 100-continue and no END_STREAM."""
    return c.request(method, path, headers=[("expect", "100-continue"),
                                            ("content-length", str(length)),
                                            ("content-type", "application/octet-stream")],
                     end_stream=False)


# -- 100-continue ---------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_510_01_100_continue_when_body_read(frame_client, tls):
    """h2x-echo reads the body: 100 first, the client then sends the body,
    the final 200 echoes it; shape HEADERS(100) HEADERS DATA[ES]."""
    c = frame_client(tls=tls)
    body = b"0123456789" * 100
    sid = _expect_request(c, "/h2x/echo", len(body))
    assert c.run(lambda c: len(c.stream(sid).headers) >= 1, timeout=5), repr(c.stream(sid))
    rec = c.stream(sid)
    assert _statuses(rec) == ["100"], repr(rec)
    assert not rec.ended
    c.send_data(sid, body, end_stream=True)
    assert c.wait_stream_end(sid, timeout=10)
    assert rec.ended_by == "END_STREAM", repr(rec)
    assert _statuses(rec) == ["100", "200"], repr(rec)
    assert rec.body == body
    assert c.shape(sid) == "HEADERS HEADERS DATA[ES]", c.shape(sid)


@pytest.mark.parametrize("path,status", [
    ("/no/such/thing", 404),
    ("/auth/x", 401),
], ids=["404", "401"])
def test_h2x_510_02_no_100_without_body_read(httpd, frame_client, path, status):
    """(413 from LimitRequestBody: pending_test_510_interim.py.)  Answered without reading the body: no 100, the final status at once;
    the client sends no body and the stream still ends."""
    if status == 404:
        httpd.expect_log(r"AH00128")          # File does not exist
    if status == 401:
        httpd.expect_log(r"AH01614")          # client used wrong authentication scheme
    c = frame_client()
    sid = _expect_request(c, path, 5000)
    # The final response comes without the client sending anything more.
    assert c.wait_stream_end(sid, timeout=5), repr(c.stream(sid))
    rec = c.stream(sid)
    assert _statuses(rec) == [str(status)], repr(rec)
    assert rec.interim == []
    assert rec.ended_by in ("END_STREAM", "RST_STREAM"), repr(rec)
    if rec.ended_by == "RST_STREAM":     # RFC 9113 §8.1: only NO_ERROR after a full response
        assert rec.rst_name == "NO_ERROR", repr(rec)
    # The connection is usable afterwards.
    sid2 = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid2)
    assert c.stream(sid2).status == 200
    assert not c.goaways


def test_h2x_510_03_100_continue_curl(httpd):
    """curl waits for the 100 before sending; the echo is complete."""
    from h2x.clients import curl
    body = b"a" * 5000
    r = curl(httpd.url("/h2x/echo", tls=True), "--expect100-timeout", "10",
             http="2", data=body, headers={"Expect": "100-continue"})
    assert r.status == 200, r
    assert r.body == body
    assert r.time_total < 5, r.time_total     # did not wait for the expect timeout
    assert [b for b in r.header_blocks][0] is not None


# -- 103 Early Hints ---------------------------------------------------------------

def _assert_103_shape(c, sid, link_part):
    rec = c.stream(sid)
    assert rec.ended_by == "END_STREAM", repr(rec)
    assert _statuses(rec) == ["103", "200"], repr(rec)
    assert c.shape(sid) == "HEADERS HEADERS DATA[ES]", c.shape(sid)
    hints = dict(rec.interim[0])
    assert link_part in hints.get("link", ""), rec.interim
    assert not any(f.type == "PUSH_PROMISE" for f in c.frames)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_510_06_103_from_directive(frame_client, tls):
    c = frame_client(tls=tls)
    sid = c.request("GET", "/hints/x.html")
    assert c.wait_stream_end(sid, timeout=10)
    _assert_103_shape(c, sid, "</x.css>; rel=preload")
    assert len(c.stream(sid).body) == 2000


def test_h2x_510_07_103_from_handler(frame_client):
    c = frame_client()
    sid = c.request("GET", "/h2x/hints?n=500")
    assert c.wait_stream_end(sid, timeout=10)
    _assert_103_shape(c, sid, "</h2x.css>; rel=preload")
    assert len(c.stream(sid).body) == 500


def test_h2x_510_08_103_from_proxied_backend(frame_client, backends):
    c = frame_client()
    sid = c.request("GET", "/be103/x")
    assert c.wait_stream_end(sid, timeout=10)
    _assert_103_shape(c, sid, "</be.css>")
    assert c.stream(sid).body == b"x" * 1000
    # The 103 arrived before the final response, not with it.
    frames = [f for f in c.stream(sid).frames if f.type == "HEADERS"]
    assert frames[1].t - frames[0].t > 0.15, [(str(f), f.t) for f in frames]


def test_h2x_510_09_no_103_for_no_hints(frame_client):
    """A plain static file outside the H2EarlyHint location gets no 103."""
    c = frame_client()
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid)
    assert c.shape(sid) == "HEADERS DATA[ES]"
    assert c.stream(sid).interim == []
