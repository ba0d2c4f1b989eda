"""Responses over HTTP/2 are the responses httpd gives over HTTP/1.1 (issue 3).

For each kind of content (static files, ranges, conditionals, CGI via
mod_cgid and mod_cgi, SSI, mod_rewrite, auth, mod_deflate, mod_proxy to an
HTTP/1.1 backend, ErrorDocument, mod_autoindex) the same request is made
over HTTP/1.1 and over h2 (h2c prior knowledge on the plain port, ALPN h2 on
the TLS port, each compared with HTTP/1.1 on the same port): same status,
same headers (minus hop-by-hop fields and Date, names compared
case-insensitively), same body.  Plus: connection-specific header fields a
handler sets are not sent over h2 (RFC 9113 §8.2.2).
"""

import base64
import hashlib
import http.server
import os
import threading
import time

import pytest

from core_helpers import CONNECTION_SPECIFIC, TEST_HANDLER_CONF, comparable_headers
from h2x.clients import curl
from h2x.httpd import Httpd

pytestmark = pytest.mark.h2

USER, PASSWORD = "h2xuser", "h2xpass"
RANDOM_BODY = os.urandom(200_000)


# -- an HTTP/1.1 backend for mod_proxy --------------------------------------------------

class _Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "h2x-backend"
    sys_version = ""

    def log_message(self, *args):
        pass

    def date_time_string(self, timestamp=None):
        return "Mon, 01 Jan 2024 00:00:00 GMT"     # stable across the two requests

    def do_GET(self):
        path = self.path.split("?")[0]
        if path.endswith("/data"):
            body = b"backend-data " * 5000
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Backend", "yes")
            self.end_headers()
            self.wfile.write(body)
        elif path.endswith("/chunked"):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(20):
                chunk = (b"chunk %d\n" % i) * 100
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.write(b"0\r\n\r\n")
        else:
            body = b"no such backend thing\n"
            self.send_response(404)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length", "0"))
        data = self.rfile.read(n)
        body = hashlib.sha256(data).hexdigest().encode() + b" %d\n" % len(data)
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def backend():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    srv.daemon_threads = True
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield srv.server_address[1]
    srv.shutdown()
    srv.server_close()


def _site_config(server: Httpd, backend_port: int) -> str:
    docroot = server.docroot
    pw = base64.b64encode(hashlib.sha1(PASSWORD.encode()).digest()).decode()
    pwfile = os.path.join(server.root, "conf", "htpasswd")
    with open(pwfile, "w") as f:
        f.write(f"{USER}:{{SHA}}{pw}\n")
    server.make_file("cmp/large.bin", 3_000_000)
    server.make_file("cmp/medium.txt", 100_000)
    os.makedirs(os.path.join(docroot, "gz"), exist_ok=True)
    with open(os.path.join(docroot, "gz", "text.txt"), "w") as f:
        f.write("compress me, please. " * 2000)
    os.makedirs(os.path.join(docroot, "errors"), exist_ok=True)
    with open(os.path.join(docroot, "errors", "404.html"), "w") as f:
        f.write("<html><body>custom not found page</body></html>\n")
    os.makedirs(os.path.join(docroot, "errdoc"), exist_ok=True)
    os.makedirs(os.path.join(docroot, "listing", "sub"), exist_ok=True)
    for name in ("alpha.txt", "beta.html", "gamma.bin"):
        with open(os.path.join(docroot, "listing", name), "w") as f:
            f.write(name * 10)
    os.makedirs(os.path.join(docroot, "secret"), exist_ok=True)
    with open(os.path.join(docroot, "secret", "s.txt"), "w") as f:
        f.write("the secret\n")
    # Files older than a second get strong ETags and stable conditionals.
    old = time.time() - 3600
    for base, dirs, files in os.walk(docroot):
        for name in files + dirs:
            os.utime(os.path.join(base, name), (old, old))
    return TEST_HANDLER_CONF + f"""
<Directory "{docroot}/gz">
    SetOutputFilter DEFLATE
</Directory>
<Directory "{docroot}/secret">
    AuthType Basic
    AuthName "h2x test"
    AuthBasicProvider file
    AuthUserFile "{pwfile}"
    Require valid-user
</Directory>
<Location /denied>
    Require all denied
</Location>
<Location /errdoc>
    ErrorDocument 404 /errors/404.html
    ErrorDocument 403 "custom forbidden text"
</Location>
<Location /errdoc/forbidden>
    Require all denied
</Location>
<Location /hop>
    SetHandler h2x-status
    Header always set Keep-Alive "timeout=5, max=100"
    Header always set Upgrade "foo/1"
    Header always set Connection "x-private"
    Header always set Proxy-Connection "keep-alive"
    Header always set X-Kept "yes"
</Location>
TraceEnable off
ProxyPass "/proxy/" "http://127.0.0.1:{backend_port}/"
ProxyPassReverse "/proxy/" "http://127.0.0.1:{backend_port}/"
"""


