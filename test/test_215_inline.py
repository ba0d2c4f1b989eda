"""Issue 11, point 3: a lone request may start on the connection's thread.

A request that arrives alone on its connection (GET/HEAD, no body) runs on
c1 up to its handler; only a static file is served there, everything else
(CGI, SSI, an ErrorDocument or DirectoryIndex that runs a CGI, the test
module's handlers)
goes to a worker before its handler runs.  What a client sees:

- responses are the same as from a worker (bodies, HEAD, 304, ranges);
- while a slow handler runs, c1 still answers PING at once and serves a
  second stream: the slow handler is not on c1;
- `H2xInlineRequests off` changes nothing visible but the thread, and the
  directive is checked like the others.

PING timing bounds are generous (1 s, against a handler that runs for
several seconds); they tell "on a worker" from "on c1", nothing finer.
"""

import time

import pytest

from h2x.httpd import file_content

pytestmark = [pytest.mark.h2]

SLOW_S = 4
PING_WITHIN = 1.0


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.make_file("inline/32k.bin", 32 * 1024)
    httpd.make_file("inline/64k.bin", 64 * 1024)
    httpd.make_file("inline/65k.bin", 64 * 1024 + 1)
    httpd.make_cgi("inline/idx/slow.py", (
        "#!/usr/bin/python3\nimport os\n"
        f"os.environ['QUERY_STRING'] = 'ms=200&s={SLOW_S}'\n"
        f"exec(open({httpd.cgi_bin + '/slow.py'!r}).read())\n"))
    with open(f"{httpd.docroot}/inline/slow.shtml", "w") as f:
        f.write(f'before\n<!--#include virtual="/cgi-bin/slow.py?ms=200&s={SLOW_S}" -->\nafter\n')
    httpd.reconfigure(extra_global=(
        "LogLevel warn h2x:debug\n"
        "<Location /inline/missing>\n"
        f"    ErrorDocument 404 /cgi-bin/slow.py?ms=200&s={SLOW_S}\n"
        "</Location>\n"
        "<Location /h2x/echo>\n    SetHandler h2x-echo\n</Location>\n"
        "<Location /inline/idx/>\n    DirectoryIndex slow.py\n</Location>\n"))
    yield


def _ping_rtt(c):
    """Send a PING, return how long its ACK took (None: none within 3 s)."""
    before = len([p for p in c.pings if "ACK" in p.flags])
    t0 = time.monotonic()
    c.ping(b"inline!!")
    ok = c.run(lambda c: len([p for p in c.pings if "ACK" in p.flags]) > before, timeout=3)
    return time.monotonic() - t0 if ok else None


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("path,size", [("/inline/32k.bin", 32 * 1024),
                                       ("/inline/64k.bin", 64 * 1024),
                                       ("/inline/65k.bin", 64 * 1024 + 1),
                                       ("/1k.txt", None)])
def test_h2x_215_01_static_alone(frame_client, httpd, tls, path, size):
    """Files up to and beyond the size served on c1: whole, END_STREAM on
    the last DATA, three times in a row on one connection."""
    c = frame_client(tls=tls)
    for _ in range(3):
        sid = c.request("GET", path)
        assert c.wait_stream_end(sid, timeout=10)
        s = c.stream(sid)
        assert s.status == 200 and s.ended_by == "END_STREAM", s
        if size is not None:
            assert s.body == file_content(size)
        data = [f for f in s.frames if f.type == "DATA"]
        assert data and data[-1].end_stream and all(not f.end_stream for f in data[:-1])
        assert all(len(f.data) > 0 for f in data), ("no zero-length DATA frame", s.frames_str())


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_215_02_head_304_range(frame_client, tls):
    """HEAD and 304 end on their HEADERS; a range is a 206 with its bytes."""
    c = frame_client(tls=tls)
    sid = c.request("HEAD", "/inline/32k.bin")
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM" and s.body == b""
    assert s.frames[-1].type == "HEADERS" and s.frames[-1].end_stream
    etag = dict(s.headers[-1]).get("etag")
    assert etag

    sid = c.request("GET", "/inline/32k.bin", headers=[("if-none-match", etag)])
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == 304 and s.ended_by == "END_STREAM" and s.body == b""
    assert s.frames[-1].type == "HEADERS" and s.frames[-1].end_stream

    sid = c.request("GET", "/inline/32k.bin", headers=[("range", "bytes=100-199")])
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == 206 and s.body == file_content(32 * 1024)[100:200], s


