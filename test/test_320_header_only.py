"""Issue 5, point 3: header-only responses are complete.

Responses that by HTTP semantics have no body (204, 304, any response to
HEAD) or have an empty one (Content-Length: 0) are COMPLETE as soon as
their final headers are produced (DESIGN.md invariant 2): HEADERS with
END_STREAM, no DATA frame (invariant 4: no separate zero-length DATA), and
never RST_STREAM.  The mod_cache revalidation 304 is the case mod_http2's
PR 676 had to protect (background/mod_http2-pr676-rst-incomplete-response.txt).

Every case runs REPEAT times at once, spread over CONNS connections.
"""

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

REPEAT = 20
CONNS = 2
HANDLERS = """
<Location /h2x/status>
    SetHandler h2x-status
</Location>
CacheEnable disk /cached/
CacheHeader on
CacheDetailHeader on
CacheDirLevels 2
CacheDirLength 1
<Location /cached/>
    # Stale at once, so every request revalidates (RFC 9111 §4.3).
    Header set Cache-Control "max-age=0, must-revalidate"
</Location>
"""

pytestmark = [pytest.mark.h2]


class _Backend(BaseHTTPRequestHandler):
    """HTTP/1.1 backend for mod_proxy_http: header-only answers."""
    protocol_version = "HTTP/1.1"

    def _answer(self, body):
        path = self.path.split("?")[0]
        if path == "/p/204":
            self.send_response(204)
            self.end_headers()
        elif path == "/p/304" and self.headers.get("If-None-Match") == '"h2x"':
            self.send_response(304)
            self.send_header("ETag", '"h2x"')
            self.end_headers()
        elif path == "/p/empty":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_response(200)
            self.send_header("ETag", '"h2x"')
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", "100")
            self.end_headers()
            if body:
                self.wfile.write(b"x" * 100)

    def do_GET(self):
        self._answer(True)

    def do_HEAD(self):
        self._answer(False)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def backend():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


NOT_MODIFIED_CGI = """#!/usr/bin/python3
import sys
sys.stdout.write('Status: 304\\nETag: "cgi"\\n\\n')
"""


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, backend):
    httpd.make_file("ho/empty.txt", 0)
    httpd.make_file("cached/c.txt", 3000)
    httpd.make_cgi("ho/notmod.py", NOT_MODIFIED_CGI)
    httpd.reconfigure(extra_global=HANDLERS + (
        f"ProxyPass /p/ http://127.0.0.1:{backend}/p/\n"
        "H2EarlyHints on\n"
        "<Location /h2x/early-hints>\n    SetHandler h2x-early-hints\n</Location>\n"))
    yield


def _run(frame_client, method, path, headers=None, n=REPEAT, tls=False):
    """n requests at once over CONNS connections; returns [(client, sid)]."""
    clients = [frame_client(tls=tls) for _ in range(CONNS)]
    sent = []
    for i in range(n):
        c = clients[i % CONNS]
        sent.append((c, c.request(method, path, headers=headers)))
    for c in clients:
        assert c.wait_all_ended(timeout=15), c.unended()
    return sent


def _assert_header_only(sent, status):
    for c, sid in sent:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM", f"stream {sid}: {s!r}"
        assert s.rst_code is None, f"stream {sid}: {s!r}"
        assert s.status == status, f"stream {sid}: {s!r}"
        assert c.shape(sid) == "HEADERS[ES]", f"stream {sid}: {s!r}"
        assert not [f for f in s.frames if f.type == "DATA"], f"stream {sid}: {s!r}"
    for c in {c for c, _ in sent}:
        assert not c.goaways and not c.closed


def _etag(frame_client, path):
    c = frame_client()
    sid = c.request("GET", path)
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 200
    return s.header("etag"), s.header("last-modified")


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_320_01_204_handler(frame_client, tls):
    _assert_header_only(_run(frame_client, "GET", "/h2x/status?s=204", tls=tls), 204)


def test_h2x_320_02_204_handler_with_body_dropped(frame_client):
    """A 204 whose handler writes a body: httpd drops it; still HEADERS[ES]."""
    _assert_header_only(_run(frame_client, "GET", "/h2x/status?s=204&n=100"), 204)


def test_h2x_320_03_204_cgi(frame_client):
    _assert_header_only(_run(frame_client, "GET", "/cgi-bin/nocontent.py"), 204)


def test_h2x_320_04_304_handler(frame_client):
    _assert_header_only(_run(frame_client, "GET", "/h2x/status?s=304"), 304)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_320_05_304_static_if_none_match(frame_client, tls):
    etag, _ = _etag(frame_client, "/1k.txt")
    assert etag
    _assert_header_only(_run(frame_client, "GET", "/1k.txt",
                             headers=[("if-none-match", etag)], tls=tls), 304)


def test_h2x_320_06_304_static_if_modified_since(frame_client):
    _, lm = _etag(frame_client, "/1k.txt")
    assert lm
    _assert_header_only(_run(frame_client, "GET", "/1k.txt",
                             headers=[("if-modified-since", lm)]), 304)


