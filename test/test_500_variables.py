"""Issue 4: the variables mod_http2 gives to CGI, SSI, expressions and logs.

mod_h2x is a drop-in replacement (DESIGN.md), so a CGI (env.py), an SSI
page, `<If "%{HTTP2} == 'on'">`, `Require expr` and the access log see what
they see under mod_http2: HTTP2=on, H2_STREAM_ID=<the stream id>,
H2_STREAM_TAG, H2PUSH/H2_PUSH, H2_PUSHED/H2_PUSHED_ON, SERVER_PROTOCOL
HTTP/2.0; over TLS the mod_ssl variables (SSLOptions +StdEnvVars); in the
access log `HTTP/2.0` in %r and %H, and %I/%O per request.

Values measured with Debian's mod_http2 (H2X_TEST_MODULE=http2), client
with SETTINGS_ENABLE_PUSH=0: H2PUSH=off, H2_PUSH=off, H2_PUSHED= and
H2_PUSHED_ON= (empty), H2_STREAM_ID=3 for stream 3, H2_STREAM_TAG=
<child pid>-<c1 id>-<stream id> (e.g. 24237-0-3).
"""

import re

import pytest

from h2x.clients import curl

pytestmark = [pytest.mark.h2]

CONF = """
<Location /h2x/env>
    SetHandler h2x-env
</Location>
<Location /only-h2>
    Require expr %{HTTP2} == 'on'
</Location>
<Location /ifh2>
    <If "%{HTTP2} == 'on'">
        Header set X-H2 yes
    </If>
    <Else>
        Header set X-H2 no
    </Else>
</Location>
"""

SSI = ('HTTP2=<!--#echo var="HTTP2" -->\n'
       'H2_STREAM_ID=<!--#echo var="H2_STREAM_ID" -->\n'
       'H2_STREAM_TAG=<!--#echo var="H2_STREAM_TAG" -->\n'
       'H2PUSH=<!--#echo var="H2PUSH" -->\n'
       'H2_PUSH=<!--#echo var="H2_PUSH" -->\n'
       'H2_PUSHED=<!--#echo var="H2_PUSHED" -->\n'
       'H2_PUSHED_ON=<!--#echo var="H2_PUSHED_ON" -->\n'
       'SERVER_PROTOCOL=<!--#echo var="SERVER_PROTOCOL" -->\n')


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    with open(f"{httpd.docroot}/vars.shtml", "w") as f:
        f.write(SSI)
    httpd.make_file("only-h2/x.txt", 100)
    httpd.make_file("ifh2/x.txt", 100)
    httpd.make_file("logio/small.txt", 10)
    httpd.make_file("logio/large.txt", 50000)
    httpd.reconfigure(extra_global=CONF, extra_tls_vhost="SSLOptions +StdEnvVars\n")
    yield


def _vars(body: bytes):
    out = {}
    for line in body.decode().splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, v)
    return out


def _get(frame_client, path, tls=False, first="/index.html"):
    """GET `first` then `path` on one connection, so `path` is stream 3."""
    c = frame_client(tls=tls)
    s1 = c.request("GET", first)
    assert c.wait_stream_end(s1)
    sid = c.request("GET", path)
    assert c.wait_stream_end(sid, timeout=15)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM", repr(s)
    assert s.status == 200, repr(s)
    return sid, _vars(s.body)


def _check_h2_vars(v, sid):
    assert v.get("HTTP2") == "on", v
    assert v.get("H2_STREAM_ID") == str(sid), v
    assert v.get("H2PUSH") == "off", v
    assert v.get("H2_PUSH") == "off", v
    assert v.get("H2_PUSHED") == "", v
    assert v.get("H2_PUSHED_ON") == "", v
    assert v.get("SERVER_PROTOCOL") == "HTTP/2.0", v
    assert v.get("H2_STREAM_TAG", "").endswith(f"-{sid}"), v


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("path", ["/cgi-bin/env.py", "/vars.shtml", "/h2x/env"],
                         ids=["cgi", "ssi", "handler"])
def test_h2x_500_01_h2_vars(frame_client, path, tls):
    sid, v = _get(frame_client, path, tls=tls)
    assert sid == 3
    _check_h2_vars(v, sid)


def test_h2x_500_02_stream_tag_like_mod_http2(frame_client):
    """mod_http2's H2_STREAM_TAG is <child pid>-<c1 id>-<stream id>: unique
    across the children of a server, unlike <c1 id>-<stream id>."""
    sid, v = _get(frame_client, "/cgi-bin/env.py")
    assert re.fullmatch(r"\d+-\d+-%d" % sid, v.get("H2_STREAM_TAG", "")), v


def test_h2x_500_03_h1_vars(httpd):
    """Over HTTP/1.1 a CGI sees no HTTP2=on and no stream id."""
    r = curl(httpd.url("/cgi-bin/env.py"), http="1.1")
    assert r.status == 200, r
    v = _vars(r.body)
    assert v.get("HTTP2", "off") == "off", v
    assert not v.get("H2_STREAM_ID"), v
    assert v.get("SERVER_PROTOCOL") == "HTTP/1.1", v


