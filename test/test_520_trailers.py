"""Issue 4: trailers.

- Response trailers (r->trailers_out, h2x-trailers) go out as a trailing
  HEADERS with END_STREAM and no zero-length DATA before it (DESIGN.md
  invariant 4): `HEADERS DATA HEADERS[ES]`; gRPC trailers-only:
  `HEADERS HEADERS[ES]`.
- Request trailers (a HEADERS block with END_STREAM after the body) are
  accepted: the body reaches the handler complete, the trailers reach it as
  r->trailers_in (h2x-echo?discard=1&trailers=1 prints them), and the
  stream ends.
- Trailers from a proxied HTTP/1.1 backend (chunked + trailer fields):
  see the test's docstring for what mod_proxy_http 2.4.71 does.
"""

import pytest

from h2x.clients import curl
from test_510_interim import Backend, BackendConn

pytestmark = [pytest.mark.h2]


def _script_chunked_trailers(conn: BackendConn):
    conn.read_head()
    conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
              b"Transfer-Encoding: chunked\r\nTrailer: x-be-trailer\r\n"
              b"Connection: close\r\n\r\n"
              b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-be-trailer: be-value\r\n\r\n")


@pytest.fixture(scope="module")
def backend():
    be = Backend(_script_chunked_trailers)
    yield be
    be.close()


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, backend):
    conf = f"""
<Location /h2x/trailers>
    SetHandler h2x-trailers
</Location>
<Location /h2x/echo>
    SetHandler h2x-echo
</Location>
ProxyPass /betr/ http://127.0.0.1:{backend.port}/
"""
    httpd.reconfigure(extra_global=conf)
    yield


def _no_empty_data(c, sid):
    return not [f for f in c.stream(sid).frames if f.type == "DATA" and f.length == 0]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("n", [100, 70000], ids=["small", "large"])
