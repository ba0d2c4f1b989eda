"""562: httpd output filters that rewrite or hold response bodies, over h2.

mod_h2x serves a lone static request on the connection's own thread (c1)
when every output filter of its chain is on a list of filters known to be
quick (h2x_c2_inline.cpp, filter_known_quick()); any other filter sends
the request to a worker before its handler runs. A filter misjudged as
quick would hold c1 (every other stream of the connection waits) and a
filter lost on the way would change the body. A filter that rewrites the
body changes its length: Content-Length must go (or be the new one) and,
h2 having no chunking, the stream must still end - END_STREAM on the last
DATA frame, never a reset, never a hang.

Every case here compares the h2 body (h2c prior knowledge and h2 over TLS,
raw frames) with what HTTP/1.1 gets on the same server, and where the
result is easy to compute, with that too:

- mod_substitute (AddOutputFilterByType) and mod_sed (SetOutputFilter) on
  text files of a few bytes, 16 KiB, 64 KiB (the largest file served on
  c1) and ~200 KiB, the pattern straddling the 8000-byte (APR bucket),
  8 KiB, 16000-byte and 16 KiB boundaries;
- mod_ext_filter: a fast external program (tr) byte-exact, and a slow
  one (sleep, then cat) on a file small enough for c1 and on one larger
  than a pipe holds: while it runs, five static requests and a PING on
  the same connection are answered at once (mod_ext_filter cannot run
  under mod_filter's harnesses: it looks its definition up by the
  harness's name, AH01459, whatever the protocol);
- mod_filter's FilterDeclare/FilterProvider/FilterChain running
  SUBSTITUTE by content type, and a chain SUBSTITUTE then DEFLATE with
  Accept-Encoding: gzip (gunzipped and compared);
- mod_proxy_html (ProxyHTMLURLMap) on a local HTML file (it leaves
  non-proxied responses alone unless PROXY_HTML_FORCE is set) and on the
  same file proxied from this server over HTTP/1.1;
- mod_data (a data: URL of a small binary file);
- SSI (mod_include): include virtual of a static file and of a CGI, and
  exec cgi;
- HEAD through each of these: HEADERS with END_STREAM, no DATA
  (RFC 9110 9.3.2; Debian's mod_http2 sends the filtered body as
  DATA frames for SUBSTITUTE, mod_filter chains, proxy-html and SSI).

Framing rule (DESIGN invariant 4, as in test_290): a filter that passes
its last bytes together with the end of the body must end on its last
DATA frame; a body that comes from a pipe (ext_filter's program, a CGI
included by SSI) may end with DATA(0)[ES], its EOF following its last
bytes.

The filter modules are in Debian's apache2-bin; a test whose module is
missing is skipped naming it.
"""

import base64
import gzip
import os
import time

import pytest

from h2x.clients import curl

pytestmark = pytest.mark.h2

# Modules this file loads (the harness loads filter, deflate and include).
EXTRA_MODULES = ["substitute", "sed", "ext_filter", "xml2enc", "proxy_html", "data"]
HARNESS_MODULES = ["filter", "deflate", "include"]

SIZES = [5, 16384, 65536, 200_000]
# 'foo' is laid across these offsets: APR's file bucket reads (8000),
# 8 KiB, h2's default frame size (16 KiB), the c1 file bound, 128 KiB.
BOUNDARIES = [8000, 8192, 16000, 16384, 65536, 131072]

SLOW_S = 1.5          # the slow ext_filter's sleep
QUICK_WITHIN = 0.75   # the other streams of the connection: well under it

CGI_HELLO = b"Hello from h2x test CGI\n"


def text_body(size: int) -> bytes:
    """Text lines with 'a' and 'foo' in them; 'foo' straddles BOUNDARIES."""
    if size < 64:
        return (b"a foo\n" * size)[:size]
    out = bytearray()
    i = 0
    while len(out) < size:
        out += b"%06d a foo and a bar, another foobar line\n" % i
        i += 1
    del out[size:]
    for b in BOUNDARIES:
        start = b - (2 if b % 1024 == 0 else 1)   # 'f|oo' or 'fo|o'
        if start + 3 < size:
            out[start:start + 3] = b"foo"
    out[-1:] = b"\n"
    return bytes(out)