@pytest.mark.parametrize("path", ["/cgi-bin/env.py", "/h2x/env"], ids=["cgi", "handler"])
def test_h2x_500_04_tls_ssl_vars(frame_client, path):
    sid, v = _get(frame_client, path, tls=True)
    _check_h2_vars(v, sid)
    assert v.get("HTTPS") == "on", v
    assert v.get("REQUEST_SCHEME") == "https", v
    assert v.get("SSL_PROTOCOL", "").startswith("TLSv1."), v
    assert v.get("SSL_CIPHER"), v
    assert v.get("SSL_TLS_SNI") == "localhost", v
    assert v.get("SSL_SESSION_ID"), v
    assert v.get("SSL_CLIENT_VERIFY") == "NONE", v
    assert "SSL_VERSION_INTERFACE" in v, v


@pytest.mark.parametrize("http,tls,expect", [
    ("2-prior", False, "yes"), ("2", True, "yes"), ("1.1", False, "no"), ("1.1", True, "no"),
], ids=["h2c", "h2", "http1", "https1"])
def test_h2x_500_05_if_http2_header(httpd, http, tls, expect):
    r = curl(httpd.url("/ifh2/x.txt", tls=tls), http=http)
    assert r.status == 200, r
    assert r.header("x-h2") == expect, r.headers


@pytest.mark.parametrize("http,tls,status", [
    ("2-prior", False, 200), ("2", True, 200), ("h2c-upgrade", False, 403),
    ("1.1", False, 403), ("1.1", True, 403),
], ids=["h2c", "h2", "upgrade", "http1", "https1"])
def test_h2x_500_06_require_expr_http2(httpd, http, tls, status):
    """h2 -> allowed, HTTP/1.1 -> 403.  The request carrying `Upgrade: h2c`
    is authorised as HTTP/1.1 before any switch, so it gets 403 (as with
    mod_http2)."""
    if status == 403:
        httpd.expect_log(r"AH01630: client denied by server configuration")
    r = curl(httpd.url("/only-h2/x.txt", tls=tls), http=http)
    assert r.status == status, r
    if status == 200:
        assert r.http_version == "2", r


def _log_entry(httpd, path, n_expected=1, timeout=5.0):
    import time
    deadline = time.monotonic() + timeout
    while True:
        lines = [ln for ln in httpd.access_log_lines() if f" {path} " in ln]
        if len(lines) >= n_expected or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


# %h %l %u %t "%r" %>s %b %I %O %H %k %D
_LOG_RE = re.compile(r'^(\S+) \S+ \S+ \[[^\]]+\] "([^"]*)" (\d+) (\S+) (\d+) (\d+) (\S+) (\d+) (\d+)$')


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_500_07_access_log_protocol_and_logio(httpd, frame_client, tls):
    """%r and %H say HTTP/2.0; %I/%O are per request: two requests of very
    different response sizes on one connection log plausible, different
    %O; %b is the body size."""
    tag = "tls" if tls else "plain"
    c = frame_client(tls=tls)
    small = f"/logio/small.txt?{tag}"
    large = f"/logio/large.txt?{tag}"
    s1 = c.request("GET", small)
    assert c.wait_stream_end(s1)
    s2 = c.request("GET", large)
    assert c.wait_stream_end(s2)
    assert c.stream(s1).status == 200 and c.stream(s2).status == 200
    c.close()
    entries = {}
    for p in (small, large):
        lines = _log_entry(httpd, p)
        assert len(lines) == 1, (p, httpd.access_log_lines()[-5:])
        m = _LOG_RE.match(lines[0])
        assert m, lines[0]
        entries[p] = m
    for p, m in entries.items():
        assert m.group(2) == f"GET {p} HTTP/2.0", m.group(0)
        assert m.group(7) == "HTTP/2.0", m.group(0)
        assert 0 < int(m.group(5)) < 2000, m.group(0)    # %I: one HEADERS frame or so
    o_small = int(entries[small].group(6))
    o_large = int(entries[large].group(6))
    assert 10 < o_small < 2000, entries[small].group(0)
    assert 50000 < o_large < 50000 + 4000, entries[large].group(0)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_500_08_access_log_bytes_sent(httpd, frame_client, tls):
    """%b (r->bytes_sent) is the body size, as over HTTP/1.1 and mod_http2
    (which logs 182 for index.html)."""
    tag = "b-tls" if tls else "b-plain"
    c = frame_client(tls=tls)
    p = f"/logio/large.txt?{tag}"
    sid = c.request("GET", p)
    assert c.wait_stream_end(sid)
    assert len(c.stream(sid).body) == 50000
    lines = _log_entry(httpd, p)
    assert len(lines) == 1
    m = _LOG_RE.match(lines[0])
    assert m and m.group(4) == "50000", lines[0]