@pytest.mark.parametrize("path,status", [
    ("/1k.txt", 200),
    ("/index.html", 200),
    ("/h2x/status?n=100", 200),
    ("/h2x/status?n=100&cl=1", 200),
    ("/h2x/status?s=500&err=1", 500),
    ("/no/such/file", 404),
    ("/cgi-bin/hello.py", 200),
], ids=["static", "index", "handler", "handler-cl", "error-page", "404", "cgi"])
def test_h2x_320_07_head(frame_client, path, status):
    _assert_header_only(_run(frame_client, "HEAD", path), status)


def test_h2x_320_08_head_tls(frame_client):
    _assert_header_only(_run(frame_client, "HEAD", "/1k.txt", tls=True), 200)


@pytest.mark.parametrize("path", ["/h2x/status?cl0=1", "/cgi-bin/empty.py", "/ho/empty.txt"],
                         ids=["handler", "cgi", "static"])
def test_h2x_320_09_content_length_0(frame_client, path):
    """An empty 200 ends on its HEADERS, with no DATA(0)[ES] (gRPC breaks
    on that shape: background/go-56317-zero-byte-data-end-stream-grpc.txt)."""
    sent = _run(frame_client, "GET", path)
    _assert_header_only(sent, 200)
    for c, sid in sent:
        cl = c.stream(sid).header("content-length")
        assert cl in (None, "0"), c.stream(sid).response_headers


def test_h2x_320_10_cache_revalidation_304(frame_client):
    """mod_cache holds a stale entity; a conditional request makes it
    revalidate with the file handler, which answers 304, and mod_cache
    passes the 304 on: HEADERS[ES], never reset."""
    etag, _ = _etag(frame_client, "/cached/c.txt")       # cache miss: entity saved
    # An unconditional request shows the entity is cached and revalidated.
    c = frame_client()
    sid = c.request("GET", "/cached/c.txt")
    assert c.wait_stream_end(sid)
    assert c.stream(sid).header("x-cache") is not None, c.stream(sid).response_headers
    assert c.stream(sid).header("x-cache").startswith("REVALIDATE"), \
        c.stream(sid).response_headers
    assert c.shape(sid) == "HEADERS DATA[ES]"
    sent = _run(frame_client, "GET", "/cached/c.txt", headers=[("if-none-match", etag)])
    _assert_header_only(sent, 304)


def test_h2x_320_11_cache_revalidation_mixed(frame_client):
    """Revalidating 304s and 200s and HEADs of the cached entity at once."""
    etag, _ = _etag(frame_client, "/cached/c.txt")
    clients = [frame_client() for _ in range(CONNS)]
    cond, full, head = [], [], []
    for i in range(REPEAT):
        c = clients[i % CONNS]
        cond.append((c, c.request("GET", "/cached/c.txt", headers=[("if-none-match", etag)])))
        full.append((c, c.request("GET", "/cached/c.txt")))
        head.append((c, c.request("HEAD", "/cached/c.txt")))
    for c in clients:
        assert c.wait_all_ended(timeout=15), c.unended()
    _assert_header_only(cond, 304)
    _assert_header_only(head, 200)
    for c, sid in full:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.status == 200 and len(s.body) == 3000, s
        assert c.shape(sid) == "HEADERS DATA[ES]", s


def test_h2x_320_12_cgi_304(frame_client):
    _assert_header_only(_run(frame_client, "GET", "/ho/notmod.py"), 304)


@pytest.mark.parametrize("path,headers,status", [
    ("/p/204", None, 204),
    ("/p/304", [("if-none-match", '"h2x"')], 304),
    ("/p/empty", None, 200),
], ids=["204", "304", "cl0"])
def test_h2x_320_13_proxied(frame_client, path, headers, status):
    """Header-only answers from an HTTP/1.1 backend through mod_proxy_http."""
    _assert_header_only(_run(frame_client, "GET", path, headers=headers), status)


def test_h2x_320_14_proxied_head(frame_client):
    sent = _run(frame_client, "HEAD", "/p/body")
    _assert_header_only(sent, 200)


def test_h2x_320_15_head_conditional(frame_client):
    """HEAD with If-None-Match: a 304 to a HEAD."""
    etag, _ = _etag(frame_client, "/1k.txt")
    _assert_header_only(_run(frame_client, "HEAD", "/1k.txt",
                             headers=[("if-none-match", etag)]), 304)


def test_h2x_320_16_interim_is_not_final(frame_client):
    """A 103 is not a final response: it must not end the stream; the 200
    that follows does (DESIGN invariant 2: 1xx are not final)."""
    sent = _run(frame_client, "GET", "/h2x/early-hints?n=100")
    for c, sid in sent:
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.rst_code is None, s
        assert s.status == 200 and len(s.body) == 100, s
        assert [dict(h)[":status"] for h in s.interim] == ["103"], s.headers
        assert c.shape(sid) == "HEADERS HEADERS DATA[ES]", s
