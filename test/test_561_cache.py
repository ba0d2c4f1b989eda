"""561: mod_cache over HTTP/2 (h2c prior knowledge and h2 over TLS).

mod_h2x may serve a lone request on the connection's own thread
(h2x_c2_inline.cpp) and runs mod_cache's quick handler there: a cache hit
is answered before any request phase, a miss goes through CACHE_SAVE, a
stale entity is revalidated and a backend 304 turned into a cached 200.
Each of these paths must end its stream properly (END_STREAM on the last
DATA frame, or on HEADERS for an empty body, HEAD and 304; never a
zero-length DATA frame after the body) and send what HTTP/1.1 sends on the
same server (Content-Length, ETag, Last-Modified, Content-Type, Vary; Age
on hits) - no header lost or duplicated.

Covered, over h2c and h2:
- static files of edge sizes through mod_cache_disk (and the smaller ones
  through mod_cache_socache/shmcb): miss then hit, byte-exact;
- HEAD, single, suffix and multiple ranges on a cached entity;
- a CGI behind the cache that counts its invocations: sequential and
  concurrent requests on one connection call it once; with CacheLock on,
  concurrent misses on one connection all complete;
- revalidation (the CGI answers 304 to a stale entity's If-None-Match),
  a client's own conditional request, `Cache-Control: no-cache`;
- Vary: Accept-Language: one entry per language, Vary not duplicated;
- `CacheQuickHandler off` (a second server: the directive is per server),
  where mod_cache runs as a handler and the CACHE filters sit in the
  normal chain.

httpd's own rules, the same over HTTP/1.1 and followed here:
mod_cache_disk does not store an empty body ("cache unwilling to store
response": two misses), httpd drops "Content-Length: 0" from a HEAD
response, and a CGI's body comes from a pipe whose EOF may follow its last
bytes, so a backend (not cached) CGI response may end with DATA(0)[ES]
(DESIGN invariant 4, as in test_290); so may a miss, whose body and EOS
CACHE_SAVE passes down separately (see _miss_hit()). A static file and
anything served from the cache may not.

Cache entries are never shared between tests: each test uses its own URLs.
"""

import os
import re
import shutil
import time

import pytest

from h2x.clients import curl
from h2x.httpd import Httpd, file_content

pytestmark = pytest.mark.h2

DISK_SIZES = [0, 1, 16383, 16384, 65537, 300 * 1024]
SOCACHE_SIZES = [0, 1, 16383, 16384, 65537]      # CacheSocacheMaxSize: 100 KiB
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "upgrade",
              "proxy-connection", "te"}
# Fields whose values must be the same over h2 and HTTP/1.1 on one entity.
SAME_VALUE = ["content-length", "etag", "last-modified", "content-type",
              "cache-control", "vary", "content-range", "expires", "content-encoding"]
PARALLEL = 20

# The CGI behind the cache. PATH_INFO carries its parameters
# (/k=<key>/n=<size>/ma=<max-age>/ms=<delay>/vary=1|text): no query string, so
# mod_cache's query-string rules play no part. Every invocation appends one
# byte to <state>/<key>.200 (or .304 when it answers a matching
# If-None-Match), so the tests can count how often the cache called it.
OBJ_CGI = r'''#!/usr/bin/python3
import os, sys, time
STATE = @STATE@
p = {}
for part in os.environ.get("PATH_INFO", "").split("/"):
    if "=" in part:
        k, v = part.split("=", 1)
        p[k] = v
key = "".join(ch for ch in p.get("k", "none") if ch.isalnum() or ch in "-_")
size = int(p.get("n", "5000"))
ms = int(p.get("ms", "0"))
etag = '"561-%s"' % key
if ms:
    time.sleep(ms / 1000.0)
inm = os.environ.get("HTTP_IF_NONE_MATCH", "")
kind = "304" if etag in [t.strip() for t in inm.split(",")] else "200"
fd = os.open(os.path.join(STATE, key + "." + kind), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o666)
os.write(fd, b"x")
os.close(fd)
head = ["Cache-Control: max-age=%s" % p.get("ma", "3600"), "ETag: " + etag,
        "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT"]
if kind == "304":
    sys.stdout.write("Status: 304 Not Modified\n" + "\n".join(head) + "\n\n")
    sys.exit(0)
if p.get("vary"):
    lang = os.environ.get("HTTP_ACCEPT_LANGUAGE", "none")
    body = ("lang=%s\n" % lang).encode() * 200
    # vary=text: text/plain, so Debian's deflate.conf adds Accept-Encoding
    head += ["Vary: Accept-Language", "Content-Type: " + (
        "text/plain" if p["vary"] == "text" else "application/octet-stream")]
else:
    body = b"".join(b"%015d\n" % off for off in range(0, size + 15, 16))[:size]
    head += ["Content-Type: application/octet-stream"]
head.append("Content-Length: %d" % len(body))
sys.stdout.write("\n".join(head) + "\n\n")
sys.stdout.flush()
sys.stdout.buffer.write(body)
'''