def html_body() -> bytes:
    rows = "".join(
        f'<p><a href="http://backend.example/page/{i}">page {i}</a> '
        f'<img src="http://backend.example/img/{i}.png" alt="img {i}"></p>\n'
        for i in range(400))
    return ("<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>562</title>\n"
            '<link rel="stylesheet" href="http://backend.example/style.css">\n'
            f"</head><body>\n{rows}</body></html>\n").encode()


DATA_BLOB = bytes(range(256)) + bytes(range(255, 211, -1))     # 300 bytes
SSI_PART = b"static part of the page\n" * 20
SSI_PAGE = (b"<html><body>\n<p>static:</p>\n"
            b'<!--#include virtual="/f562/ssi/part.txt" -->\n'
            b"<p>cgi include:</p>\n"
            b'<!--#include virtual="/cgi-bin/hello.py" -->\n'
            b"<p>exec:</p>\n"
            b'<!--#exec cgi="/cgi-bin/hello.py" -->\n'
            b"<p>big:</p>\n"
            b'<!--#include virtual="/f562/t/s-65536.txt" -->\n'
            b"<p>end</p>\n</body></html>\n")
SSI_EXPECTED = (b"<html><body>\n<p>static:</p>\n" + SSI_PART + b"\n"
                b"<p>cgi include:</p>\n" + CGI_HELLO + b"\n"
                b"<p>exec:</p>\n" + CGI_HELLO + b"\n"
                b"<p>big:</p>\n" + text_body(65536) + b"\n"
                b"<p>end</p>\n</body></html>\n")


def _conf(env, docroot: str, http_port: int) -> str:
    loads = []
    for name in EXTRA_MODULES:
        path = env.apache_module(name)
        if path:
            loads.append(f"LoadModule {name}_module {path}")
    t = f"{docroot}/f562/t/"
    return "\n".join(loads) + f"""
<IfModule substitute_module>
    Alias /f562/sub/ "{t}"
    <Location /f562/sub/>
        AddOutputFilterByType SUBSTITUTE text/plain
        Substitute "s/foo/barbaz/n"
    </Location>
</IfModule>
<IfModule sed_module>
    Alias /f562/sed/ "{t}"
    <Location /f562/sed/>
        SetOutputFilter Sed
        OutputSed "s/a/A/g"
    </Location>
</IfModule>
<IfModule ext_filter_module>
    ExtFilterDefine slow562 mode=output intype=text/plain cmd="/bin/sh -c 'sleep {SLOW_S}; exec cat'"
    ExtFilterDefine upper562 mode=output intype=text/plain cmd="/usr/bin/tr a-z A-Z"
    Alias /f562/slow/ "{t}"
    Alias /f562/upper/ "{t}"
    <Location /f562/slow/>
        SetOutputFilter slow562
    </Location>
    <Location /f562/upper/>
        SetOutputFilter upper562
    </Location>
</IfModule>
<IfModule substitute_module>
<IfModule filter_module>
    Alias /f562/smart/ "{t}"
    Alias /f562/chain/ "{t}"
    <Location /f562/smart/>
        FilterDeclare sub562
        FilterProvider sub562 SUBSTITUTE "%{{CONTENT_TYPE}} =~ m#^text/plain#"
        FilterChain sub562
        Substitute "s/foo/barbaz/n"
    </Location>
    <IfModule deflate_module>
    <Location /f562/chain/>
        FilterDeclare sub562c
        FilterProvider sub562c SUBSTITUTE "%{{CONTENT_TYPE}} =~ m#^text/plain#"
        FilterDeclare gz562 CONTENT_SET
        FilterProvider gz562 DEFLATE "%{{CONTENT_TYPE}} =~ m#^text/plain#"
        FilterChain sub562c gz562
        Substitute "s/foo/barbaz/n"
    </Location>
    </IfModule>
</IfModule>
</IfModule>
<IfModule proxy_html_module>
    # A local page: mod_proxy_html only works on proxied responses unless
    # PROXY_HTML_FORCE is set.
    <Location /f562/html/>
        SetEnv PROXY_HTML_FORCE 1
        ProxyHTMLEnable On
        ProxyHTMLLinks a href
        ProxyHTMLLinks img src
        ProxyHTMLLinks link href
        ProxyHTMLURLMap http://backend.example/ /front/
    </Location>
    <IfModule proxy_http_module>
    # The same page proxied from this server over HTTP/1.1.
    <Location /f562/phtml/>
        ProxyPass http://127.0.0.1:{http_port}/f562/raw/
        ProxyHTMLEnable On
        ProxyHTMLLinks a href
        ProxyHTMLLinks img src
        ProxyHTMLLinks link href
        ProxyHTMLURLMap http://backend.example/ /front/
    </Location>
    </IfModule>
</IfModule>
<IfModule data_module>
    <Location /f562/data/>
        SetOutputFilter DATA
    </Location>
</IfModule>
"""