# mod_rewrite rules are per virtual host (not inherited from the main server).
REWRITE = """    RewriteEngine on
    RewriteRule "^/rw/internal/(.*)$" "/$1" [PT]
    RewriteRule "^/rw/redirect/(.*)$" "/$1" [R=302,L]
    RewriteRule "^/rw/gone$" "-" [G]
"""


def _configure(server, backend_port, restart=True):
    kw = dict(extra_global=_site_config(server, backend_port), extra_vhost=REWRITE,
              extra_tls_vhost=REWRITE)
    if restart:
        server.reconfigure(**kw)
    else:
        server.write_config(**kw)


@pytest.fixture(scope="module", autouse=True)
def _config(httpd, backend):
    _configure(httpd, backend)


@pytest.fixture(scope="module")
def httpd_cgi(env, backend):
    """A second server whose CGI runs through mod_cgi (not mod_cgid)."""
    server = Httpd(env, name="test_250_mod_cgi", cgi="cgi")
    try:
        _configure(server, backend, restart=False)
        server.start()
        yield server
    finally:
        server.close()


# -- the cases ----------------------------------------------------------------------------

def _validators(server, path):
    r = curl(server.url(path), http="1.1")
    assert r.status == 200, r
    return r.header("etag"), r.header("last-modified")


def _auth():
    return "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()


