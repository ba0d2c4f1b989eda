"""564: Python WSGI applications on mod_wsgi behind HTTP/2 streams.

Django, Flask and most Python web applications that httpd serves run on
mod_wsgi (Debian's libapache2-mod-wsgi-py3), either in the httpd child's
own threads (embedded mode) or in a separate daemon process that the
child talks to over a Unix socket (daemon mode, the recommended one).
Both read the request body with ap_get_client_block()-style reads and
write the response with a FLUSH after every block the application
yields, so they exercise an HTTP/2 module's request-body, flush and
stream-end paths with an application server that is neither a CGI nor a
proxy.

The application is test/wsgi/app564.wsgi; the test's config loads
mod_wsgi after the HTTP/2 module (Debian's order) and serves it at
/wsgi-e/ (embedded) and /wsgi-d/ (daemon process group h2x564).

Checked with the raw-frame client over h2c and h2 (TLS): the WSGI environ
(HTTP/2 variables, url scheme), request bodies of edge sizes byte-exact
with and without content-length, downloads byte-exact with and without
content-length and through wsgi.file_wrapper, empty 200/204/304 answers
and HEAD end on the HEADERS frame (no zero-length DATA), streamed lines
reach the client as the application yields them, 20 parallel streams
per connection, an application that stalls mid-body in daemon mode ends
its stream when the daemon socket's timeout runs out, and a client's reset of
a slow request leaves the connection serving at once.
"""

import hashlib
import os
import shutil
import time

import pytest

from app_helpers import (body_of, check_download, check_timed_lines, get, h2_environ, md5_line,
                         mixed_streams, post, reset_while_sleeping)
from core_helpers import assert_flushed_end, assert_headers_only

pytestmark = pytest.mark.h2

WSGI_SO = "/usr/lib/apache2/modules/mod_wsgi.so"
APP = os.path.join(os.path.dirname(os.path.abspath(__file__)), "wsgi", "app564.wsgi")
MODES = ["embedded", "daemon"]
PREFIX = {"embedded": "/wsgi-e", "daemon": "/wsgi-d"}
KIB = 1024
MIB = 1024 * KIB
# The daemon's socket timeout: how long the child waits for the next
# bytes of a daemon's answer before it gives up (a stalled application).
DAEMON_SOCKET_TIMEOUT = 2


def _pattern(size: int, seed: int) -> bytes:
    """What the application's /big sends (same recipe as app564.wsgi)."""
    block = hashlib.sha256(b"h2x-564-%d" % seed).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def _wsgi_conf(server) -> str:
    appdir = os.path.join(server.root, "wsgi")
    os.makedirs(appdir, exist_ok=True)
    shutil.copy(APP, os.path.join(appdir, "app.wsgi"))
    for path in (appdir, os.path.join(appdir, "app.wsgi")):
        os.chmod(path, 0o755)
    return f"""
LoadModule wsgi_module {WSGI_SO}
WSGISocketPrefix "{server.root}/run/wsgi"
WSGIDaemonProcess h2x564 processes=1 threads=16 display-name=h2x564 \\
    socket-timeout={DAEMON_SOCKET_TIMEOUT} shutdown-timeout=1 home="{appdir}"
WSGIChunkedRequest On
WSGIScriptAlias /wsgi-d "{appdir}/app.wsgi" process-group=h2x564 application-group=%{{GLOBAL}}
WSGIScriptAlias /wsgi-e "{appdir}/app.wsgi" process-group=%{{GLOBAL}} application-group=%{{GLOBAL}}
SetEnv H2X_DOCROOT "{server.docroot}"
<Directory "{appdir}">
    Require all granted
</Directory>
"""


@pytest.fixture(scope="module")
def server(httpd):
    if not os.path.exists(WSGI_SO):
        pytest.skip(f"{WSGI_SO} is missing (Debian package libapache2-mod-wsgi-py3)")
    httpd.make_file("/f564.bin", 3 * MIB + 5)
    httpd.reconfigure(extra_global=_wsgi_conf(httpd))
    yield httpd
    httpd.reconfigure()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_01_environ(server, frame_client, mode, tls):
    """The application sees an HTTP/2 request: SERVER_PROTOCOL HTTP/2.0, the
    HTTP2 variable, the stream id, the url scheme of the transport."""
    env = h2_environ(frame_client(tls=tls), f"{PREFIX[mode]}/env")
    assert env["wsgi.url_scheme"] == ("https" if tls else "http"), env
    assert env["mod_wsgi.process_group"] == ("h2x564" if mode == "daemon" else ""), env


@pytest.mark.parametrize("cl", [True, False], ids=["length", "no-length"])
@pytest.mark.parametrize("size", [0, 1, 16384, 65535, 65537, 2 * MIB + 3])
@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_02_upload_exact(server, frame_client, mode, size, cl):
    """A request body reaches the application byte-exact, with and without
    content-length (WSGIChunkedRequest On), read in 8 KiB pieces."""
    body = body_of(size, f"{mode}{cl}")
    c = frame_client(tls=size % 2 == 1, timeout=30)
    s = post(c, f"{PREFIX[mode]}/echo?piece=8192", body, with_length=cl)
    assert s.body == md5_line(body)


