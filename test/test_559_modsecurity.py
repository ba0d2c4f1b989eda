"""559: ModSecurity 2 (mod_security2) in front of HTTP/2 streams.

Hosting providers run mod_security with h2. ModSecurity reads the whole
request body itself (phase 2, in a fixups hook, before the handler),
keeps it in memory or in SecTmpDir, and hands it to the handler again
through its own input filter; with SecResponseBodyAccess it holds back a
text response until it has seen all of it (phase 4). Both places are
where an HTTP/2 module's request-body and stream-end handling is put to
the test: a body that loses or duplicates bytes (an earlier version lost
a body's first byte under one module order), or a stream that never ends
when ModSecurity denies while the client is still sending.

Debian's ModSecurity 2.9 is loaded by the test's own config only (it is
kept disabled in /etc/apache2), with mod_unique_id as Debian's
security2.load wants it, and a handful of rules of our own (ids 5590xx):

  559002 phase 1: ARGS_GET:q equal to "blockme"          -> 403
  559001 phase 2: REQUEST_BODY or ARGS_POST holding DENY_MARK -> 403
  559004 phase 4: RESPONSE_BODY holding RESP_MARK         -> 403
  SecRequestBodyLimit 2 MiB                               -> 413

Checked over h2c (prior knowledge) and h2 (TLS, ALPN) with the raw-frame
client: bodies of the flow-control and frame-size edge sizes arrive
byte-exact at the echo handler (md5), also urlencoded and multipart
bodies that ModSecurity parses, with the HTTP/2 module loaded after the
standard modules and, on a second server, before them (mod_security2
comes after the HTTP/2 module in both, as in Debian's a2enmod order);
denials (403, 413) end their stream with END_STREAM, the client is not
left hanging with an unsendable rest of its body, and the connection and
its other streams carry on; response-body inspection denies a marked
file, passes a clean 200 KiB file and streamed CGI output whole.
"""

import hashlib
import os
import shutil
import time

import pytest

from core_helpers import TEST_HANDLER_CONF
from h2x.httpd import Httpd, file_content

pytestmark = pytest.mark.h2

MODSEC_SO = "/usr/lib/apache2/modules/mod_security2.so"

KIB = 1024
MIB = 1024 * KIB
BODY_LIMIT = 2 * MIB
SIZES = [0, 1, 16383, 16384, 65535, 65537, MIB + 7]

DENY_MARK = b"H2X559-DENY-ME"          # in a request body: rule 559001
RESP_MARK = "H2X559-RESPONSE-MARK"     # in a response body: rule 559004
ECHO = "/h2x/echo?md5=1"

LOG_P1 = r'ModSecurity: Access denied with code 403 \(phase 1\).*\[id "559002"\]'
LOG_P2 = r'ModSecurity: Access denied with code 403 \(phase 2\).*\[id "559001"\]'
LOG_P4 = r'ModSecurity: Access denied with code 403 \(phase 4\).*\[id "559004"\]'
LOG_LIMIT = (r"ModSecurity: Request body (\(Content-Length\) |no files data length )?"
             r"is larger than the configured limit \(2097152\)")

# A CGI writing `count` text/plain lines `ms` apart (ModSecurity buffers
# text/plain answers for phase 4); mark=1 puts RESP_MARK into the last one.
TEXT_LINES_CGI = f"""#!/usr/bin/python3
import os, sys, time, urllib.parse
q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
count = int(q.get("count", ["5"])[0])
ms = float(q.get("ms", ["50"])[0])
mark = q.get("mark", ["0"])[0] == "1"
out = sys.stdout
out.write("Content-Type: text/plain\\n\\n")
out.flush()
for i in range(count):
    if i:
        time.sleep(ms / 1000.0)
    tail = " {RESP_MARK}" if mark and i == count - 1 else ""
    out.write("line %d of %d%s\\n" % (i, count, tail))
    out.flush()
"""


def _body(size: int, tag: str = "") -> bytes:
    """Not a repeating pattern: a lost, duplicated or shifted byte changes the md5."""
    return hashlib.shake_256(b"h2x-559-%d-%s" % (size, tag.encode())).digest(size) \
        if size else b""


def _md5_reply(body: bytes) -> bytes:
    return f"{hashlib.md5(body).hexdigest()} {len(body)}\n".encode()