def _cache_config(env, root: str, quick: bool = True) -> str:
    socache = env.apache_module("cache_socache")
    assert socache, "Debian's mod_cache_socache.so is part of apache2"
    return f"""
LoadModule cache_socache_module {socache}
CacheQuickHandler {"on" if quick else "off"}
CacheEnable disk /c561/
CacheEnable socache /c561s/
CacheSocache shmcb:{root}/run/c561-socache(4000000)
CacheHeader on
CacheDetailHeader on
CacheLock on
CacheLockPath {root}/c561lock
CacheLockMaxAge 10
CacheMaxFileSize 1000000
<Location /c561/f/>
    Header set Cache-Control "max-age=3600"
</Location>
<Location /c561s/>
    Header set Cache-Control "max-age=3600"
</Location>
"""


def _prepare(httpd: Httpd) -> str:
    """Files, the CGI and www-data-writable dirs; returns the CGI state dir."""
    state = os.path.join(httpd.root, "c561state")
    for d in (state, os.path.join(httpd.root, "c561lock")):
        os.makedirs(d, exist_ok=True)
        shutil.chown(d, "www-data", "www-data")
    for size in DISK_SIZES:
        httpd.make_file(f"/c561/f/{size}.bin", size)
    for size in SOCACHE_SIZES:
        httpd.make_file(f"/c561s/{size}.bin", size)
    httpd.make_cgi("/c561/cgi/obj.py", OBJ_CGI.replace("@STATE@", repr(state)))
    return state


@pytest.fixture(scope="module")
def server(httpd, env):
    state = _prepare(httpd)
    httpd.reconfigure(extra_global=_cache_config(env, httpd.root))
    httpd.c561_state = state
    yield httpd


@pytest.fixture(scope="module")
def noquick(env):
    """A second server with `CacheQuickHandler off` (a per-server directive)."""
    srv = Httpd(env, name="test_561-noquick")
    try:
        srv.c561_state = _prepare(srv)
        srv.write_config(extra_global=_cache_config(env, srv.root, quick=False))
        srv.start()
        yield srv
        srv.stop()
    finally:
        Httpd._live.discard(srv)


# -- helpers ------------------------------------------------------------------

def _count(httpd, key: str, kind: str = "200") -> int:
    try:
        return os.path.getsize(os.path.join(httpd.c561_state, f"{key}.{kind}"))
    except FileNotFoundError:
        return 0


def _get(c, path, method="GET", headers=None, timeout=15):
    sid = c.request(method, path, headers=headers)
    assert c.wait_stream_end(sid, timeout=timeout), \
        f"{method} {path}: stream did not end: {c.stream(sid).frames_str()}"
    return c.stream(sid)


def _fields(s) -> dict:
    """The final response's regular header fields, name -> [values]."""
    return {n: v for n, v in s.response_headers.items() if not n.startswith(":")}


def _xcache(s) -> str:
    return s.header("x-cache") or ""