# name -> function(server) -> dict(path=, headers=, data=, method=)
CASES = {
    "static-small": lambda s: dict(path="/index.html"),
    "static-1k": lambda s: dict(path="/1k.txt"),
    "static-empty": lambda s: dict(path="/empty.txt"),
    "static-large": lambda s: dict(path="/cmp/large.bin"),
    "static-head": lambda s: dict(path="/cmp/medium.txt", method="HEAD"),
    "static-404": lambda s: dict(path="/no/such/file"),
    "range": lambda s: dict(path="/cmp/medium.txt", headers={"Range": "bytes=100-1099"}),
    "range-suffix": lambda s: dict(path="/cmp/large.bin", headers={"Range": "bytes=-5000"}),
    "range-multi": lambda s: dict(path="/cmp/medium.txt",
                                  headers={"Range": "bytes=0-9,500-599,-10"}),
    "range-unsatisfiable": lambda s: dict(path="/1k.txt",
                                          headers={"Range": "bytes=5000-6000"}),
    "if-none-match": lambda s: dict(path="/cmp/medium.txt",
                                    headers={"If-None-Match": _validators(s, "/cmp/medium.txt")[0]}),
    "if-modified-since": lambda s: dict(
        path="/cmp/medium.txt",
        headers={"If-Modified-Since": _validators(s, "/cmp/medium.txt")[1]}),
    "if-match-fail": lambda s: dict(path="/cmp/medium.txt",
                                    headers={"If-Match": '"nope"'}),
    "cgi-hello": lambda s: dict(path="/cgi-bin/hello.py"),
    "cgi-big": lambda s: dict(path="/cgi-bin/big.py?n=300000"),
    "cgi-empty": lambda s: dict(path="/cgi-bin/empty.py"),
    "cgi-204": lambda s: dict(path="/cgi-bin/nocontent.py"),
    "cgi-post-echo": lambda s: dict(path="/cgi-bin/echo.py", data=RANDOM_BODY,
                                    headers={"Content-Type": "application/octet-stream"}),
    "cgi-post-sha": lambda s: dict(path="/cgi-bin/echo.py?sha=1", data=b"s" * 1_000_000),
    "ssi": lambda s: dict(path="/ssi.shtml"),
    "rewrite-internal": lambda s: dict(path="/rw/internal/index.html"),
    "rewrite-redirect": lambda s: dict(path="/rw/redirect/index.html"),
    "rewrite-gone": lambda s: dict(path="/rw/gone"),
    "auth-401": lambda s: dict(path="/secret/s.txt"),
    "auth-401-wrong": lambda s: dict(path="/secret/s.txt",
                                     headers={"Authorization": "Basic eDp5"}),
    "auth-ok": lambda s: dict(path="/secret/s.txt", headers={"Authorization": _auth()}),
    "forbidden-403": lambda s: dict(path="/denied/x"),
    "deflate": lambda s: dict(path="/gz/text.txt", headers={"Accept-Encoding": "gzip"}),
    "deflate-identity": lambda s: dict(path="/gz/text.txt"),
    "proxy": lambda s: dict(path="/proxy/data"),
    "proxy-chunked": lambda s: dict(path="/proxy/chunked"),
    "proxy-404": lambda s: dict(path="/proxy/nothing"),
    "proxy-post": lambda s: dict(path="/proxy/post", data=b"p" * 150_000),
    "errordocument-404": lambda s: dict(path="/errdoc/missing.html"),
    "errordocument-403": lambda s: dict(path="/errdoc/forbidden"),
    "autoindex": lambda s: dict(path="/listing/"),
    "autoindex-sorted": lambda s: dict(path="/listing/?C=S;O=D"),
    "dir-redirect": lambda s: dict(path="/listing"),
    "handler-error-page": lambda s: dict(path="/h2x/status?s=503&err=1"),
    "handler-status-body": lambda s: dict(path="/h2x/status?s=201&n=5000"),
    "trace-405": lambda s: dict(path="/index.html", method="TRACE"),
}

# Error-log lines a case causes (httpd logs auth failures at error level).
EXPECT_LOG = {
    "auth-401-wrong": r"AH01618|AH01617",
    "forbidden-403": r"AH01630",
    "errordocument-403": r"AH01630",
}

# Differences that are allowed, per case.
IGNORE_HEADERS = {
    # mod_proxy_http passes the backend's Date; the backend sets a fixed one.
}


def _fetch(server, case, http, tls):
    spec = CASES[case](server)
    args = []
    method = spec.get("method")
    if method == "HEAD":
        args.append("-I")
        method = None
    return curl(server.url(spec["path"], tls=tls), *args, http=http, data=spec.get("data"),
                headers=spec.get("headers"), method=method)


def compare_h1_h2(server, case, tls):
    """Fetch `case` over HTTP/1.1 and over h2; assert they are the same."""
    if case in EXPECT_LOG:
        server.expect_log(EXPECT_LOG[case])
    h1 = _fetch(server, case, "1.1", tls)
    h2 = _fetch(server, case, "2" if tls else "2-prior", tls)
    assert h1.exit_code == 0, h1
    assert h2.exit_code == 0, h2
    assert h1.http_version == "1.1", h1
    assert h2.http_version == "2", h2
    assert h2.status == h1.status, (case, h1.status, h2.status)
    ignore = IGNORE_HEADERS.get(case, ())
    hh1 = comparable_headers(h1.headers, ignore)
    hh2 = comparable_headers(h2.headers, ignore)
    # Whether httpd's content-length filter knows the length of a streamed
    # body (CGI) depends on timing, over HTTP/1.1 as over h2: a content-length
    # on one side only must equal that side's body length.
    if ("content-length" in hh1) != ("content-length" in hh2):
        for hh, res in ((hh1, h1), (hh2, h2)):
            if "content-length" in hh:
                assert hh.pop("content-length") == [str(len(res.body))], (case, res.headers)
    assert hh2 == hh1, f"{case}: headers differ\n h1: {hh1}\n h2: {hh2}"
    if case.endswith("-head"):      # curl -I writes the head where the body goes
        return h1, h2
    assert h2.body == h1.body, (f"{case}: bodies differ: {len(h1.body)} vs {len(h2.body)} "
                                f"bytes\n h1: {h1.body[:200]!r}\n h2: {h2.body[:200]!r}")
    for name in CONNECTION_SPECIFIC:
        assert name not in h2.headers, (case, name, h2.headers)
    return h1, h2