def _modsec_conf(server: Httpd, env) -> str:
    """LoadModule lines, the echo handler and ModSecurity's config for `server`;
    ModSecurity's directories are made under server.root, owned by www-data."""
    dirs = {}
    for sub in ("data", "tmp", "upload", "audit"):
        path = os.path.join(server.root, "modsec", sub)
        os.makedirs(path, mode=0o750, exist_ok=True)
        shutil.chown(path, "www-data", "www-data")
        dirs[sub] = path
    unique_id = env.apache_module("unique_id")
    uid_line = f"LoadModule unique_id_module {unique_id}" if unique_id else ""
    return f"""
{uid_line}
LoadModule security2_module {MODSEC_SO}
{TEST_HANDLER_CONF}
<IfModule security2_module>
    SecRuleEngine On
    SecRequestBodyAccess On
    SecRequestBodyLimit {BODY_LIMIT}
    SecRequestBodyNoFilesLimit {BODY_LIMIT}
    SecRequestBodyInMemoryLimit 131072
    SecRequestBodyLimitAction Reject
    SecResponseBodyAccess On
    SecResponseBodyMimeType text/plain text/html
    SecResponseBodyLimit 1048576
    SecResponseBodyLimitAction ProcessPartial
    SecDataDir "{dirs['data']}"
    SecTmpDir "{dirs['tmp']}"
    SecUploadDir "{dirs['upload']}"
    SecAuditEngine Off
    SecAuditLogType Serial
    SecAuditLog "{dirs['audit']}/audit.log"
    SecDebugLogLevel 0
    # REQUEST_BODY also for bodies no request body processor parses.
    SecAction "id:559000,phase:1,pass,nolog,ctl:forceRequestBodyVariable=On"
    SecRule ARGS_GET:q "@streq blockme" \\
        "id:559002,phase:1,deny,status:403,log,msg:'h2x 559 phase 1 argument'"
    SecRule REQUEST_BODY|ARGS_POST "@contains {DENY_MARK.decode()}" \\
        "id:559001,phase:2,deny,status:403,log,msg:'h2x 559 request body marker'"
    SecRule RESPONSE_BODY "@contains {RESP_MARK}" \\
        "id:559004,phase:4,deny,status:403,log,msg:'h2x 559 response body marker'"
</IfModule>
"""


def _prepare_content(server: Httpd):
    server.make_file("/p559/clean-200k.txt", 200 * KIB)
    server.make_file("/p559/clean-1536k.txt", 1536 * KIB)
    # ~300 KiB (more than a stream window) with the marker near its end
    path = os.path.join(server.docroot, "p559", "marked.txt")
    with open(path, "w") as f:
        f.write("".join(f"line {i:06d}\n" for i in range(25000)) + f"here: {RESP_MARK}\n"
                + "".join(f"tail {i}\n" for i in range(100)))
    os.chmod(path, 0o644)
    path = os.path.join(server.docroot, "p559", "marked.html")
    with open(path, "w") as f:
        f.write(f"<html><body><p>{RESP_MARK}</p></body></html>\n")
    os.chmod(path, 0o644)
    server.make_cgi("/textlines.py", TEXT_LINES_CGI, in_cgi_bin=True)


@pytest.fixture(scope="module")
def server(httpd, env):
    """The module's server (HTTP/2 module after the standard modules,
    mod_security2 after it) with ModSecurity on."""
    if not os.path.exists(MODSEC_SO):
        pytest.skip(f"{MODSEC_SO} is missing (Debian package libapache2-mod-security2)")
    _prepare_content(httpd)
    httpd.reconfigure(extra_global=_modsec_conf(httpd, env))
    yield httpd
    httpd.reconfigure()


@pytest.fixture(scope="module")
def first_server(env, server):
    """A second server with the HTTP/2 module loaded first, right after the
    MPM (before mod_reqtimeout and the other standard modules, as Debian's
    a2enmod order has it), mod_security2 after all of them."""
    srv = Httpd(env, name="test_559-h2-first", module_first=True)
    try:
        srv.write_config(extra_global=_modsec_conf(srv, env))
        srv.start()
    except Exception:
        Httpd._live.discard(srv)
        raise
    yield srv
    try:
        srv.stop()
    finally:
        Httpd._live.discard(srv)


def _post(c, path, body, ctype="application/octet-stream", cl=True):
    """POST `body` (all of it, END_STREAM on the last DATA, or on HEADERS
    when empty); returns the stream id."""
    headers = [("content-type", ctype)]
    if cl:
        headers.append(("content-length", str(len(body))))
    if body:
        return c.request("POST", path, headers=headers, body=body)
    return c.request("POST", path, headers=headers)