def _write(path: str, data: bytes):
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    os.chmod(path, 0o644)


@pytest.fixture(scope="module")
def server(httpd, env):
    root = f"{httpd.docroot}/f562"
    for size in SIZES:
        _write(f"{root}/t/s-{size}.txt", text_body(size))
    _write(f"{root}/html/page.html", html_body())
    _write(f"{root}/raw/page.html", html_body())
    _write(f"{root}/data/blob.bin", DATA_BLOB)
    _write(f"{root}/ssi/part.txt", SSI_PART)
    _write(f"{root}/ssi/page.shtml", SSI_PAGE)
    httpd.reconfigure(extra_global=_conf(env, httpd.docroot, httpd.http_port))
    yield httpd
    httpd.reconfigure()


def _need(env, *names):
    for name in names:
        if not env.apache_module(name):
            pytest.skip(f"mod_{name}.so is missing (Debian package apache2-bin)")


_H1 = {}


def _h1(server, path, headers=None, head=False):
    """The HTTP/1.1 response on the same server (cached per request)."""
    key = (path, tuple(sorted((headers or {}).items())), head)
    if key not in _H1:
        args = ["-I"] if head else []
        r = curl(server.url(path), *args, http="1.1", headers=headers)
        assert r.exit_code == 0 and r.http_version == "1.1", r
        _H1[key] = r
    return _H1[key]


def _get(frame_client, tls, path, method="GET", headers=None, timeout=10):
    """One request alone on a fresh connection; returns (client, stream id)."""
    c = frame_client(tls=tls)
    sid = c.request(method, path, headers=headers)
    assert c.wait_stream_end(sid, timeout=timeout), \
        f"{path}: stream did not end within {timeout}s: {c.stream(sid).frames_str()}"
    return c, sid


def _first_diff(a: bytes, b: bytes) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _check(c, sid, h1, expected=None, piped=False):
    """200 with END_STREAM, the HTTP/1.1 body (and `expected`), a right or no
    Content-Length, END_STREAM on the last DATA frame (DATA(0)[ES] allowed
    when the body came from a pipe)."""
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM", s
    assert s.status == 200 and h1.status == 200, (s, h1)
    if expected is not None:
        assert h1.body == expected, f"HTTP/1.1 gave {len(h1.body)} bytes, expected {len(expected)}"
    assert s.body == h1.body, (f"h2 body {len(s.body)} bytes, HTTP/1.1 {len(h1.body)}; "
                               f"first difference at {_first_diff(s.body, h1.body)}")
    cl = s.header("content-length")
    assert cl is None or int(cl) == len(s.body), f"content-length {cl} for {len(s.body)} bytes"
    allowed = {"HEADERS DATA[ES]"}
    if piped:
        allowed.add("HEADERS DATA DATA(0)[ES]")
    if not s.body:
        allowed = {"HEADERS[ES]"}
    assert c.shape(sid) in allowed, s.frames_str()
    return s


TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
SIZE = pytest.mark.parametrize("size", SIZES, ids=[f"{n}B" for n in SIZES])


@TLS
@SIZE
def test_h2x_562_01_substitute(server, env, frame_client, tls, size):
    """mod_substitute through AddOutputFilterByType: 'foo' -> 'barbaz'."""
    _need(env, "substitute", "filter")
    path = f"/f562/sub/s-{size}.txt"
    c, sid = _get(frame_client, tls, path)
    _check(c, sid, _h1(server, path), text_body(size).replace(b"foo", b"barbaz"))