def _assert_ends_well(s, has_body: bool, streamed: bool = False):
    """END_STREAM on the last DATA frame (no empty DATA frame, no DATA
    after it), or on HEADERS when there is no body; never a reset.

    streamed: the body came from a CGI's pipe, whose EOF may come after its
    last bytes left; then a final DATA(0)[ES] is allowed (DESIGN invariant
    4, as in test_290). A static file, or anything the cache serves, is not
    streamed and must end on its last DATA frame."""
    what = f"{s.status} {_xcache(s)!r}: {s.frames_str()}"
    assert s.ended_by == "END_STREAM" and s.rst_code is None, what
    kinds = [f for f in s.frames if f.type in ("HEADERS", "DATA", "RST_STREAM")]
    data = [f for f in kinds if f.type == "DATA"]
    if not has_body:
        assert not data, f"DATA frame(s) on a response without body: {what}"
        assert kinds[-1].type == "HEADERS" and kinds[-1].end_stream, what
        return
    assert kinds[-1].type == "DATA" and kinds[-1].end_stream, what
    assert not any(f.end_stream for f in kinds[:-1]), what
    if streamed and data[-1].length == 0 and len(data) > 1:
        data = data[:-1]         # the allowed DATA(0)[ES] after a streamed body
    assert all(f.length > 0 for f in data), f"zero-length DATA frame: {what}"


def _h1(httpd, path, tls, *args, headers=None):
    r = curl(httpd.url(path, tls=tls), *args, http="1.1", headers=headers)
    assert r.exit_code == 0, r
    return r


def _compare_h1(h2_fields: dict, h1_headers: dict, what: str, hit: bool = True):
    """Same header names (hop-by-hop aside), same number of each, same values
    for the entity fields; Age on both for a hit."""
    h1 = {n: v for n, v in h1_headers.items() if n not in HOP_BY_HOP}
    h2 = {n: v for n, v in h2_fields.items() if n not in HOP_BY_HOP}
    assert sorted(h2) == sorted(h1), f"{what}: header names differ: h2 {h2} / h1 {h1}"
    for name in h2:
        assert len(h2[name]) == len(h1[name]), f"{what}: {name}: h2 {h2[name]} / h1 {h1[name]}"
    for name in SAME_VALUE:
        assert h2.get(name) == h1.get(name), \
            f"{what}: {name}: h2 {h2.get(name)} / h1 {h1.get(name)}"
    if hit:
        assert "age" in h2 and "age" in h1, f"{what}: Age missing: h2 {h2} / h1 {h1}"


def _head_length(size: int):
    """The Content-Length of a HEAD response for an entity of `size` bytes:
    httpd's header filter drops a "Content-Length: 0" from HEAD responses
    (over HTTP/1.1 too), RFC 9110 §8.6 allows leaving it out."""
    return str(size) if size else None


def _no_dup_tokens(value: str) -> bool:
    toks = [t.strip().lower() for t in value.split(",") if t.strip()]
    return len(toks) == len(set(toks))


def _miss_hit(httpd, c, path, size, tls, stored=True):
    """GET twice on one connection: a miss then a hit, each byte-exact and
    ending well, the hit like HTTP/1.1's hit on the same entity.

    stored=False: an entity the cache does not keep (mod_cache_disk is
    "unwilling to store" an empty body, over HTTP/1.1 too): two misses."""
    miss = _get(c, path)
    assert miss.status == 200, miss
    assert _xcache(miss).startswith("MISS"), _fields(miss)
    assert miss.body == file_content(size), (len(miss.body), size)
    assert miss.header("content-length") == str(size), _fields(miss)
    assert "age" not in _fields(miss), _fields(miss)

    hit = _get(c, path)
    assert hit.status == 200, hit
    assert _xcache(hit).startswith("HIT" if stored else "MISS"), _fields(hit)
    assert hit.body == file_content(size), (len(hit.body), size)
    assert hit.header("content-length") == str(size), _fields(hit)
    _assert_ends_well(hit, size > 0)
    for name in ("etag", "last-modified", "content-type", "cache-control"):
        assert hit.header(name) == miss.header(name), (name, _fields(miss), _fields(hit))

    h1 = _h1(httpd, path, tls)
    assert h1.status == 200 and h1.body == file_content(size), h1
    assert (h1.header("x-cache") or "").startswith("HIT" if stored else "MISS"), h1.headers
    assert h1.header("x-cache-detail") == hit.header("x-cache-detail"), \
        (h1.headers, _fields(hit))
    _compare_h1(_fields(hit), h1.headers, f"GET {path} ({'hit' if stored else 'miss'})",
                hit=stored)
    # The miss's frames last, so that a failure here says the rest was right.
    # On a miss CACHE_SAVE (mod_cache_disk, CacheReadSize 0) passes the body
    # and its EOS down in separate passes: when the body is a multiple of
    # the frame size its last DATA frame may leave before the end is known,
    # and DATA(0)[ES] follows (DESIGN invariant 4 allows exactly that).
    # Holding a full frame for an end that may come would cost every
    # unflushed stream (tried 2026-12-01: a proxied 4 MB download took 1.5 s
    # instead of 9 ms), so the miss is "streamed" here; the hit is not.
    _assert_ends_well(miss, size > 0, streamed=True)
    return hit