def test_h2x_520_01_trailers_after_body(frame_client, tls, n):
    c = frame_client(tls=tls)
    sid = c.request("GET", f"/h2x/trailers?n={n}&t=x-t1:v1&t=x-t2:v2")
    assert c.wait_stream_end(sid, timeout=10)
    rec = c.stream(sid)
    assert rec.ended_by == "END_STREAM", repr(rec)
    assert rec.status == 200
    assert c.shape(sid) == "HEADERS DATA HEADERS[ES]", rec.frames_str()
    assert _no_empty_data(c, sid), rec.frames_str()
    assert len(rec.body) == n
    assert rec.body == (b"0123456789abcdef" * (n // 16 + 1))[:n]
    tr = dict(rec.trailers or [])
    assert tr.get("x-t1") == "v1" and tr.get("x-t2") == "v2", rec.trailers
    assert not [k for k in tr if k.startswith(":")], rec.trailers


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_520_02_trailers_only_grpc(frame_client, tls):
    c = frame_client(tls=tls)
    sid = c.request("POST", "/h2x/trailers?only=1&t=grpc-status:13&t=grpc-message:boom"
                    "&ct=application/grpc",
                    headers=[("content-type", "application/grpc"), ("te", "trailers")],
                    body=b"\0\0\0\0\0")
    assert c.wait_stream_end(sid, timeout=10)
    rec = c.stream(sid)
    assert rec.ended_by == "END_STREAM", repr(rec)
    # h2x-trailers does not read the 5-byte request body: if the response is
    # complete before the server has read the client's DATA[ES], it may add
    # RST_STREAM(NO_ERROR) (RFC 9113 §8.1), which gRPC clients accept.
    assert c.shape(sid) in ("HEADERS HEADERS[ES]", "HEADERS HEADERS[ES] RST(NO_ERROR)"), \
        rec.frames_str()
    assert rec.status == 200
    assert rec.header("content-type") == "application/grpc"
    assert rec.body == b""
    tr = dict(rec.trailers or [])
    assert tr.get("grpc-status") == "13", rec.trailers
    assert tr.get("grpc-message") == "boom", rec.trailers


def test_h2x_520_03_trailers_many_streams(frame_client):
    """20 trailer responses at once on one connection: all the same shape."""
    c = frame_client()
    sids = [c.request("GET", f"/h2x/trailers?n={100 * (i + 1)}&t=x-i:{i}") for i in range(20)]
    assert c.wait_all_ended(timeout=20)
    for i, sid in enumerate(sids):
        assert c.shape(sid) == "HEADERS DATA HEADERS[ES]", (sid, c.stream(sid).frames_str())
        assert dict(c.stream(sid).trailers or []).get("x-i") == str(i)


def test_h2x_520_04_curl_sees_trailers(httpd):
    r = curl(httpd.url("/h2x/trailers?n=10&t=x-curl:yes", tls=True), "--raw", http="2")
    assert r.exit_code == 0, r
    assert r.status == 200
    assert r.body == b"0123456789"


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_520_05_request_trailers_accepted(frame_client, tls):
    """Body then a trailing HEADERS[ES] from the client: the handler gets the
    whole body, the response is complete.  (No test handler prints
    r->trailers_in, so that they arrive there is not checked.)"""
    c = frame_client(tls=tls)
    body = b"q" * 40000
    sid = c.request("POST", "/h2x/echo", headers=[("te", "trailers"),
                                                  ("trailer", "x-req-trailer")],
                    body=body, end_stream=False)
    c.send_headers(sid, [("x-req-trailer", "rt-value")], end_stream=True)
    assert c.wait_stream_end(sid, timeout=10)
    rec = c.stream(sid)
    assert rec.ended_by == "END_STREAM", repr(rec)
    assert rec.status == 200
    assert rec.body == body
    # the connection stays fine
    sid2 = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid2)
    assert c.stream(sid2).status == 200
    assert not c.goaways


def test_h2x_520_06_request_trailers_cgi(frame_client):
    """The same through mod_cgid (echo.py?sha=1, body until EOF)."""
    import hashlib
    c = frame_client()
    body = bytes(range(256)) * 100
    sid = c.request("POST", "/cgi-bin/echo.py?sha=1", body=body, end_stream=False)
    c.send_headers(sid, [("x-req-trailer", "1")], end_stream=True)
    assert c.wait_stream_end(sid, timeout=15)
    rec = c.stream(sid)
    assert rec.status == 200, repr(rec)
    assert rec.body.decode().split() == [hashlib.sha256(body).hexdigest(), str(len(body))]


def test_h2x_520_07_proxy_backend_trailers(frame_client, backend):
    """Backend: chunked body `hello world` + trailer `x-be-trailer`.
    mod_proxy_http 2.4.71 copies the backend's trailers to r->trailers_out
    (mod_http2 forwards them, as `HEADERS DATA DATA(0) HEADERS[ES]`);
    mod_h2x must send them as a trailing HEADERS[ES] without DATA(0)."""
    c = frame_client()
    sid = c.request("GET", "/betr/x")
    assert c.wait_stream_end(sid, timeout=10)
    rec = c.stream(sid)
    assert rec.ended_by == "END_STREAM", repr(rec)
    assert rec.status == 200
    assert rec.body == b"hello world"
    assert c.shape(sid) == "HEADERS DATA HEADERS[ES]", rec.frames_str()
    assert dict(rec.trailers).get("x-be-trailer") == "be-value", rec.trailers


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_520_20_request_trailers_reach_handler(frame_client, tls):
    """The trailing HEADERS block of a request becomes r->trailers_in, with
    the body complete before it."""
    c = frame_client(tls=tls)
    body = b"t" * 70_000
    sid = c.request("POST", "/h2x/echo?discard=1&trailers=1",
                    headers=[("te", "trailers"), ("trailer", "x-req-trailer")],
                    body=body, end_stream=False)
    c.send_headers(sid, [("x-req-trailer", "rt-value"), ("x-second", "2")],
                   end_stream=True)
    assert c.wait_stream_end(sid, timeout=15)
    rec = c.stream(sid)
    assert rec.status == 200 and rec.ended_by == "END_STREAM", rec
    lines = rec.body.decode().splitlines()
    assert lines[0] == str(len(body)), lines
    assert "trailer.x-req-trailer=rt-value" in lines, lines
    assert "trailer.x-second=2" in lines, lines