def _push_body(c, sid, body: bytes, budget: float = 8.0) -> str:
    """Send `body` on `sid` (HEADERS already sent) as the windows allow,
    until all of it went out with END_STREAM ("complete"), or the server
    reset the stream ("reset"), or the connection closed ("closed"); if
    the windows stay shut for `budget` seconds: "stuck"."""
    rec = c.stream(sid)
    deadline = time.monotonic() + budget
    piece = 16 * KIB
    pos = 0
    while True:
        if rec.rst_code is not None:
            return "reset"
        if c.closed:
            return "closed"
        chunk = body[pos:pos + piece]
        last = pos + len(chunk) >= len(body)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "stuck"
        ok = c.send_data(sid, chunk, end_stream=last, timeout=remaining)
        if not ok:
            if rec.rst_code is not None:
                return "reset"
            return "closed" if c.closed else "stuck"
        pos += len(chunk)
        if last:
            return "complete"


def _post_pushed(c, body: bytes, cl: bool):
    """POST `body` to the echo handler (with a content-length if `cl`),
    pushed as the windows allow: (stream id, what _push_body() saw)."""
    headers = [("content-type", "application/octet-stream")]
    if cl:
        headers.append(("content-length", str(len(body))))
    sid = c.request("POST", ECHO, headers=headers, end_stream=False)
    return sid, _push_body(c, sid, body)


def _check_connection_usable(c, tag: str):
    """A GET and a 100 KiB POST on the same connection both work."""
    body = _body(100 * KIB, tag)
    g = c.request("GET", "/1k.txt")
    p = _post(c, ECHO, body)
    assert c.run(until=lambda cl: cl.stream(g).ended and cl.stream(p).ended, timeout=15), \
        (c.stream(g), c.stream(p), c.close_reason, c.goaways)
    sg, sp = c.stream(g), c.stream(p)
    assert sg.status == 200 and sg.ended_by == "END_STREAM" and len(sg.body) == 1024, sg
    assert sp.status == 200 and sp.ended_by == "END_STREAM", sp
    assert sp.body == _md5_reply(body), sp.body
    assert not c.goaways, c.goaways


# -- 1 and 2: request bodies byte-exact --------------------------------------

