"""Response heads that cannot be sent, response field whitespace, and what
the access log and server-status count for HTTP/2 responses (issue 9).

- A response head over H2MaxHeaderBlockLen (default 64 KiB) is refused by
  nghttp2; the stream is reset with INTERNAL_ERROR and the error log names
  it (DESIGN.md invariant 1: every stream ends). A larger
  H2MaxHeaderBlockLen lets the same head through, as in mod_http2.
- Leading/trailing whitespace in response field values is stripped; a
  value with a control character resets the stream (INTERNAL_ERROR).
- RST_STREAM(NO_ERROR) for an unread request body comes only after the
  response's END_STREAM (RFC 9113 §8.1), directly and via mod_proxy_http2.
- %O counts the HTTP/2 head and frames, not an HTTP/1 status line; the
  scoreboard (server-status Total Accesses / kBytes) counts h2 requests.
"""

import re

import pytest

from core_helpers import TEST_HANDLER_CONF, pattern_body
from h2x.clients import curl
from h2x.frames import ErrorCodes

pytestmark = pytest.mark.h2

HEAD_TOO_LARGE = r"H2X10026"


def _config(httpd, extra=""):
    proxy_http2 = httpd.env.apache_module("proxy_http2")
    httpd.reconfigure(extra_global=TEST_HANDLER_CONF + f"""
LoadModule proxy_http2_module {proxy_http2}
ProxyPass "/px2/" "h2c://127.0.0.1:{httpd.http_port}/"
<Location /ws.txt>
    Header set x-trail "123 "
    Header set x-tab "\t123\t"
    Header set x-lead "   123"
    Header set x-only " \t "
</Location>
<Location /bad.txt>
    Header set x-bad "expr=%{{unescape:123%0A 123}}"
</Location>
{extra}
""")


@pytest.fixture(scope="module", autouse=True)
def _default(httpd):
    _config(httpd)
    with open(httpd.docroot + "/ws.txt", "w") as f:
        f.write("ws\n")
    with open(httpd.docroot + "/bad.txt", "w") as f:
        f.write("bad\n")
    with open(httpd.docroot + "/r1k.bin", "wb") as f:
        f.write(pattern_body(90364))


@pytest.mark.expect_log(HEAD_TOO_LARGE)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_260_01_head_too_large_resets(httpd, frame_client, tls):
    """A 70 000-byte response field: RST_STREAM(INTERNAL_ERROR), no HEADERS;
    a stream beside it completes."""
    c = frame_client(tls=tls)
    sid = c.request("GET", "/h2x/status?hd=70000&n=10")
    other = c.request("GET", "/h2x/status?n=2000")
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid)
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s
    assert s.status is None
    assert c.wait_stream_end(other)
    assert c.stream(other).status == 200
    assert c.stream(other).body == pattern_body(2000)
    httpd.expect_log(HEAD_TOO_LARGE, required=True)


@pytest.mark.expect_log(HEAD_TOO_LARGE)
def test_h2x_260_02_head_too_large_curl(httpd):
    """curl gets an error, not a hang (mod_http2's test_200_21)."""
    r = curl(httpd.url("/h2x/status?hd=65536", tls=True), timeout=10)
    assert r.exit_code != 0, r
    assert r.json.get("time_total", 0) < 5, r


def test_h2x_260_03_larger_header_block_len(httpd):
    """H2MaxHeaderBlockLen 98304 lets a 64 KiB field through (test_200_22)."""
    _config(httpd, "H2MaxHeaderBlockLen 98304")
    try:
        r = curl(httpd.url("/h2x/status?hd=65536", tls=True), timeout=10)
        assert r.exit_code == 0, r
        assert r.status == 200
        assert r.header("x-hd") == "h" * 65536
    finally:
        _config(httpd)


@pytest.mark.expect_log(HEAD_TOO_LARGE)
def test_h2x_260_04_smaller_header_block_len(httpd, frame_client):
    """H2MaxHeaderBlockLen 8192: a 10 000-byte field resets the stream."""
    _config(httpd, "H2MaxHeaderBlockLen 8192")
    try:
        c = frame_client()
        sid = c.request("GET", "/h2x/status?hd=10000")
        assert c.wait_stream_end(sid, timeout=10)
        assert c.stream(sid).rst_code == ErrorCodes.INTERNAL_ERROR
        sid = c.request("GET", "/h2x/status?hd=4000")
        assert c.wait_stream_end(sid, timeout=10)
        assert c.stream(sid).status == 200
    finally:
        _config(httpd)


def test_h2x_260_10_response_whitespace_stripped(httpd):
    r = curl(httpd.url("/ws.txt", tls=True))
    assert r.status == 200, r
    assert r.header("x-trail") == "123"
    assert r.header("x-tab") == "123"
    assert r.header("x-lead") == "123"
    assert r.header("x-only") == ""