# -- 1. miss then hit ---------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", DISK_SIZES)
def test_h2x_561_01_disk_miss_hit(server, frame_client, size, tls):
    """mod_cache_disk: the miss (CACHE_SAVE) and the hit (quick handler) of
    a static file, both whole; the hit has Age and the headers of HTTP/1.1."""
    c = frame_client(tls=tls)
    path = f"/c561/f/{size}.bin"
    _miss_hit(server, c, path, size, tls, stored=size > 0)
    assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", SOCACHE_SIZES)
def test_h2x_561_02_socache_miss_hit(server, frame_client, size, tls):
    """mod_cache_socache (shmcb): the same, the entity held in memory."""
    c = frame_client(tls=tls)
    _miss_hit(server, c, f"/c561s/{size}.bin", size, tls)
    assert not c.goaways and not c.closed


# -- 2. HEAD ------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("path,size", [("/c561/f/{}.bin?head", 1),
                                       ("/c561/f/{}.bin?head", 65537),
                                       ("/c561s/{}.bin?head", 0),
                                       ("/c561s/{}.bin?head", 16384),
                                       ("/c561/cgi/obj.py/k=head{}/n=3000", 3000)],
                         ids=["disk-1", "disk-65537", "socache-0", "socache-16384",
                              "cgi-3000"])
def test_h2x_561_03_head_cached(server, frame_client, tls, path, size):
    """HEAD on a cached entity: HEADERS with END_STREAM, no DATA, the
    entity's Content-Length; the same fields as an HTTP/1.1 HEAD."""
    path = path.format(size if "cgi" not in path else ("s" if tls else "c"))
    c = frame_client(tls=tls)
    first = _get(c, path)
    assert first.status == 200 and len(first.body) == size, first
    hit = _get(c, path)
    assert _xcache(hit).startswith("HIT"), _fields(hit)
    for _ in range(3):
        s = _get(c, path, method="HEAD")
        assert s.status == 200, s
        _assert_ends_well(s, has_body=False)
        assert s.body == b""
        assert s.header("content-length") == _head_length(size), _fields(s)
        assert s.header("etag") == first.header("etag"), _fields(s)
    h1 = _h1(server, path, tls, "-I")
    assert h1.status == 200, h1
    assert h1.header("content-length") == _head_length(size), h1.headers
    assert (s.header("x-cache") or "")[:3] == (h1.header("x-cache") or "")[:3], \
        (_fields(s), h1.headers)
    _compare_h1(_fields(s), h1.headers, f"HEAD {path}",
                hit=(h1.header("x-cache") or "").startswith("HIT"))
    if "cgi" in path:
        assert _count(server, "head" + ("s" if tls else "c")) == 1


# -- 3. ranges ----------------------------------------------------------------