@pytest.mark.parametrize("path,expect", [
    (f"/cgi-bin/slow.py?ms=200&s={SLOW_S}", 200),    # a CGI handler
    ("/inline/slow.shtml", 200),                     # INCLUDES runs a CGI
    ("/inline/missing", 404),                        # ErrorDocument runs a CGI
    ("/inline/idx/", 200),                           # DirectoryIndex is a CGI
], ids=["cgi", "ssi", "errordocument", "dirindex"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_215_03_slow_handler_not_on_c1(frame_client, tls, path, expect):
    """A lone request whose handler takes seconds: PING is answered and a
    static file on a second stream is served while it runs."""
    c = frame_client(tls=tls)
    sid = c.request("GET", path)
    assert c.run(lambda c: b"chunk 0" in c.stream(sid).body, timeout=10), c.stream(sid)
    rtt = _ping_rtt(c)
    assert rtt is not None and rtt < PING_WITHIN, f"PING ACK after {rtt}s"
    other = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(other, timeout=PING_WITHIN), "second stream waited on the handler"
    assert c.stream(other).status == 200
    assert not c.stream(sid).ended, "the slow handler ended early"
    assert c.wait_stream_end(sid, timeout=SLOW_S + 10)
    s = c.stream(sid)
    assert s.status == expect and s.ended_by == "END_STREAM", s
    assert b"chunk 1" in s.body


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_215_04_handlers_after_hand_off(frame_client, tls):
    """Requests handed to a worker before their handler: the test module's
    handler, a CGI, a directory index, a 404 without ErrorDocument, a
    redirect - each complete and correct, one at a time."""
    c = frame_client(tls=tls)
    cases = [("/h2x/echo", 200, None), ("/cgi-bin/hello.py", 200, b"Hello"),
             ("/dir/", 200, None), ("/nope.txt", 404, None), ("/dir", 301, None)]
    for path, status, needle in cases:
        sid = c.request("GET", path)
        assert c.wait_stream_end(sid, timeout=10), path
        s = c.stream(sid)
        assert s.status == status and s.ended_by == "END_STREAM", (path, s)
        if needle:
            assert needle in s.body, (path, s.body[:200])


def test_h2x_215_05_directive(httpd, frame_client):
    """H2xInlineRequests off: everything still served; bad values fail
    `apache2 -t` naming the directive and the value."""
    rc, out = httpd.check_config(extra_global="H2xInlineRequests maybe\n")
    assert rc != 0 and "H2xInlineRequests" in out and "maybe" in out, out
    rc, out = httpd.check_config(extra_global="<VirtualHost *:1>\nH2xInlineRequests off\n"
                                              "</VirtualHost>\n")
    assert rc == 0, out
    httpd.reconfigure(extra_global="H2xInlineRequests off\n")
    try:
        c = frame_client()
        for path in ("/inline/32k.bin", f"/cgi-bin/slow.py?ms=10&s=0.2"):
            sid = c.request("GET", path)
            assert c.wait_stream_end(sid, timeout=10)
            assert c.stream(sid).status == 200 and c.stream(sid).ended_by == "END_STREAM"
        assert c.stream(1).body == file_content(32 * 1024)
    finally:
        httpd.reconfigure(extra_global=(
            "LogLevel warn h2x:debug\n"
            "<Location /inline/missing>\n"
            f"    ErrorDocument 404 /cgi-bin/slow.py?ms=200&s={SLOW_S}\n"
            "</Location>\n"))