@pytest.mark.parametrize("order", ["h2-module-last", "h2-module-first"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", SIZES)
def test_h2x_559_01_body_exact(server, request, frame_client, order, tls, size):
    """Bodies of edge sizes pass ModSecurity's phase 2 and reach the echo
    handler byte-exact, status 200, END_STREAM; on both module orders."""
    srv = server if order == "h2-module-last" else request.getfixturevalue("first_server")
    body = _body(size, order)
    c = frame_client(tls=tls, server=srv, timeout=20)
    sid = _post(c, ECHO, body)
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == _md5_reply(body), f"{size} bytes over {'h2' if tls else 'h2c'}: {s.body!r}"


@pytest.mark.parametrize("order", ["h2-module-last", "h2-module-first"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_02_body_exact_without_content_length(server, request, frame_client,
                                                       order, tls):
    """The same without Content-Length (the body's end is END_STREAM only),
    one byte, a frame and a bit, and 1 MiB+7, on one connection."""
    srv = server if order == "h2-module-last" else request.getfixturevalue("first_server")
    c = frame_client(tls=tls, server=srv, timeout=20)
    for size in (1, 16385, MIB + 7):
        body = _body(size, "nocl")
        sid = _post(c, ECHO, body, cl=False)
        assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
        s = c.stream(sid)
        assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
        assert s.body == _md5_reply(body), f"{size} bytes: {s.body!r}"


def _form_body(n_fields: int, value_len: int) -> bytes:
    parts = []
    for i in range(n_fields):
        val = hashlib.sha256(b"%d" % i).hexdigest() * (value_len // 64 + 1)
        parts.append(f"f{i}={val[:value_len]}%2B%26x")
    return "&".join(parts).encode()


def _multipart(fields, files, boundary="h2x559boundaryQx7"):
    out = bytearray()
    for name, value in fields:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n"
                .encode() + value + b"\r\n")
    for name, fname, data in files:
        out += (f"--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; "
                f"filename=\"{fname}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                .encode() + data + b"\r\n")
    out += f"--{boundary}--\r\n".encode()
    return bytes(out), f"multipart/form-data; boundary={boundary}"


@pytest.mark.parametrize("order", ["h2-module-last", "h2-module-first"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_03_forms_exact(server, request, frame_client, order, tls):
    """Bodies ModSecurity parses: an urlencoded form (small, and ~90 KiB in
    200 fields) and a multipart/form-data upload (two fields and a 300 KiB
    binary file, which ModSecurity spools to SecTmpDir) arrive byte-exact."""
    srv = server if order == "h2-module-last" else request.getfixturevalue("first_server")
    c = frame_client(tls=tls, server=srv, timeout=20)
    small = b"a=1&b=two+words&c=%C3%A4"
    big = _form_body(200, 450)
    mp, mp_type = _multipart([("title", b"hello h2"), ("n", b"42")],
                             [("upload", "up.bin", _body(300 * KIB, "mp"))])
    cases = [(small, "application/x-www-form-urlencoded"),
             (big, "application/x-www-form-urlencoded"),
             (mp, mp_type)]
    sids = [(_post(c, ECHO, b, ctype=t), b) for b, t in cases]
    assert c.wait_all_ended(timeout=30), c.unended()
    for sid, b in sids:
        s = c.stream(sid)
        assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
        assert s.body == _md5_reply(b), (len(b), s.body)


# -- 3: phase 2 deny ------------------------------------------------------------

@pytest.mark.expect_log(LOG_P2)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("kind", ["octet", "urlencoded", "multipart"])
def test_h2x_559_04_body_marker_denied(server, frame_client, tls, kind):
    """A body holding the marker: 403 with END_STREAM. Streams opened
    before it (an upload in progress, a streaming CGI) and after it (a GET,
    an upload) complete normally on the same connection."""
    c = frame_client(tls=tls, timeout=20)
    # before: an upload half sent, a streaming CGI
    pre_body = _body(200 * KIB, "pre")
    pre = c.request("POST", ECHO, end_stream=False,
                    headers=[("content-type", "application/octet-stream"),
                             ("content-length", str(len(pre_body)))])
    assert c.send_data(pre, pre_body[:100 * KIB])
    lines = c.request("GET", "/cgi-bin/lines.py?count=4&ms=100")
    # the denied one
    if kind == "octet":
        bad, ctype = _body(40 * KIB, "d1") + DENY_MARK + _body(40 * KIB, "d2"), \
            "application/octet-stream"
    elif kind == "urlencoded":
        bad, ctype = b"a=1&comment=x" + DENY_MARK + b"&z=2", "application/x-www-form-urlencoded"
    else:
        bad, ctype = _multipart([("comment", b"say " + DENY_MARK)],
                                [("upload", "f.bin", _body(50 * KIB, "mpd"))])
    denied = _post(c, ECHO, bad, ctype=ctype)
    # after
    get_after = c.request("GET", "/1k.txt")
    post_body = _body(70 * KIB, "post")
    post_after = _post(c, ECHO, post_body)
    assert c.send_data(pre, pre_body[100 * KIB:], end_stream=True)
    assert c.wait_all_ended(timeout=20), c.unended()
    s = c.stream(denied)
    assert s.status == 403 and s.ended_by == "END_STREAM", s.frames_str()
    assert b"403" in s.body or b"Forbidden" in s.body, s.body[:200]
    for sid, want in ((pre, _md5_reply(pre_body)), (post_after, _md5_reply(post_body))):
        r = c.stream(sid)
        assert r.status == 200 and r.ended_by == "END_STREAM", r.frames_str()
        assert r.body == want
    g = c.stream(get_after)
    assert g.status == 200 and g.ended_by == "END_STREAM" and len(g.body) == 1024, g
    li = c.stream(lines)
    assert li.status == 200 and li.ended_by == "END_STREAM", li.frames_str()
    assert len(li.body.splitlines()) == 4, li.body
    assert not c.goaways and not c.closed, (c.goaways, c.close_reason)
    _check_connection_usable(c, f"after-deny-{kind}")


@pytest.mark.expect_log(LOG_P2)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("cl", [True, False], ids=["cl", "nocl"])
def test_h2x_559_05_marker_first_frame_client_keeps_sending(server, frame_client, tls, cl):
    """1.5 MiB (under the limit) with the marker in its first DATA frame;
    the client keeps sending as the windows allow. ModSecurity reads all
    of it, then denies: 403, END_STREAM; the client was not left with an
    unsendable rest; the connection goes on."""
    body = DENY_MARK + _body(3 * MIB // 2, "first")
    c = frame_client(tls=tls, timeout=20)
    sid, how = _post_pushed(c, body, cl)
    assert how in ("complete", "reset"), (how, c.stream(sid).frames_str())
    assert c.wait_stream_end(sid, timeout=15), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 403 and s.ended_by == "END_STREAM", s.frames_str()
    _check_connection_usable(c, "after-first-frame")


# -- 4: body over SecRequestBodyLimit ------------------------------------------

@pytest.mark.expect_log(LOG_LIMIT)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("cl", [True, False], ids=["cl", "nocl"])
def test_h2x_559_06_body_over_limit(server, frame_client, tls, cl):
    """3 MiB against a 2 MiB SecRequestBodyLimit: 413 with END_STREAM
    (with Content-Length ModSecurity answers before reading a byte,
    without it once 2 MiB are in); the client, still sending, is either
    reset or may send the rest, never stalled; further requests on the
    connection work."""
    body = _body(3 * MIB, "limit")
    c = frame_client(tls=tls, timeout=20)
    sid, how = _post_pushed(c, body, cl)
    assert c.wait_stream_end(sid, timeout=15), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 413 and s.ended_by == "END_STREAM", (how, s.frames_str())
    assert how in ("complete", "reset"), (how, s.frames_str())
    if how == "reset":
        # RFC 9113 §8.1: after a complete response, "stop sending" is NO_ERROR.
        assert s.rst_name == "NO_ERROR", s.frames_str()
    server.expect_log(LOG_LIMIT, required=True)
    _check_connection_usable(c, "after-limit")


# -- 5: phase 1 deny ---------------------------------------------------------------

@pytest.mark.expect_log(LOG_P1)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_07_phase1_argument_denied(server, frame_client, tls):
    """?q=blockme: 403 with END_STREAM for GET, for HEAD (no body bytes),
    and for a POST whose 500 KiB body ModSecurity never reads (the client
    is not left stalled); an allowed q passes; the connection goes on."""
    c = frame_client(tls=tls, timeout=20)
    g = c.request("GET", "/1k.txt?q=blockme")
    h = c.request("HEAD", "/p559/clean-200k.txt?q=blockme")
    ok = c.request("GET", "/1k.txt?q=fine")
    assert c.wait_all_ended(timeout=10), c.unended()
    for sid in (g, h):
        s = c.stream(sid)
        assert s.status == 403 and s.ended_by == "END_STREAM", s.frames_str()
    hs = c.stream(h)
    assert hs.body == b"", hs.frames_str()
    assert not [f for f in hs.frames if f.type == "DATA" and f.length], hs.frames_str()
    s = c.stream(ok)
    assert s.status == 200 and s.ended_by == "END_STREAM" and len(s.body) == 1024, s

    body = _body(500 * KIB, "p1")
    sid = c.request("POST", "/h2x/echo?md5=1&q=blockme", end_stream=False,
                    headers=[("content-type", "application/octet-stream"),
                             ("content-length", str(len(body)))])
    how = _push_body(c, sid, body)
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 403 and s.ended_by == "END_STREAM", (how, s.frames_str())
    assert how in ("complete", "reset"), (how, s.frames_str())
    _check_connection_usable(c, "after-phase1")


# -- 6: response body inspection ----------------------------------------------------

@pytest.mark.expect_log(LOG_P4)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_08_response_body_inspection(server, frame_client, tls):
    """Phase 4: a static text/plain and text/html file holding the response
    marker -> 403 (ModSecurity held the response back), END_STREAM, no byte
    of the file; a clean 200 KiB text file -> 200 byte-exact."""
    c = frame_client(tls=tls, timeout=20)
    marked = [c.request("GET", "/p559/marked.txt"), c.request("GET", "/p559/marked.html")]
    clean = c.request("GET", "/p559/clean-200k.txt")
    assert c.wait_all_ended(timeout=15), c.unended()
    for sid in marked:
        s = c.stream(sid)
        assert s.status == 403 and s.ended_by == "END_STREAM", s.frames_str()
        assert RESP_MARK.encode() not in s.body and b"line 0000" not in s.body, s.body[:200]
    s = c.stream(clean)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == file_content(200 * KIB)
    server.expect_log(LOG_P4, required=True)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_09_response_over_inspection_limit(server, frame_client, tls):
    """A 1.5 MiB text file, over SecResponseBodyLimit (1 MiB, ProcessPartial:
    ModSecurity inspects the first MiB, then lets the rest through) arrives
    byte-exact; HEAD of the clean 200 KiB file: 200, no body, END_STREAM."""
    c = frame_client(tls=tls, timeout=20)
    big = c.request("GET", "/p559/clean-1536k.txt")
    head = c.request("HEAD", "/p559/clean-200k.txt")
    assert c.wait_all_ended(timeout=15), c.unended()
    s = c.stream(big)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()[-300:]
    assert s.body == file_content(1536 * KIB), len(s.body)
    s = c.stream(head)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == b"", s.frames_str()


@pytest.mark.expect_log(LOG_P4)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_10_streamed_cgi(server, frame_client, tls):
    """CGI output written line by line: lines.py (text/event-stream, not
    inspected) arrives complete and streamed, its first line well before
    its last; a text/plain CGI (inspected, held back by ModSecurity) arrives
    complete, or, with the marker in its last line, as a 403."""
    c = frame_client(tls=tls, timeout=20)
    ev = c.request("GET", "/cgi-bin/lines.py?count=5&ms=200")
    txt = c.request("GET", "/cgi-bin/textlines.py?count=6&ms=50")
    bad = c.request("GET", "/cgi-bin/textlines.py?count=6&ms=50&mark=1")
    assert c.wait_all_ended(timeout=15), c.unended()
    s = c.stream(ev)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    lines = s.body.decode().splitlines()
    assert [ln.split()[0] for ln in lines] == ["0", "1", "2", "3", "4"], s.body
    data = [f for f in s.frames if f.type == "DATA" and f.length]
    # 800 ms from first to last line: streamed means the first arrived
    # clearly before the last (generous: 300 ms).
    assert data[-1].t - data[0].t > 0.3, s.frames_str()
    s = c.stream(txt)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == b"".join(b"line %d of 6\n" % i for i in range(6)), s.body
    s = c.stream(bad)
    assert s.status == 403 and s.ended_by == "END_STREAM", s.frames_str()
    assert b"line 0" not in s.body, s.body[:200]


# -- 7: mixed, in parallel ----------------------------------------------------------

@pytest.mark.expect_log(LOG_P1, LOG_P2, LOG_P4)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_11_parallel_mixed(server, frame_client, tls):
    """Ten requests at once on one connection, allowed and denied ones
    interleaved: each gets its own answer."""
    c = frame_client(tls=tls, timeout=20)
    expect = {}

    def post(body, ctype="application/octet-stream", path=ECHO):
        headers = [("content-type", ctype), ("content-length", str(len(body)))]
        sid = c.request("POST", path, headers=headers, end_stream=False)
        return sid, body

    # Open all ten first, then feed the bodies interleaved.
    uploads = []
    for i, (kind, size) in enumerate([("ok", 90 * KIB), ("deny", 90 * KIB), ("ok", 17 * KIB),
                                      ("deny", 5 * KIB), ("ok", 300 * KIB)]):
        body = _body(size, f"par{i}")
        if kind == "deny":
            body = body[:size // 2] + DENY_MARK + body[size // 2:]
        sid, body = post(body)
        uploads.append((sid, body))
        expect[sid] = (200, _md5_reply(body)) if kind == "ok" else (403, None)
    expect[c.request("GET", "/1k.txt?q=blockme")] = (403, None)
    expect[c.request("GET", "/p559/marked.txt")] = (403, None)
    expect[c.request("GET", "/p559/clean-200k.txt")] = (200, file_content(200 * KIB))
    expect[c.request("GET", "/1k.txt?q=other")] = (200, None)
    form = b"x=1&y=" + DENY_MARK
    sid, _ = post(form, ctype="application/x-www-form-urlencoded")
    uploads.append((sid, form))
    expect[sid] = (403, None)
    assert len(expect) == 10
    piece = 8 * KIB
    offsets = {sid: 0 for sid, _ in uploads}
    while any(offsets[sid] < len(b) for sid, b in uploads):
        for sid, b in uploads:
            pos = offsets[sid]
            if pos >= len(b):
                continue
            chunk = b[pos:pos + piece]
            assert c.send_data(sid, chunk, end_stream=pos + len(chunk) >= len(b)), \
                (sid, pos, c.stream(sid).frames_str())
            offsets[sid] = pos + len(chunk)
    assert c.wait_all_ended(timeout=20), c.unended()
    wrong = []
    for sid, (status, body) in expect.items():
        s = c.stream(sid)
        if s.status != status or s.ended_by != "END_STREAM" or \
                (body is not None and s.body != body):
            wrong.append(f"stream {sid}: want {status}, got {s.status} {s.ended_by} "
                         f"{len(s.body)}B {s.body[:60]!r} [{s.frames_str()[:300]}]")
    assert not wrong, "\n".join(wrong)
    assert not c.goaways, c.goaways


# -- request bodies arriving in awkward ways -------------------------------------

@pytest.mark.parametrize("order", ["h2-module-last", "h2-module-first"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_12_body_trickles_in(server, request, frame_client, order, tls):
    """ModSecurity starts reading before the body is there: the HEADERS
    first, 300 ms later the body in pieces 100 ms apart (the first a single
    byte); then 2000 bytes in 2000 one-byte DATA frames; then a body ended
    by request trailers. Each arrives byte-exact."""
    srv = server if order == "h2-module-last" else request.getfixturevalue("first_server")
    c = frame_client(tls=tls, server=srv, timeout=20)
    body = _body(70 * KIB, "trickle")
    sid = c.request("POST", ECHO, end_stream=False,
                    headers=[("content-type", "application/octet-stream"),
                             ("content-length", str(len(body)))])
    c.run(timeout=0.3)
    cuts = [0, 1, 1000, 30 * KIB, len(body)]
    for a, b in zip(cuts, cuts[1:]):
        assert c.send_data(sid, body[a:b], end_stream=b == len(body))
        if b < len(body):
            c.run(timeout=0.1)
    small = _body(2000, "bytes")
    one = c.request("POST", ECHO, end_stream=False,
                    headers=[("content-type", "application/octet-stream"),
                             ("content-length", str(len(small)))])
    assert c.send_data(one, small, end_stream=True, frame_size=1, timeout=30)
    tbody = _body(20000, "trailers")
    tr = c.request("POST", ECHO, body=tbody, end_stream=False,
                   headers=[("content-type", "application/octet-stream")])
    c.send_headers(tr, [("x-h2x-trailer", "yes")], end_stream=True)
    assert c.wait_all_ended(timeout=20), c.unended()
    for sid_, b in ((sid, body), (one, small), (tr, tbody)):
        s = c.stream(sid_)
        assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
        assert s.body == _md5_reply(b), (len(b), s.body)


@pytest.mark.expect_log(LOG_P1, LOG_LIMIT)
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_559_13_expect_100_continue(server, frame_client, tls):
    """Expect: 100-continue (curl sends it for large uploads): ModSecurity's
    reading of the body in phase 2 brings the 100, then the body arrives
    byte-exact. Denied in phase 1 (?q=blockme) or by the Content-Length
    over the limit, the final 403/413 comes without a 100 and without the
    client sending a byte of its body."""
    c = frame_client(tls=tls, timeout=20)
    body = _body(200 * KIB, "100c")

    def start(path, length):
        return c.request("POST", path, end_stream=False,
                         headers=[("content-type", "application/octet-stream"),
                                  ("content-length", str(length)),
                                  ("expect", "100-continue")])

    sid = start(ECHO, len(body))
    assert c.run(until=lambda cl: bool(cl.stream(sid).headers), timeout=10), \
        c.stream(sid).frames_str()
    s = c.stream(sid)
    assert [dict(h).get(":status") for h in s.interim] == ["100"], s.headers
    assert s.status is None, s.frames_str()
    assert c.send_data(sid, body, end_stream=True)
    assert c.wait_stream_end(sid, timeout=15), s.frames_str()
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == _md5_reply(body), s.body

    for path, length, status in (("/h2x/echo?md5=1&q=blockme", len(body), 403),
                                 (ECHO, 3 * MIB, 413)):
        sid = start(path, length)
        assert c.wait_stream_end(sid, timeout=10), (path, c.stream(sid).frames_str())
        s = c.stream(sid)
        assert s.status == status and s.ended_by == "END_STREAM", (path, s.frames_str())
        assert not s.interim, (path, s.headers)
        if s.rst_code is None:
            # the client never sends the body it was not asked for
            c.send_data(sid, b"", end_stream=True)
    _check_connection_usable(c, "after-100")