def _multipart_parts(body: bytes, ctype: str):
    m = re.search(r"boundary=([^;\s]+)", ctype)
    assert m, ctype
    boundary = m.group(1).strip('"').encode()
    assert body.endswith(b"\r\n--" + boundary + b"--\r\n"), body[-100:]
    parts = []
    for chunk in body.split(b"\r\n--" + boundary)[1:-1]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        hdrs = dict(line.split(b": ", 1) for line in head.split(b"\r\n") if b": " in line)
        hdrs = {k.lower().decode(): v.decode() for k, v in hdrs.items()}
        parts.append((hdrs.get("content-range"), data))
    return parts


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("store", ["disk", "socache"])
def test_h2x_561_04_ranges_cached(server, frame_client, tls, store):
    """Ranges on a cached 65537-byte entity: 206 with the right bytes for
    bytes=100-199 and a suffix range, multipart/byteranges for three
    ranges, each part exact and the body the same as over HTTP/1.1."""
    size = 65537
    path = f"/c561/f/{size}.bin?range" if store == "disk" else f"/c561s/{size}.bin?range"
    content = file_content(size)
    c = frame_client(tls=tls)
    assert _get(c, path).status == 200
    assert _xcache(_get(c, path)).startswith("HIT")

    for rng, lo, hi in (("bytes=100-199", 100, 199), ("bytes=-500", size - 500, size - 1),
                        ("bytes=65000-", 65000, size - 1)):
        s = _get(c, path, headers=[("range", rng)])
        assert s.status == 206, (rng, s, _fields(s))
        assert s.body == content[lo:hi + 1], (rng, len(s.body))
        assert s.header("content-range") == f"bytes {lo}-{hi}/{size}", _fields(s)
        assert s.header("content-length") in (None, str(hi - lo + 1)), _fields(s)
        _assert_ends_well(s, True)
        h1 = _h1(server, path, tls, headers={"Range": rng})
        assert h1.status == 206 and h1.body == s.body, h1
        assert (s.header("x-cache") or "")[:3] == (h1.header("x-cache") or "")[:3], \
            (rng, _fields(s), h1.headers)

    rng = "bytes=0-9,100-109,65530-"
    s = _get(c, path, headers=[("range", rng)])
    assert s.status == 206, (s, _fields(s))
    ctype = s.header("content-type") or ""
    assert ctype.startswith("multipart/byteranges"), _fields(s)
    parts = _multipart_parts(s.body, ctype)
    assert parts == [(f"bytes 0-9/{size}", content[0:10]),
                     (f"bytes 100-109/{size}", content[100:110]),
                     (f"bytes 65530-65536/{size}", content[65530:])], parts
    if s.header("content-length") is not None:
        assert s.header("content-length") == str(len(s.body)), _fields(s)
    _assert_ends_well(s, True)
    h1 = _h1(server, path, tls, headers={"Range": rng})
    assert h1.status == 206 and h1.body == s.body, (h1, h1.body[:200], s.body[:200])


# -- 4. a counted CGI behind the cache ---------------------------------------

def _called_once(httpd, c, path, key, size):
    """PARALLEL sequential, then PARALLEL concurrent GETs of the counted
    CGI's cacheable answer on connection `c`: the first a miss (a CGI's
    pipe: DATA(0)[ES] allowed), all others hits ending on their last DATA
    frame, every body exact, the CGI called once. The last stream."""
    for i in range(PARALLEL):
        s = _get(c, path)
        assert s.status == 200 and s.body == file_content(size), (i, s)
        _assert_ends_well(s, True, streamed=i == 0)
        assert _xcache(s).startswith("MISS" if i == 0 else "HIT"), (i, _fields(s))
    assert _count(httpd, key) == 1
    sids = [c.request("GET", path) for _ in range(PARALLEL)]
    assert c.wait_all_ended(timeout=20), [r.frames_str() for r in c.unended()]
    for sid in sids:
        s = c.stream(sid)
        assert s.status == 200 and s.body == file_content(size), s
        assert _xcache(s).startswith("HIT"), _fields(s)
        _assert_ends_well(s, True)
    assert _count(httpd, key) == 1
    return c.stream(sids[-1])


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_05_cgi_called_once(server, frame_client, tls):
    """20 sequential and then 20 concurrent requests on one connection for
    a cacheable CGI response: the CGI runs once, every body is exact."""
    key = f"once{'s' if tls else 'c'}"
    size = 40000
    path = f"/c561/cgi/obj.py/k={key}/n={size}"
    c = frame_client(tls=tls)
    last = _called_once(server, c, path, key, size)
    h1 = _h1(server, path, tls)
    assert h1.body == file_content(size)
    _compare_h1(_fields(last), h1.headers, f"GET {path}")
    assert _count(server, key) == 1
    assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("kind", ["cgi", "static"])