@pytest.mark.parametrize("how", ["length", "no-length", "file_wrapper"])
@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_03_download_exact(server, frame_client, mode, how):
    """3 MiB from the application: yielded in 64 KiB blocks with and without
    content-length, and a file through wsgi.file_wrapper; byte-exact over
    h2c and h2 on one connection each."""
    for tls in (False, True):
        c = frame_client(tls=tls, timeout=30)
        if how == "file_wrapper":
            s = get(c, f"{PREFIX[mode]}/file?name=f564.bin", timeout=30)
            with open(os.path.join(server.docroot, "f564.bin"), "rb") as f:
                want = f.read()
        else:
            size = 3 * MIB + 5
            s = get(c, f"{PREFIX[mode]}/big?size={size}&cl={int(how == 'length')}",
                     timeout=30)
            want = _pattern(size, size)
        check_download(s, want, tls)


@pytest.mark.parametrize("case,status", [("s=200", 200), ("s=200&blank=1", 200),
                                         ("s=204", 204), ("s=304", 304)],
                         ids=["200-empty", "200-blank-block", "204", "304"])
@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_04_no_body(server, frame_client, mode, case, status):
    """An answer without a body - an empty 200 (no block, or one empty
    block), a 204, a 304 - ends on its HEADERS frame: no zero-length DATA
    frame (what breaks gRPC clients), on h2c and h2."""
    for tls in (False, True):
        c = frame_client(tls=tls)
        s = get(c, f"{PREFIX[mode]}/empty?{case}")
        assert_headers_only(s, status)


@pytest.mark.parametrize("path", ["/env", "/big?size=100000&cl=1", "/big?size=100000",
                                  "/file?name=f564.bin"],
                         ids=["env", "big-length", "big-no-length", "file_wrapper"])
@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_05_head(server, frame_client, mode, path):
    """HEAD: the application runs as for GET (WSGI has no HEAD of its own),
    the answer ends on its HEADERS frame, no body byte is sent."""
    c = frame_client(tls=True)
    s = get(c, f"{PREFIX[mode]}{path}", method="HEAD")
    assert_headers_only(s, 200)


@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_06_streamed_lines(server, frame_client, mode):
    """Lines the application yields 300 ms apart reach the client as they
    are yielded (mod_wsgi flushes each block): the first long before the
    last, each less than 250 ms after its own time stamp."""
    for tls in (False, True):
        c = frame_client(tls=tls)
        check_timed_lines(get(c, f"{PREFIX[mode]}/lines?n=4&ms=300", timeout=15), 4, 0.3)


@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_07_parallel_streams(server, frame_client, mode):
    """20 streams at once on one connection: downloads, uploads, lines and
    empty answers mixed; every one whole and ended cleanly."""
    pre = PREFIX[mode]
    mixed_streams(frame_client(tls=True, timeout=30),
                  lambda size, cl: (f"{pre}/big?size={size}&cl={int(cl)}", _pattern(size, size)),
                  f"{pre}/echo", f"{pre}/lines?", f"{pre}/empty?s=204")


@pytest.mark.expect_log(r"mod_wsgi \(pid=\d+\): Failed to proxy response from daemon")
@pytest.mark.parametrize("cl", [False, True], ids=["no-length", "length"])
def test_h2x_564_08_daemon_stall_ends(server, frame_client, cl):
    """An application in the daemon that stalls mid-body: once the child
    has waited the daemon socket's timeout for more, the stream ends, and
    the connection's other streams carry on meanwhile and after.
    mod_wsgi logs the failure but ends the response as a complete one (over
    HTTP/1.1 it sends the terminating chunk, and the connection stays
    open): without a content-length END_STREAM after the 1000 bytes is
    all HTTP/2 can say too; with one (1005) the body is short of it, and
    the stream is reset (INTERNAL_ERROR), never ended as complete."""
    c = frame_client(tls=True, timeout=30)
    t0 = time.monotonic()
    sid = c.request("GET", f"/wsgi-d/stall?s=30&cl={int(cl)}")
    other = c.request("GET", "/wsgi-d/env")
    assert c.wait_stream_end(other, timeout=5), c.stream(other).frames_str()
    assert c.stream(other).status == 200
    assert c.wait_stream_end(sid, timeout=DAEMON_SOCKET_TIMEOUT + 10), \
        c.stream(sid).frames_str()
    took = time.monotonic() - t0
    s = c.stream(sid)
    assert s.status == 200 and len(s.body) == 1000, s
    if cl:
        assert s.ended_by == "RST_STREAM" and s.rst_name == "INTERNAL_ERROR", s
    else:
        assert_flushed_end(s)
    assert DAEMON_SOCKET_TIMEOUT - 0.5 < took < DAEMON_SOCKET_TIMEOUT + 8, took
    after = get(c, "/wsgi-d/env")
    assert after.status == 200
    assert_flushed_end(after)


@pytest.mark.parametrize("mode", MODES)
def test_h2x_564_09_client_reset_slow_request(server, frame_client, mode):
    """The client resets a request the application sleeps in: the
    connection serves the next requests at once (the reset does not wait
    for the application), and the application's answer, when it comes,
    is dropped without a word on the wire."""
    reset_while_sleeping(frame_client(tls=True), f"{PREFIX[mode]}/sleep?s=1.5",
                         f"{PREFIX[mode]}/env", next_within=1.0, linger=1.5)
