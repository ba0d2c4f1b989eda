"""558: WebDAV (mod_dav + mod_dav_fs) over h2c and h2.

Hosting providers serve WebDAV (file managers, office suites, backup
tools) on the same vhosts as everything else, so over h2 once the module
is enabled. mod_dav is a plain content handler, but one that leans on
what the HTTP/2 module hands it: request bodies read to the byte with and
without Content-Length, methods beyond GET/POST with XML bodies (PROPFIND,
PROPPATCH, LOCK), the Destination header checked against the request's
scheme (ap_http_scheme() on the stream's connection), 201/204/207/405/412/
423 answers, and an upload the client abandons mid-body. Everything here
must behave exactly as over HTTP/1.1 (mod_dav_fs writes a PUT to a temp
file and renames it only when the whole body arrived: an aborted upload
leaves the previous file, or none, never a truncated one), with every
response stream ended by END_STREAM.
"""

import hashlib
import os
import shutil
import socket
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace
from urllib.parse import urlsplit

import pytest

from h2x.clients import curl
from h2x.frames import ErrorCodes

pytestmark = pytest.mark.h2

BASE = "/dav558"
TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
DAV_NS = "{DAV:}"
READ_BODY_ERROR = r"\[dav:error\].*An error occurred while reading the request body"


def blob(tag: str, size: int) -> bytes:
    """`size` pseudo-random bytes, different for every tag."""
    return hashlib.shake_256(tag.encode()).digest(size) if size else b""


@pytest.fixture(scope="module")
def dav(httpd, env):
    mods = {name: env.apache_module(name) for name in ("dav", "dav_fs")}
    assert all(mods.values()), f"Debian's mod_dav/mod_dav_fs are part of apache2: {mods}"
    root = os.path.join(httpd.root, "dav558")
    lockdir = os.path.join(httpd.root, "dav558lock")
    for d in (root, lockdir):
        os.makedirs(d, mode=0o755, exist_ok=True)
        shutil.chown(d, "www-data", "www-data")
    httpd.reconfigure(extra_global=f"""
LoadModule dav_module {mods['dav']}
LoadModule dav_fs_module {mods['dav_fs']}
DavLockDB "{lockdir}/lockdb"
Alias {BASE}/ "{root}/"
<Directory "{root}">
    Dav On
    Options None
    AllowOverride None
    Require all granted
</Directory>
""")
    yield SimpleNamespace(httpd=httpd, root=root)
    httpd.reconfigure()


def send(c, method, path, headers=(), body=None, timeout=30):
    """One request on FrameClient `c`; returns its record once the stream
    ended with END_STREAM. A body gets a content-length unless `headers`
    has one; an empty body rides END_STREAM on the HEADERS frame."""
    hdrs = list(headers)
    if body is not None and not any(n == "content-length" for n, _ in hdrs):
        hdrs.append(("content-length", str(len(body))))
    sid = c.request(method, path, headers=hdrs, body=body or None,
                    end_stream=True)
    assert c.wait_stream_end(sid, timeout=timeout), \
        f"{method} {path}: {c.stream(sid).frames_str()}"
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM", f"{method} {path}: {s.frames_str()}"
    length = s.header("content-length")
    if length is not None:
        assert len(s.body) == int(length), f"{method} {path}: {s.frames_str()}"
    if s.status == 204:       # no content: END_STREAM on the HEADERS frame
        assert c.shape(sid) == "HEADERS[ES]", f"{method} {path}: {s.frames_str()}"
    return s


def get_exact(c, path, expected: bytes):
    s = send(c, "GET", path)
    assert s.status == 200, (path, s.status, s.body[:300])
    assert s.header("content-length") == str(len(expected)), s.response_headers
    assert len(s.body) == len(expected) and s.body == expected, \
        f"{path}: {len(s.body)} bytes, expected {len(expected)}"


def multistatus(s):
    """{href: [propstat elements]} of a 207 answer."""
    assert s.status == 207, (s.status, s.body[:500])
    assert "xml" in (s.header("content-type") or ""), s.response_headers
    doc = ET.fromstring(s.body)
    assert doc.tag == DAV_NS + "multistatus", s.body[:300]
    out = {}
    for resp in doc.findall(DAV_NS + "response"):
        href = urlsplit(resp.findtext(DAV_NS + "href")).path
        out[href] = resp.findall(DAV_NS + "propstat")
    return out