def test_h2x_561_06_cachelock_parallel_misses(server, frame_client, tls, kind):
    """CacheLock on: 20 concurrent misses of one URL on one connection (a
    slow CGI, so that they overlap, or a 300 KiB file). One takes the lock
    and saves, the others go to the backend uncached: none of them may
    hang, every body is exact, and the entity is cached afterwards."""
    t = "s" if tls else "c"
    if kind == "cgi":
        key = f"lock{t}"
        size = 20000
        path = f"/c561/cgi/obj.py/k={key}/n={size}/ms=300"
    else:
        size = 300 * 1024
        path = f"/c561/f/{size}.bin?lock{t}"
    c = frame_client(tls=tls)
    t0 = time.monotonic()
    sids = [c.request("GET", path) for _ in range(PARALLEL)]
    assert c.wait_all_ended(timeout=25), \
        [(r.sid, r.frames_str()) for r in c.unended()]
    took = time.monotonic() - t0
    for sid in sids:
        s = c.stream(sid)
        assert s.status == 200 and s.body == file_content(size), s
        _assert_ends_well(s, True, streamed=kind == "cgi")
    if kind == "cgi":
        calls = _count(server, key)
        assert 1 <= calls <= PARALLEL, calls
    s = _get(c, path)
    assert s.status == 200 and s.body == file_content(size)
    assert _xcache(s).startswith("HIT"), _fields(s)
    _assert_ends_well(s, True)
    if kind == "cgi":
        assert _count(server, key) == calls
    assert took < 20, took
    assert not c.goaways and not c.closed


# -- 5. revalidation and conditional requests --------------------------------