@TLS
@SIZE
def test_h2x_562_02_sed(server, env, frame_client, tls, size):
    """mod_sed (SetOutputFilter Sed, OutputSed s/a/A/g)."""
    _need(env, "sed")
    path = f"/f562/sed/s-{size}.txt"
    c, sid = _get(frame_client, tls, path)
    expected = text_body(size).replace(b"a", b"A")
    h1 = _h1(server, path)
    # A last line without a newline: whether mod_sed adds one, HTTP/1.1 decides.
    _check(c, sid, h1, expected if expected.endswith(b"\n") else None)
    assert h1.body.rstrip(b"\n") == expected.rstrip(b"\n")


@TLS
@SIZE
def test_h2x_562_03_ext_filter_fast(server, env, frame_client, tls, size):
    """mod_ext_filter with `tr a-z A-Z`: byte-exact as over HTTP/1.1."""
    _need(env, "ext_filter")
    path = f"/f562/upper/s-{size}.txt"
    c, sid = _get(frame_client, tls, path)
    _check(c, sid, _h1(server, path), text_body(size).upper(), piped=True)


def _ping_rtt(c, opaque=b"f562ping"):
    before = len([p for p in c.pings if "ACK" in p.flags])
    t0 = time.monotonic()
    c.ping(opaque)
    ok = c.run(lambda c: len([p for p in c.pings if "ACK" in p.flags]) > before, timeout=5)
    return time.monotonic() - t0 if ok else None


@TLS
@pytest.mark.parametrize("size", [16384, 200_000], ids=["16384B", "200000B"])
def test_h2x_562_04_ext_filter_slow_holds_a_worker(server, env, frame_client, tls, size):
    """A slow external filter (sleep, then cat) arriving alone on its
    connection - 16 KiB is small enough to start on c1, 200 KiB is more
    than a pipe holds: while it sleeps, a PING and five static requests on
    the same connection are answered at once; then the body arrives whole
    and the stream ends."""
    _need(env, "ext_filter")
    path = f"/f562/slow/s-{size}.txt"
    c = frame_client(tls=tls)
    t0 = time.monotonic()
    slow = c.request("GET", path)
    c.run(timeout=0.3)
    assert not c.stream(slow).ended, c.stream(slow).frames_str()
    rtt = _ping_rtt(c)
    assert rtt is not None and rtt < QUICK_WITHIN, f"PING ACK took {rtt}"
    t_quick = time.monotonic()
    quick = [c.request("GET", p) for p in ("/1k.txt", "/hello.txt", "/index.html",
                                           "/f562/t/s-16384.txt", "/f562/t/s-5.txt")]
    assert c.run(until=lambda cl: all(cl.stream(q).ended for q in quick), timeout=10), \
        [c.stream(q).frames_str() for q in quick]
    quick_took = time.monotonic() - t_quick
    slow_pending = not c.stream(slow).ended
    assert c.wait_stream_end(slow, timeout=15), c.stream(slow).frames_str()
    took = time.monotonic() - t0
    for q in quick:
        assert c.stream(q).status == 200 and c.stream(q).ended_by == "END_STREAM", c.stream(q)
    assert c.stream(quick[3]).body == text_body(16384)
    _check(c, slow, _h1(server, path), text_body(size), piped=True)
    assert slow_pending, f"the slow stream ended before the quick ones ({took:.2f}s)"
    assert quick_took < QUICK_WITHIN, \
        f"5 static streams took {quick_took:.2f}s next to a {SLOW_S}s filter"
    assert SLOW_S * 0.8 < took < SLOW_S + 8, took


@TLS
@pytest.mark.parametrize("size", [5, 65536, 200_000], ids=["5B", "65536B", "200000B"])
def test_h2x_562_05_filter_chain_substitute(server, env, frame_client, tls, size):
    """mod_filter FilterDeclare/FilterProvider/FilterChain picks SUBSTITUTE
    by content type."""
    _need(env, "substitute", "filter")
    path = f"/f562/smart/s-{size}.txt"
    c, sid = _get(frame_client, tls, path)
    _check(c, sid, _h1(server, path), text_body(size).replace(b"foo", b"barbaz"))