def prop_status(propstat) -> int:
    return int(propstat.findtext(DAV_NS + "status").split()[1])


def temp_files(root):
    """mod_dav_fs's temp files (.davfs.tmp*): a PUT handler opens one before
    it reads the body and renames or removes it when done."""
    return [f for _, _, files in os.walk(root) for f in files if f.startswith(".davfs.tmp")]


def wait_temp_files(root, at_least, poll=None, timeout=10.0) -> bool:
    """Wait until at least `at_least` PUT handlers are busy (0: until none
    is, also the aborted ones). `poll(seconds)` keeps a client reading."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        n = len(temp_files(root))
        if (n >= at_least) if at_least else n == 0:
            return True
        poll(0.05) if poll else time.sleep(0.05)
    return False


# -- 1. OPTIONS -------------------------------------------------------------

@TLS
def test_h2x_558_01_options(dav, frame_client, tls):
    """OPTIONS announces DAV classes 1,2 and the DAV methods, with the same
    headers as over HTTP/1.1."""
    c = frame_client(tls=tls)
    s = send(c, "OPTIONS", f"{BASE}/")
    assert s.status == 200, s.frames_str()
    davs = s.response_headers.get("dav", [])
    assert "1,2" in [v.replace(" ", "") for v in davs], s.response_headers
    allow = {m.strip() for m in (s.header("allow") or "").split(",")}
    assert {"PROPFIND", "PROPPATCH", "COPY", "MOVE", "LOCK", "UNLOCK",
            "DELETE"} <= allow, allow
    h1 = curl(dav.httpd.url(f"{BASE}/", tls=tls), http="1.1", method="OPTIONS")
    assert h1.status == 200 and h1.headers.get("dav") == davs, (h1.headers, davs)
    assert h1.header("allow") == s.header("allow")


# -- 2. PUT with Content-Length -------------------------------------------

SIZES = [0, 1, 16383, 16384, 65537, (1 << 20) + 3]


@TLS
@pytest.mark.parametrize("client", ["raw", "curl"])
@pytest.mark.parametrize("size", SIZES)
def test_h2x_558_02_put_sizes(dav, frame_client, tls, client, size, tmp_path):
    """PUT creates (201), PUT again overwrites (204); GET gives the bytes
    back exactly, and the file on disk is exact too."""
    name = f"{BASE}/put-{client}-{size}-{'tls' if tls else 'plain'}.bin"
    first, second = blob(name + "#1", size), blob(name + "#2", size)
    c = frame_client(tls=tls)
    for body, status in ((first, 201), (second, 204)):
        if client == "raw":
            s = send(c, "PUT", name, body=body)
            got, frames = s.status, s.frames_str()
        else:
            src = tmp_path / "body"
            src.write_bytes(body)
            r = curl(dav.httpd.url(name, tls=tls), "-T", str(src),
                     http="2" if tls else "2-prior")
            assert r.exit_code == 0 and r.http_version == "2", r
            got, frames = r.status, r.stderr
        assert got == status, (size, got, frames)
        get_exact(c, name, body)
        with open(os.path.join(dav.root, os.path.basename(name)), "rb") as f:
            assert f.read() == body


# -- 3. PUT without Content-Length -----------------------------------------

@TLS
@pytest.mark.parametrize("pieces", [
    [1000, 16384, 1, 40000, 7, 65537],     # END_STREAM on the last DATA
    [5000, 3, 0],                          # ... on an empty DATA frame
], ids=["data-es", "empty-es"])
def test_h2x_558_03_put_without_length(dav, frame_client, tls, pieces):
    """A PUT whose length is known only from END_STREAM (HEADERS without
    content-length, several DATA frames) stores exactly what was sent."""
    name = f"{BASE}/nolen-{len(pieces)}-{'tls' if tls else 'plain'}.bin"
    body = blob(name, sum(pieces))
    c = frame_client(tls=tls)
    sid = c.request("PUT", name, headers=[("content-type", "application/octet-stream")],
                    end_stream=False)
    pos = 0
    for i, n in enumerate(pieces):
        assert c.send_data(sid, body[pos:pos + n], end_stream=i == len(pieces) - 1)
        pos += n
        c.run(timeout=0.02)
    assert c.wait_stream_end(sid, timeout=20), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM" and s.status == 201, (s.status, s.frames_str(), s.body)
    get_exact(c, name, body)


# -- 4. MKCOL, PROPFIND, PROPPATCH ----------------------------------------

PROPFIND_ALL = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                b'<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/>'
                b'<D:getcontentlength/></D:prop></D:propfind>')
PROPPATCH = (b'<?xml version="1.0" encoding="utf-8"?>\n'
             b'<D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:h2x-test:558">'
             b'<D:set><D:prop><Z:colour>%s</Z:colour></D:prop></D:set>'
             b'</D:propertyupdate>')
PROPFIND_DEAD = (b'<?xml version="1.0" encoding="utf-8"?>\n'
                 b'<D:propfind xmlns:D="DAV:" xmlns:Z="urn:h2x-test:558">'
                 b'<D:prop><Z:colour/></D:prop></D:propfind>')
XML = ("content-type", 'application/xml; charset="utf-8"')


@TLS
def test_h2x_558_04_mkcol_propfind_proppatch(dav, frame_client, tls):
    """MKCOL makes a collection (201, then 405 as it exists); PROPFIND with
    an XML body answers 207 with the collection alone (Depth 0) or with
    its members (Depth 1) and their lengths; a dead property set with
    PROPPATCH (207, 200 propstat) reads back with PROPFIND."""
    col = f"{BASE}/col-{'tls' if tls else 'plain'}/"
    c = frame_client(tls=tls)
    assert send(c, "MKCOL", col).status == 201
    assert send(c, "MKCOL", col).status == 405
    files = {"a.bin": 10, "b.bin": 70000}
    for fn, size in files.items():
        assert send(c, "PUT", col + fn, body=blob(fn, size)).status == 201

    s = send(c, "PROPFIND", col, headers=[("depth", "0"), XML], body=PROPFIND_ALL)
    ms = multistatus(s)
    assert list(ms) == [col], ms
    rt = ms[col][0].find(f"{DAV_NS}prop/{DAV_NS}resourcetype")
    assert rt is not None and rt.find(DAV_NS + "collection") is not None, s.body

    s = send(c, "PROPFIND", col, headers=[("depth", "1"), XML], body=PROPFIND_ALL)
    ms = multistatus(s)
    assert sorted(ms) == sorted([col] + [col + fn for fn in files]), ms
    for fn, size in files.items():
        ok = [p for p in ms[col + fn] if prop_status(p) == 200]
        assert ok and ok[0].findtext(f"{DAV_NS}prop/{DAV_NS}getcontentlength") == str(size)

    colour = b"ultramarine-" + (b"tls" if tls else b"plain")
    s = send(c, "PROPPATCH", col + "a.bin", headers=[XML], body=PROPPATCH % colour)
    ms = multistatus(s)
    assert [prop_status(p) for p in ms[col + "a.bin"]] == [200], s.body
    s = send(c, "PROPFIND", col + "a.bin", headers=[("depth", "0"), XML], body=PROPFIND_DEAD)
    ms = multistatus(s)
    ok = [p for p in ms[col + "a.bin"] if prop_status(p) == 200]
    assert ok, s.body
    assert ok[0].findtext(f"{DAV_NS}prop/{{urn:h2x-test:558}}colour") == colour.decode()


# -- 5. COPY, MOVE, DELETE -------------------------------------------------

@TLS
def test_h2x_558_05_copy_move_delete(dav, frame_client, tls):
    """Destination as an absolute URL with the request's scheme and
    authority; Overwrite: F on an existing target is 412; DELETE is 204,
    then GET is 404. A Destination with the other scheme is refused (502)
    as over HTTP/1.1: ap_http_scheme() on the stream says what it is."""
    tag = "tls" if tls else "plain"
    src, dst, mv = (f"{BASE}/{n}-{tag}.bin" for n in ("src", "copy", "moved"))
    body = blob(src, 30000)
    c = frame_client(tls=tls)
    url = lambda p: dav.httpd.url(p, tls=tls)      # noqa: E731
    assert send(c, "PUT", src, body=body).status == 201

    assert send(c, "COPY", src, headers=[("destination", url(dst))]).status == 201
    get_exact(c, dst, body)
    s = send(c, "COPY", src, headers=[("destination", url(dst)), ("overwrite", "F")])
    assert s.status == 412, s.body
    assert send(c, "COPY", src, headers=[("destination", url(dst)),
                                         ("overwrite", "T")]).status == 204

    assert send(c, "MOVE", src, headers=[("destination", url(mv))]).status == 201
    assert send(c, "GET", src).status == 404
    get_exact(c, mv, body)
    s = send(c, "MOVE", dst, headers=[("destination", url(mv)), ("overwrite", "F")])
    assert s.status == 412, s.body
    get_exact(c, dst, body)

    other = ("http://" if tls else "https://") + dav.httpd.authority(tls) + f"{BASE}/x-{tag}.bin"
    s = send(c, "COPY", dst, headers=[("destination", other)])
    h1 = curl(url(dst), http="1.1", method="COPY", headers={"Destination": other})
    assert s.status == h1.status == 502, (s.status, h1.status, s.body)

    for p in (dst, mv):
        assert send(c, "DELETE", p).status == 204
        assert send(c, "GET", p).status == 404
    assert not os.path.exists(os.path.join(dav.root, f"x-{tag}.bin"))


# -- 6. LOCK / UNLOCK -------------------------------------------------------

LOCKINFO = (b'<?xml version="1.0" encoding="utf-8"?>\n'
            b'<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>'
            b'<D:locktype><D:write/></D:locktype>'
            b'<D:owner><D:href>mailto:h2x-test@localhost</D:href></D:owner></D:lockinfo>')


@TLS
@pytest.mark.expect_log(r"\[dav:error\].*This resource is locked")   # the 423
def test_h2x_558_06_lock_unlock(dav, frame_client, tls):
    """LOCK (XML lockinfo) answers 200 with a Lock-Token; a PUT without
    the token is 423 and changes nothing, one with `If: (<token>)` goes
    through (204); after UNLOCK (204) a plain PUT goes through again."""
    name = f"{BASE}/locked-{'tls' if tls else 'plain'}.bin"
    c = frame_client(tls=tls)
    assert send(c, "PUT", name, body=blob(name, 1000)).status == 201

    s = send(c, "LOCK", name, headers=[("depth", "0"), ("timeout", "Second-600"), XML],
             body=LOCKINFO)
    assert s.status == 200, (s.status, s.body)
    token = s.header("lock-token")
    assert token and token.startswith("<opaquelocktoken:") and token.endswith(">"), \
        s.response_headers
    doc = ET.fromstring(s.body)
    assert doc.findtext(f".//{DAV_NS}locktoken/{DAV_NS}href") == token[1:-1], s.body

    s = send(c, "PUT", name, body=blob(name + "#other", 2000))
    assert s.status == 423, (s.status, s.body)
    get_exact(c, name, blob(name, 1000))

    newer = blob(name + "#new", 70000)
    s = send(c, "PUT", name, headers=[("if", f"({token})")], body=newer)
    assert s.status == 204, (s.status, s.body)
    get_exact(c, name, newer)

    assert send(c, "UNLOCK", name, headers=[("lock-token", token)]).status == 204
    last = blob(name + "#last", 3)
    assert send(c, "PUT", name, body=last).status == 204
    get_exact(c, name, last)


# -- 7. parallel uploads on one connection --------------------------------

PARALLEL = [1, 16384, 65537, 300001, (1 << 20) + 3]


@TLS
def test_h2x_558_07_parallel_puts(dav, frame_client, tls):
    """Five PUTs on one connection, their DATA frames interleaved (5000
    bytes per stream in turn, as the flow-control windows allow): every
    file arrives byte-exact."""
    c = frame_client(tls=tls)
    tag = "tls" if tls else "plain"
    bodies, pending = {}, {}
    for i, size in enumerate(PARALLEL):
        name = f"{BASE}/par{i}-{tag}.bin"
        body = blob(name, size)
        sid = c.request("PUT", name, headers=[("content-length", str(size))],
                        end_stream=False)
        bodies[sid], pending[sid] = (name, body), memoryview(body)
    interleaved = set()
    deadline = time.monotonic() + 30
    while pending:
        assert time.monotonic() < deadline, {s: len(v) for s, v in pending.items()}
        sent = False
        for sid in list(pending):
            room = min(c.stream(sid).send_window, c.conn_send_window, 5000)
            if room <= 0:
                continue
            piece, rest = pending[sid][:room], pending[sid][room:]
            c.send_data(sid, bytes(piece), end_stream=not len(rest), respect_window=False)
            sent = True
            if len(rest):
                pending[sid] = rest
                interleaved.add(sid)
            else:
                del pending[sid]
        assert not c.closed, c.close_reason
        if not sent:
            c.run(until=lambda cl: any(min(cl.stream(s).send_window, cl.conn_send_window) > 0
                                       for s in pending), timeout=10)
    assert len(interleaved) >= 4, interleaved
    assert c.wait_all_ended(timeout=30), [r.frames_str() for r in c.unended()]
    for sid, (name, body) in bodies.items():
        s = c.stream(sid)
        assert s.ended_by == "END_STREAM" and s.status == 201, (name, s.frames_str())
    for name, body in bodies.values():
        get_exact(c, name, body)
    assert not c.goaways


# -- 8. an upload the client resets ---------------------------------------

@TLS
@pytest.mark.expect_log(READ_BODY_ERROR)
def test_h2x_558_08_put_reset_mid_body(dav, frame_client, tls):
    """RST_STREAM(CANCEL) after 40000 of 300000 announced bytes, on a PUT
    that would overwrite a file and on one that would create one: the
    other upload on the connection completes, the connection and server
    carry on, the old file keeps its content and the new one does not
    exist -- as over HTTP/1.1 when the client goes away mid-body
    (test 09)."""
    tag = "tls" if tls else "plain"
    old_name, new_name, other = (f"{BASE}/{n}-{tag}.bin" for n in ("rst-old", "rst-new", "rst-ok"))
    old = blob(old_name, 100000)
    c = frame_client(tls=tls)
    assert send(c, "PUT", old_name, body=old).status == 201

    total = 300000
    ok_body = blob(other, 200000)
    aborted = []
    for name in (old_name, new_name):
        sid = c.request("PUT", name, headers=[("content-length", str(total))], end_stream=False)
        assert c.send_data(sid, blob(name + "#partial", 40000))
        aborted.append(sid)
    ok = c.request("PUT", other, headers=[("content-length", str(len(ok_body)))],
                   end_stream=False)
    assert c.send_data(ok, ok_body[:50000])
    # The handlers are in mod_dav_fs, reading the bodies into temp files:
    # all three, or under prefork (one stream at a time per connection,
    # README) the first.
    busy = 1 if dav.httpd.mpm == "prefork" else 3
    assert wait_temp_files(dav.root, busy, poll=lambda t: c.run(timeout=t)), \
        temp_files(dav.root)
    for sid in aborted:
        c.reset(sid, ErrorCodes.CANCEL)
    assert c.send_data(ok, ok_body[50000:], end_stream=True)
    assert c.wait_stream_end(ok, timeout=20), c.stream(ok).frames_str()
    s = c.stream(ok)
    assert s.ended_by == "END_STREAM" and s.status == 201, s.frames_str()

    assert wait_temp_files(dav.root, 0), temp_files(dav.root)
    get_exact(c, old_name, old)
    assert send(c, "GET", new_name).status == 404
    get_exact(c, other, ok_body)
    assert not c.goaways and not c.closed, (c.goaways, c.close_reason)
    c2 = frame_client(tls=tls)
    get_exact(c2, old_name, old)


@pytest.mark.expect_log(READ_BODY_ERROR)
def test_h2x_558_09_http11_abort_baseline(dav):
    """The reference for test 08: over HTTP/1.1, a PUT whose client closes
    the connection after 40000 of 300000 bytes leaves the old file as it
    was and creates no new one (mod_dav_fs's temp file is removed)."""
    old_name, new_name = f"{BASE}/h1-old.bin", f"{BASE}/h1-new.bin"
    old = blob(old_name, 100000)
    port = dav.httpd.http_port
    r = curl(dav.httpd.url(old_name), http="1.1", method="PUT", data=old)
    assert r.status == 201, r
    for name in (old_name, new_name):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(f"PUT {name} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                         f"Content-Length: 300000\r\n\r\n".encode()
                         + blob(name + "#partial", 40000))
            assert wait_temp_files(dav.root, 1), "the PUT handler did not start"
    assert wait_temp_files(dav.root, 0), temp_files(dav.root)
    r = curl(dav.httpd.url(old_name), http="1.1")
    assert r.status == 200 and r.body == old
    assert curl(dav.httpd.url(new_name), http="1.1").status == 404