def test_h2x_561_07_revalidation(server, frame_client):
    """Stale entities (max-age=1) over h2c and h2: the CGI answers the
    cache's If-None-Match with 304 and the client gets the cached 200 with
    the full body; a client's own If-None-Match on a stale entity and on a
    fresh one gets a 304 that ends on its HEADERS."""
    size = 30000
    clients, paths = {}, {}
    for tls in (False, True):
        t = "s" if tls else "c"
        clients[tls] = c = frame_client(tls=tls)
        for kind in ("full", "cond"):
            paths[tls, kind] = p = f"/c561/cgi/obj.py/k=rv{kind}{t}/n={size}/ma=1"
            s = _get(c, p)
            assert s.status == 200 and s.body == file_content(size), s
            assert _xcache(s).startswith("MISS"), _fields(s)
    time.sleep(2.2)
    for tls in (False, True):
        t = "s" if tls else "c"
        c = clients[tls]
        # The cache revalidates; the backend's 304 becomes a 200 with the body.
        s = _get(c, paths[tls, "full"])
        assert s.status == 200, (s, _fields(s))
        assert s.body == file_content(size), (len(s.body), s.frames_str())
        assert s.header("content-length") == str(size), _fields(s)
        assert s.header("etag") == f'"561-rvfull{t}"', _fields(s)
        assert _xcache(s).startswith("REVALIDATE"), _fields(s)
        _assert_ends_well(s, True)
        assert (_count(server, f"rvfull{t}"), _count(server, f"rvfull{t}", "304")) == (1, 1)
        # Fresh again: a client conditional is answered by the cache.
        s = _get(c, paths[tls, "full"], headers=[("if-none-match", f'"561-rvfull{t}"')])
        assert s.status == 304, (s, _fields(s))
        _assert_ends_well(s, has_body=False)
        assert s.header("etag") == f'"561-rvfull{t}"', _fields(s)
        assert (_count(server, f"rvfull{t}"), _count(server, f"rvfull{t}", "304")) == (1, 1)
        # Stale and conditional: the backend's 304 goes to the client.
        s = _get(c, paths[tls, "cond"], headers=[("if-none-match", f'"561-rvcond{t}"')])
        assert s.status == 304, (s, _fields(s))
        _assert_ends_well(s, has_body=False)
        assert _count(server, f"rvcond{t}", "304") == 1
        # ...and the entity is fresh again, served whole.
        s = _get(c, paths[tls, "cond"])
        assert s.status == 200 and s.body == file_content(size), (s, _fields(s))
        assert _xcache(s).startswith("HIT"), _fields(s)
        _assert_ends_well(s, True)
        assert _count(server, f"rvcond{t}") == 1
        assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_08_conditional_on_cached_static(server, frame_client, tls):
    """If-None-Match / If-Modified-Since matching a cached static entity:
    304 from the cache, on HEADERS with END_STREAM; a non-matching ETag
    gets the whole entity."""
    size = 65537
    path = f"/c561/f/{size}.bin?cond"
    c = frame_client(tls=tls)
    first = _get(c, path)
    etag, lm = first.header("etag"), first.header("last-modified")
    assert etag and lm, _fields(first)
    assert _xcache(_get(c, path)).startswith("HIT")
    for hdrs in ([("if-none-match", etag)], [("if-modified-since", lm)]):
        s = _get(c, path, headers=hdrs)
        assert s.status == 304, (hdrs, s, _fields(s))
        _assert_ends_well(s, has_body=False)
        h1 = _h1(server, path, tls, headers=dict(hdrs))
        assert h1.status == 304, h1
        _compare_h1(_fields(s), h1.headers, f"conditional {hdrs}",
                    hit="age" in h1.headers)
    s = _get(c, path, headers=[("if-none-match", '"nope"')])
    assert s.status == 200 and s.body == file_content(size), s
    h1 = _h1(server, path, tls, headers={"If-None-Match": '"nope"'})
    assert h1.status == 200 and h1.body == s.body, h1
    assert s.header("x-cache-detail") == h1.header("x-cache-detail"), (_fields(s), h1.headers)
    # Not served from the cache (a miss, stored again): its end may come
    # after its last data, as in _miss_hit().
    _assert_ends_well(s, True, streamed=_xcache(s).startswith("MISS"))


# -- 6. no-cache --------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_09_client_no_cache(server, frame_client, tls):
    """`Cache-Control: no-cache` from the client: the CGI is called again
    (as over HTTP/1.1), the response is whole and ends well."""
    key = f"nc{'s' if tls else 'c'}"
    size = 16384
    path = f"/c561/cgi/obj.py/k={key}/n={size}"
    c = frame_client(tls=tls)
    assert _get(c, path).status == 200
    s = _get(c, path)
    assert _xcache(s).startswith("HIT"), _fields(s)
    assert _count(server, key) == 1
    s = _get(c, path, headers=[("cache-control", "no-cache")])
    assert s.status == 200 and s.body == file_content(size), s
    _assert_ends_well(s, True, streamed=True)
    assert not _xcache(s).startswith("HIT"), _fields(s)
    assert _count(server, key) == 2
    h1 = _h1(server, path, tls, headers={"Cache-Control": "no-cache"})
    assert h1.status == 200 and h1.body == file_content(size)
    assert _count(server, key) == 3
    _compare_h1(_fields(s), h1.headers, "no-cache", hit=False)
    s = _get(c, path)
    assert s.status == 200 and s.body == file_content(size)
    _assert_ends_well(s, True, streamed=not _xcache(s).startswith("HIT"))