# Cases that fail because of an engine bug (test/FINDINGS-issue3.md); they
# run from pending_test_250_responses.py until fixed.
PENDING = set()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("case", [c for c in CASES if c not in PENDING])
def test_h2x_250_01_same_as_http11(httpd, case, tls):
    compare_h1_h2(httpd, case, tls)


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("cgi-")])
def test_h2x_250_02_same_as_http11_mod_cgi(httpd_cgi, case):
    """The CGI cases again, through mod_cgi instead of mod_cgid."""
    assert "cgi_module" in httpd_cgi.loaded_modules()
    compare_h1_h2(httpd_cgi, case, tls=False)


def test_h2x_250_03_cases_sanity(httpd):
    """The cases show what they are meant to show (over h2)."""
    httpd.expect_log(r"AH01630")

    def get(case):
        return _fetch(httpd, case, "2-prior", False)
    assert get("range").status == 206 and len(get("range").body) == 1000
    assert get("range-multi").header("content-type").startswith("multipart/byteranges")
    assert get("if-none-match").status == 304
    assert get("if-modified-since").status == 304
    assert get("if-match-fail").status == 412
    assert get("auth-401").status == 401 and get("auth-401").body
    assert get("auth-401").header("www-authenticate").startswith("Basic")
    assert get("auth-ok").status == 200 and get("auth-ok").body == b"the secret\n"
    assert get("forbidden-403").status == 403 and get("forbidden-403").body
    assert get("deflate").header("content-encoding") == "gzip"
    assert get("deflate-identity").header("content-encoding") is None
    assert get("proxy").header("x-backend") == "yes"
    assert get("proxy").body == b"backend-data " * 5000
    assert get("errordocument-404").body == b"<html><body>custom not found page</body></html>\n"
    assert get("errordocument-403").body.strip() == b"custom forbidden text"
    assert b"alpha.txt" in get("autoindex").body
    assert get("rewrite-redirect").status == 302
    assert get("rewrite-internal").status == 200
    assert get("cgi-204").status == 204
    assert b"Hello from h2x test CGI" in get("cgi-hello").body


def test_h2x_250_10_connection_headers_stripped(httpd, frame_client):
    """Connection-specific fields set by config/handlers are not sent over h2
    (RFC 9113 §8.2.2); other fields are."""
    c = frame_client()
    sid = c.request("GET", "/hop?n=10")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 200, s
    names = {n for n, _ in s.headers[-1]}
    assert "x-kept" in names
    for name in CONNECTION_SPECIFIC | {"proxy-connection"}:
        assert name not in names, (name, s.headers)
    assert c.shape(sid) == "HEADERS DATA[ES]"


def test_h2x_250_11_connection_headers_from_cgi(httpd, frame_client):
    httpd.make_cgi("cgi-hop/hop.py", """#!/usr/bin/python3
import sys
sys.stdout.write("Content-Type: text/plain\\nConnection: close\\nKeep-Alive: timeout=1\\n"
                 "Upgrade: websocket\\nX-Kept: yes\\n\\nhop body\\n")
""")
    c = frame_client()
    sid = c.request("GET", "/cgi-hop/hop.py")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 200, s
    assert s.body == b"hop body\n"
    names = {n for n, _ in s.headers[-1]}
    assert "x-kept" in names
    for name in CONNECTION_SPECIFIC:
        assert name not in names, (name, s.headers)