@pytest.mark.expect_log(r"H2X10027")
def test_h2x_260_11_response_control_char_reset(httpd, frame_client):
    """A field value with a line feed is never sent: the stream is reset
    with INTERNAL_ERROR (as mod_http2 on httpd 2.4), the connection
    carries on."""
    c = frame_client(tls=True)
    sid = c.request("GET", "/bad.txt")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s
    assert s.status is None
    other = c.request("GET", "/ws.txt")
    assert c.wait_stream_end(other)
    assert c.stream(other).status == 200


@pytest.mark.parametrize("path,rounds", [("/h2x/status?n=20000", 200),
                                         ("/px2/h2x/status?n=20000", 100),
                                         ("/px2/h2x/status?n=24&s=405", 100)],
                         ids=["direct", "proxy_http2", "proxy_http2_405"])
def test_h2x_260_20_rst_no_error_only_after_end_stream(httpd, frame_client, path, rounds):
    """A response to a request whose body the handler never reads: the whole
    body arrives, END_STREAM is on its last frame, and a RST_STREAM(NO_ERROR)
    (if any) comes after it. Directly and through mod_proxy_http2 (whose
    stream to the backend ends only with the backend's RST_STREAM: the
    client is mid-body, so the backend resets at once, no grace), for a
    large response and for a small one that arrives with the reset."""
    status, size = (405, 24) if "s=405" in path else (200, 20000)
    for i in range(rounds):
        c = frame_client(tls=bool(i % 2))
        sid = c.request("POST", path, end_stream=False,
                        headers=[("content-length", "1000000")])
        c.send_data(sid, b"x" * 30000, end_stream=False)
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        s = c.stream(sid)
        assert s.status == status, s.frames_str()
        assert s.body == pattern_body(size), (i, s.frames_str())
        kinds = [(f.type, f.end_stream, f.error_name) for f in s.frames
                 if f.type in ("DATA", "HEADERS", "RST_STREAM")]
        es = [k for k, (t, e, _) in enumerate(kinds) if e]
        assert es, (i, s.frames_str())
        rst = [k for k, (t, _, _) in enumerate(kinds) if t == "RST_STREAM"]
        assert all(k > es[0] for k in rst), (i, s.frames_str())
        c.close()


def test_h2x_260_21_get_via_proxy_http2_body_complete(httpd, frame_client):
    """mod_proxy_http2 sends a body-less request's END_STREAM as an empty
    DATA frame after the HEADERS; a backend that answered first must not
    reset the stream before that arrives (mod_proxy_http2 then drops the
    response body). 300 GETs through it, every body whole (mod_http2's
    test_600_34)."""
    c = frame_client(tls=True)
    for i in range(300):
        sid = c.request("GET", f"/px2/h2x/status?n=24&s=405&i={i}")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        s = c.stream(sid)
        assert s.status == 405, (i, s.frames_str())
        assert s.body == pattern_body(24), (i, s.frames_str())


def _log_entry(httpd, request_line):
    for line in reversed(httpd.access_log_lines()):
        if f'"{request_line}"' in line:
            rest = line.split(f'"{request_line}"', 1)[1].split()
            # %>s %b %I %O %H %k %D
            return dict(status=int(rest[0]), b=rest[1], I=int(rest[2]), O=int(rest[3]))
    return None


def test_h2x_260_30_bytes_out_of_range_response(httpd):
    """%O of a 1024-byte range response is the body plus the HTTP/2 head
    and frame headers: over 1024, under 1280 (mod_http2's test_008_02)."""
    r = curl(httpd.url("/r1k.bin?260range", tls=True), "-H", "range: bytes=0-1023")
    assert r.status == 206 and len(r.body) == 1024, r
    httpd.restart()    # flushes the access log
    e = _log_entry(httpd, "GET /r1k.bin?260range HTTP/2.0")
    assert e, httpd.access_log_lines()[-5:]
    assert e["b"] == "1024"
    assert e["I"] > 0
    assert 1024 < e["O"] < 1024 + 256, e


def _status(httpd):
    r = curl(httpd.url("/server-status?auto", tls=True))
    assert r.status == 200, r
    return dict(m.groups() for m in re.finditer(r"^([^:\n]+): (.*)$", r.text, re.M))


def test_h2x_260_31_scoreboard_counts_h2(httpd):
    """server-status counts h2 requests and their bytes (test_008_04)."""
    httpd.restart()
    before = _status(httpd)
    n = 10
    for i in range(n):
        r = curl(httpd.url(f"/r1k.bin?{i}", tls=True), "-H", "Range: bytes=0-4096")
        assert r.status == 206
    after = _status(httpd)
    assert int(after["Total Accesses"]) - int(before["Total Accesses"]) == n + 1
    kb = int(after["Total kBytes"]) - int(before["Total kBytes"])
    assert 4 * n <= kb <= 4 * (n + 1) + 1, (before, after)