# -- 7. Vary ------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_10_vary(server, frame_client, tls):
    """Vary: Accept-Language: en and de get entries of their own, each
    served from the cache with its own body; Vary is one field with no
    token twice, the same as over HTTP/1.1."""
    key = f"vary{'s' if tls else 'c'}"
    path = f"/c561/cgi/obj.py/k={key}/vary=1"
    c = frame_client(tls=tls)
    expect = {lang: (f"lang={lang}\n".encode() * 200) for lang in ("en", "de", "fr")}
    seen = {}
    for i, lang in enumerate(["en", "de", "en", "de", "en", "fr"]):
        s = _get(c, path, headers=[("accept-language", lang)])
        assert s.status == 200 and s.body == expect[lang], (lang, s, s.body[:40])
        hit = i in (2, 3, 4)
        assert _xcache(s).startswith("HIT" if hit else "MISS"), (i, lang, _fields(s))
        _assert_ends_well(s, True, streamed=not hit)
        assert s.response_headers.get("vary") == ["Accept-Language"], (lang, _fields(s))
        seen[lang] = s
    assert _count(server, key) == 3
    h1 = _h1(server, path, tls, headers={"Accept-Language": "de"})
    assert h1.body == expect["de"] and (h1.header("x-cache") or "").startswith("HIT"), h1.headers
    assert _count(server, key) == 3
    _compare_h1(_fields(seen["de"]), h1.headers, "vary de (hit)")


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_11_vary_with_deflate(server, frame_client, tls):
    """A text/plain answer with Vary: Accept-Language: Debian's deflate.conf
    adds Accept-Encoding. Miss and hit carry each token once, as HTTP/1.1
    does (mod_cache reorders the stored list: compared as sets)."""
    key = f"varyt{'s' if tls else 'c'}"
    path = f"/c561/cgi/obj.py/k={key}/vary=text"
    body = b"lang=en\n" * 200
    c = frame_client(tls=tls)
    got = []
    for i in range(3):
        s = _get(c, path, headers=[("accept-language", "en")])
        assert s.status == 200 and s.body == body, s
        assert _xcache(s).startswith("MISS" if i == 0 else "HIT"), (i, _fields(s))
        _assert_ends_well(s, True, streamed=i == 0)
        vary = s.response_headers.get("vary", [])
        assert len(vary) == 1 and _no_dup_tokens(vary[0]), _fields(s)
        got.append({t.strip().lower() for t in vary[0].split(",")})
    assert got[0] == got[1] == {"accept-language", "accept-encoding"}, got
    h1 = _h1(server, path, tls, headers={"Accept-Language": "en"})
    assert (h1.header("x-cache") or "").startswith("HIT"), h1.headers
    assert len(h1.headers["vary"]) == 1 and _no_dup_tokens(h1.headers["vary"][0])
    assert {t.strip().lower() for t in h1.headers["vary"][0].split(",")} == got[-1]
    _compare_h1(_fields(s), h1.headers, "vary text (hit)")
    assert _count(server, key) == 1


# -- 8. CacheQuickHandler off -------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", [0, 16384, 65537, 300 * 1024])
def test_h2x_561_12_noquick_miss_hit_head(noquick, frame_client, tls, size):
    """CacheQuickHandler off: mod_cache serves hits from its handler with
    the CACHE filters in the normal chain; miss, hit and HEAD as above."""
    c = frame_client(tls=tls, server=noquick)
    path = f"/c561/f/{size}.bin"
    _miss_hit(noquick, c, path, size, tls, stored=size > 0)
    s = _get(c, path, method="HEAD")
    assert s.status == 200, s
    _assert_ends_well(s, has_body=False)
    assert s.header("content-length") == _head_length(size), _fields(s)
    s = _get(c, path, headers=[("range", "bytes=-1")])
    if size:
        assert s.status == 206 and s.body == file_content(size)[-1:], (s, _fields(s))
        _assert_ends_well(s, True)
    assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_561_13_noquick_cgi(noquick, frame_client, tls):
    """CacheQuickHandler off, the counted CGI: one call for 20 sequential
    and 20 concurrent requests on one connection."""
    key = f"nq{'s' if tls else 'c'}"
    size = 20000
    path = f"/c561/cgi/obj.py/k={key}/n={size}"
    c = frame_client(tls=tls, server=noquick)
    _called_once(noquick, c, path, key, size)