@TLS
@pytest.mark.parametrize("size", [5, 65536, 200_000], ids=["5B", "65536B", "200000B"])
def test_h2x_562_06_filter_chain_substitute_deflate(server, env, frame_client, tls, size):
    """FilterChain SUBSTITUTE then DEFLATE, Accept-Encoding: gzip: one gzip
    layer that inflates to the substituted text, as over HTTP/1.1."""
    _need(env, "substitute", "filter", "deflate")
    path = f"/f562/chain/s-{size}.txt"
    hdrs = {"accept-encoding": "gzip"}
    c, sid = _get(frame_client, tls, path, headers=list(hdrs.items()))
    h1 = _h1(server, path, headers=hdrs)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM" and s.status == 200, s
    # mod_deflate leaves a body alone that is too short to gain from it.
    if size > 1000:
        assert h1.header("content-encoding") == "gzip", h1.headers
    assert s.header("content-encoding") == h1.header("content-encoding"), s.response_headers
    expected = text_body(size).replace(b"foo", b"barbaz")
    unzip = gzip.decompress if h1.header("content-encoding") == "gzip" else bytes
    assert unzip(h1.body) == expected
    assert unzip(s.body) == expected
    cl = s.header("content-length")
    assert cl is None or int(cl) == len(s.body), (cl, len(s.body))
    assert c.shape(sid) == "HEADERS DATA[ES]", s.frames_str()


@TLS
@pytest.mark.parametrize("where", ["html", "phtml"], ids=["local", "proxied"])
def test_h2x_562_07_proxy_html(server, env, frame_client, tls, where):
    """mod_proxy_html rewrites the links of an HTML page, served locally
    (PROXY_HTML_FORCE) and proxied from this server over HTTP/1.1."""
    _need(env, "proxy_html", "xml2enc", *(["proxy", "proxy_http"] if where == "phtml" else []))
    path = f"/f562/{where}/page.html"
    c, sid = _get(frame_client, tls, path)
    s = _check(c, sid, _h1(server, path))
    assert b"http://backend.example/" not in s.body
    assert b'href="/front/page/399"' in s.body and b'src="/front/img/0.png"' in s.body


@TLS
def test_h2x_562_08_data_url(server, env, frame_client, tls):
    """mod_data turns a small binary file into its data: URL."""
    _need(env, "data")
    path = "/f562/data/blob.bin"
    c, sid = _get(frame_client, tls, path)
    s = _check(c, sid, _h1(server, path))
    prefix, _, b64 = s.body.partition(b",")
    assert prefix.startswith(b"data:application/octet-stream") and prefix.endswith(b";base64"), \
        prefix
    assert base64.b64decode(b64) == DATA_BLOB


@TLS
def test_h2x_562_09_ssi(server, env, frame_client, tls):
    """SSI: include virtual of a static file, of a CGI (twice: include and
    exec cgi) and of a 64 KiB file, as over HTTP/1.1."""
    _need(env, "include")
    path = "/f562/ssi/page.shtml"
    c, sid = _get(frame_client, tls, path)
    _check(c, sid, _h1(server, path), SSI_EXPECTED, piped=True)


HEAD_PATHS = {
    "substitute": ("/f562/sub/s-16384.txt", ["substitute", "filter"]),
    "sed": ("/f562/sed/s-16384.txt", ["sed"]),
    "ext_filter": ("/f562/upper/s-16384.txt", ["ext_filter"]),
    "filter-chain": ("/f562/smart/s-16384.txt", ["substitute", "filter"]),
    "proxy_html": ("/f562/html/page.html", ["proxy_html", "xml2enc"]),
    "data": ("/f562/data/blob.bin", ["data"]),
    "ssi": ("/f562/ssi/page.shtml", ["include"]),
}


@TLS
@pytest.mark.parametrize("case", list(HEAD_PATHS))
def test_h2x_562_10_head(server, env, frame_client, tls, case):
    """HEAD through each filter: the status HTTP/1.1 gets, no body,
    END_STREAM on the HEADERS frame."""
    path, mods = HEAD_PATHS[case]
    _need(env, *mods)
    c, sid = _get(frame_client, tls, path, method="HEAD")
    s = c.stream(sid)
    h1 = _h1(server, path, head=True)
    assert s.status == h1.status == 200, (s, h1)
    assert c.shape(sid, collapse=False) == "HEADERS[ES]", s.frames_str()
    assert s.ended_by == "END_STREAM" and s.body == b""
