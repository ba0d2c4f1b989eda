"""592: httpx, a widely used Python HTTP client, against the server.

Our own clients (h2x.frames, nghttp, curl) do what a test tells them; a
real client library brings its own flow-control window updates, stream
concurrency, connection pooling and reuse, and its own way of giving up on
a response.  httpx (Debian's python3-httpx 0.23, on httpcore 0.16 and
python-hyper h2) talks to the server here, sync and async (asyncio), over
h2 (TLS, ALPN, the session certificate verified) and h2c with prior
knowledge (`http1=False` on http:// URLs):

- 100 concurrent async GETs of files whose sizes sit on frame and window
  edges, byte-exact, all on one connection (the access log's client port);
- a 4 MiB download streamed with iter_bytes(), and one abandoned after
  64 KiB: the same connection then serves the next requests;
- uploads to the test module's echo handler: fixed sizes, a generator body
  without Content-Length in odd chunks, 20 concurrent async uploads;
- HEAD, a 304 revalidation with the ETag, a 204 from a CGI, a mod_alias
  Redirect that httpx follows;
- a read timeout on a stalled response (before the headers and mid-body):
  httpx raises ReadTimeout, the same client is served at once afterwards;
- a response header block of many fields and long values (> 16 KiB, so
  CONTINUATION frames), multi-valued fields and Set-Cookie kept apart;
- 60 concurrent async GETs with `H2MaxSessionStreams 10`.

Two things httpcore 0.16 does that shape the tests (client behaviour, not
the server's): closing a response early sends no RST_STREAM (the stream
is simply forgotten; the server sends the rest into the client's 16 MiB
window), and its stream semaphore is sized by its *own* SETTINGS (100),
so a request beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS fails
locally with LocalProtocolError("Max outbound streams is 10, ...") before
anything is sent.  The stream-limit test retries those, as an application
using this httpx must.  A read timeout marks the whole connection broken
(httpcore), so the request after it goes on a new connection.

Trailers are not tested: httpx does not expose them.
"""

import asyncio
import hashlib
import os
import ssl
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from core_helpers import TEST_HANDLER_CONF, pattern_body
from h2x.httpd import file_content

httpx = pytest.importorskip(
    "httpx", reason="needs httpx: Debian package python3-httpx")
pytest.importorskip(
    "h2", reason="httpx's HTTP/2 support needs h2: Debian package python3-httpx "
                 "(pulls in python3-h2)")

pytestmark = pytest.mark.h2

MODES = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])

KIB = 1024
MIB = 1024 * KIB
EDGE_SIZES = [0, 1, 16383, 16384, 16385, 65535, 65536, 65537, 100_000, MIB + 1]
BIG = 4 * MIB
LONG_VALUE = 6000          # one mod_headers value (config lines end at 8 KiB)
HANDLER_VALUE = 20_000     # h2x-status hd=N: x-hd of N bytes
MANY_FIELDS = 60
STREAM_LIMIT = 10

TIMEOUT = httpx.Timeout(30.0)

BASE_CONF = TEST_HANDLER_CONF + """
# client port of every request: one port = one connection
LogFormat "%{remote}p %H %>s %b %U%q" c592
CustomLog "logs/c592_log" c592
Redirect 302 /r592/old /f592/edge-65537.bin
<Location /hdr592>
    SetHandler h2x-status
""" + "".join(f'    Header always set X-F592-{i:02d} "value {i} of {MANY_FIELDS}"\n'
              for i in range(MANY_FIELDS)) + f"""\
    Header always set X-Long592 "{'L' * LONG_VALUE}"
    Header always add X-Multi592 "one"
    Header always add X-Multi592 "two"
    Header always add Set-Cookie "a592=1; Path=/"
    Header always add Set-Cookie "b592=2; Path=/"
</Location>
"""
LIMITED_CONF = BASE_CONF + f"H2MaxSessionStreams {STREAM_LIMIT}\n"


@pytest.fixture(scope="module")
def _files(httpd):
    for size in EDGE_SIZES:
        httpd.make_file(f"/f592/edge-{size}.bin", size)
    httpd.make_file("/f592/big.bin", BIG)
    httpd.make_file("/f592/small.bin", 100)
    httpd._592_conf = None
    yield httpd
    httpd.reconfigure()


def _use(httpd, conf):
    if httpd._592_conf != conf:
        httpd.reconfigure(extra_global=conf)
        httpd._592_conf = conf
    return httpd


@pytest.fixture
def server(_files):
    """The module's httpd with BASE_CONF (restarted only if it had another)."""
    return _use(_files, BASE_CONF)


@pytest.fixture
def limited(_files):
    """The module's httpd with BASE_CONF and H2MaxSessionStreams 10."""
    return _use(_files, LIMITED_CONF)


@pytest.fixture(scope="module")
def ssl_ctx(env):
    """Verifies the session certificate (a self-signed localhost leaf)."""
    return ssl.create_default_context(cafile=env.cert()[0])


def _client(httpd, tls, ssl_ctx, cls=None, **kw):
    """h2 over TLS: ALPN offers h2 and http/1.1, the server must pick h2.
    h2c: HTTP/2 with prior knowledge (http1=False)."""
    cls = cls or httpx.Client
    return cls(http1=tls, http2=True, verify=ssl_ctx, base_url=httpd.url("/", tls=tls),
               timeout=kw.pop("timeout", TIMEOUT), **kw)


_tags = iter(range(1, 1 << 30))


def _tag(name, tls):
    return f"{name}-{'h2' if tls else 'h2c'}-{next(_tags)}"


def _log_entries(httpd, tag, count, timeout=5.0):
    """(port, protocol, status, bytes) of the c592 lines whose query has
    tag=<tag>; waits up to `timeout` for `count` of them (a stream's log line
    is written when its request ends, maybe just after the client saw it)."""
    path = os.path.join(httpd.root, "logs", "c592_log")
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(path, errors="replace") as f:
                lines = [p for p in (ln.split() for ln in f) if len(p) == 5 and
                         parse_qs(urlsplit(p[4]).query).get("tag") == [tag]]
        except FileNotFoundError:
            lines = []
        if len(lines) >= count or time.monotonic() > deadline:
            return [(p[0], p[1], p[2], p[3]) for p in lines]
        time.sleep(0.05)


def _assert_one_connection(httpd, tag, count):
    entries = _log_entries(httpd, tag, count)
    assert len(entries) == count, (f"{len(entries)} of {count} requests logged", entries)
    assert {(e[1], e[2]) for e in entries} == {("HTTP/2.0", "200")}, entries
    ports = {e[0] for e in entries}
    assert len(ports) == 1, f"requests spread over {len(ports)} connections: {ports}"
    return entries


def _assert_h2(r, status=200):
    assert r.http_version == "HTTP/2", r.http_version
    assert r.status_code == status, (r.status_code, r.headers, r.content[:200])


def _upload_body(size, seed=0):
    # no repeating pattern: a lost, doubled or shifted byte shows
    return hashlib.shake_256(b"h2x-592-%d-%d" % (size, seed)).digest(size) if size else b""


# -- 1: concurrent downloads --------------------------------------------------

@MODES
def test_h2x_592_01_concurrent_gets_one_connection(server, ssl_ctx, tls):
    """100 concurrent GETs on one AsyncClient, edge sizes, byte-exact,
    one connection (client-side: distinct stream ids; server-side: one port)."""
    tag = _tag("01", tls)
    expect = {size: file_content(size) for size in EDGE_SIZES}
    count = 100

    async def main():
        async with _client(server, tls, ssl_ctx, cls=httpx.AsyncClient) as c:
            async def one(i):
                size = EDGE_SIZES[i % len(EDGE_SIZES)]
                r = await c.get(f"/f592/edge-{size}.bin?i={i}&tag={tag}")
                return size, r
            return await asyncio.gather(*(one(i) for i in range(count)))

    results = asyncio.run(main())
    stream_ids = set()
    for size, r in results:
        _assert_h2(r)
        assert r.headers["content-length"] == str(size)
        assert len(r.content) == size and r.content == expect[size], size
        stream_ids.add(r.extensions.get("stream_id"))
    assert len(stream_ids) == count, f"stream ids repeat: {len(stream_ids)} distinct"
    _assert_one_connection(server, tag, count)


# -- 2: streamed download, abandoned download ---------------------------------

@MODES
def test_h2x_592_02_stream_download_and_abandon(server, ssl_ctx, tls):
    tag = _tag("02", tls)
    expect = file_content(BIG)
    with _client(server, tls, ssl_ctx) as c:
        got = bytearray()
        with c.stream("GET", f"/f592/big.bin?n=1&tag={tag}") as r:
            _assert_h2(r)
            assert r.headers["content-length"] == str(BIG)
            for chunk in r.iter_bytes():
                got += chunk
        assert len(got) == BIG and bytes(got) == expect

        # Abandon the second one after 64 KiB (httpcore 0.16 forgets the
        # stream without a RST_STREAM; the server finishes it regardless).
        part = bytearray()
        with c.stream("GET", f"/f592/big.bin?n=2&tag={tag}") as r:
            _assert_h2(r)
            for chunk in r.iter_bytes(chunk_size=4096):
                part += chunk
                if len(part) >= 64 * KIB:
                    break
        assert bytes(part) == expect[:len(part)]

        # The same client (and connection) goes on.
        t0 = time.monotonic()
        for i in range(3):
            r = c.get(f"/f592/small.bin?n={3 + i}&tag={tag}")
            _assert_h2(r)
            assert r.content == file_content(100)
        r = c.get(f"/f592/big.bin?n=6&tag={tag}")
        _assert_h2(r)
        assert r.content == expect
        assert time.monotonic() - t0 < 15
    _assert_one_connection(server, tag, 6)
    # and a new connection is served too
    with _client(server, tls, ssl_ctx) as c:
        _assert_h2(c.get("/f592/small.bin"))


# -- 3: uploads ---------------------------------------------------------------

@MODES
def test_h2x_592_03_upload_sizes(server, ssl_ctx, tls):
    tag = _tag("03", tls)
    sizes = [0, 65535, 65536, MIB + 1]
    with _client(server, tls, ssl_ctx) as c:
        for size in sizes:
            body = _upload_body(size)
            r = c.post(f"/h2x/echo?tag={tag}&size={size}", content=body)
            _assert_h2(r)
            assert len(r.content) == size and r.content == body, size
    _assert_one_connection(server, tag, len(sizes))


@MODES
def test_h2x_592_04_upload_generator(server, ssl_ctx, tls):
    """A generator body: no Content-Length, 1 MiB in odd-sized chunks."""
    body = _upload_body(MIB, seed=4)
    steps = [1, 7, 333, 4099, 16385, 65537, 12345]
    chunks, pos, k = [], 0, 0
    while pos < len(body):
        n = steps[k % len(steps)]
        chunks.append(body[pos:pos + n])
        pos += n
        k += 1

    def gen():
        yield from chunks

    with _client(server, tls, ssl_ctx) as c:
        req = c.build_request("POST", "/h2x/echo", content=gen())
        assert "content-length" not in req.headers
        r = c.send(req)
        _assert_h2(r)
        assert len(r.content) == MIB and r.content == body
        r = c.post("/h2x/echo?md5=1", content=iter(chunks))
        _assert_h2(r)
        assert r.text == f"{hashlib.md5(body).hexdigest()} {MIB}\n"


@MODES
def test_h2x_592_05_concurrent_uploads(server, ssl_ctx, tls):
    """20 concurrent async uploads on one connection, each echoed exact.

    The bodies come from async generators (no Content-Length: the request
    ends with the client's END_STREAM).  With Content-Length, httpd may
    answer as soon as the announced bytes are in; mod_http2 then follows its
    END_STREAM with RST_STREAM(NO_ERROR) (RFC 9113 §8.1) and httpcore 0.16,
    about to send its own END_STREAM, fails the request locally
    (h2 StreamClosedError): a client bug that test_03 avoids by sending
    one upload at a time."""
    tag = _tag("05", tls)
    count = 20
    bodies = [_upload_body(100_000 + i * 4099, seed=i) for i in range(count)]

    async def agen(body, step):
        for pos in range(0, len(body), step):
            yield body[pos:pos + step]

    async def main():
        async with _client(server, tls, ssl_ctx, cls=httpx.AsyncClient) as c:
            return await asyncio.gather(*(
                c.post(f"/h2x/echo?i={i}&tag={tag}", content=agen(bodies[i], 8191 + 2 * i))
                for i in range(count)))

    for body, r in zip(bodies, asyncio.run(main())):
        _assert_h2(r)
        assert len(r.content) == len(body) and r.content == body, len(body)
    _assert_one_connection(server, tag, count)


# -- 4: header-only responses, redirects --------------------------------------

@MODES
def test_h2x_592_06_head_304_204(server, ssl_ctx, tls):
    with _client(server, tls, ssl_ctx) as c:
        r = c.head("/f592/edge-100000.bin")
        _assert_h2(r)
        assert r.headers["content-length"] == "100000"
        assert r.content == b""

        r = c.get("/f592/edge-65536.bin")
        _assert_h2(r)
        etag = r.headers["etag"]
        assert etag
        r = c.get("/f592/edge-65536.bin", headers={"If-None-Match": etag})
        _assert_h2(r, 304)
        assert r.content == b""
        assert r.headers.get("etag") == etag

        r = c.get("/cgi-bin/nocontent.py")
        _assert_h2(r, 204)
        assert r.content == b""

        # and the connection is still good after the header-only ones
        r = c.get("/f592/edge-16385.bin")
        _assert_h2(r)
        assert r.content == file_content(16385)


@MODES
def test_h2x_592_07_redirect_followed(server, ssl_ctx, tls):
    with _client(server, tls, ssl_ctx, follow_redirects=True) as c:
        r = c.get("/r592/old")
        _assert_h2(r)
        assert [h.status_code for h in r.history] == [302]
        assert r.history[0].http_version == "HTTP/2"
        assert r.history[0].headers["location"] == server.url("/f592/edge-65537.bin",
                                                              tls=tls)
        assert str(r.url).endswith("/f592/edge-65537.bin")
        assert r.content == file_content(65537)


# -- 5: read timeout ----------------------------------------------------------

@MODES
@pytest.mark.parametrize("where", ["before-headers", "mid-body"])
def test_h2x_592_08_read_timeout_then_served(server, ssl_ctx, tls, where):
    """httpx gives up on a stalled response after 1 s; the same client is
    then served at once (on a new connection: httpcore drops one that had a
    read timeout), and the server is unharmed."""
    path = ("/h2x/delay?s=2&n=100" if where == "before-headers"
            else "/cgi-bin/stall.py?n=100&s=2")
    with _client(server, tls, ssl_ctx) as c:
        _assert_h2(c.get("/f592/small.bin"))
        t0 = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            c.get(path, timeout=httpx.Timeout(10.0, read=1.0))
        took = time.monotonic() - t0
        assert 0.8 < took < 5, took
        t0 = time.monotonic()
        r = c.get("/f592/edge-65536.bin")
        _assert_h2(r)
        assert r.content == file_content(65536)
        assert time.monotonic() - t0 < 3
    with _client(server, not tls, ssl_ctx) as c:
        _assert_h2(c.get("/f592/small.bin"))


# -- 7: header blocks ---------------------------------------------------------

@MODES
def test_h2x_592_09_many_and_long_headers(server, ssl_ctx, tls):
    """60 mod_headers fields, a 6000-byte and a 20000-byte value (a header
    block over 16 KiB: CONTINUATION), a multi-valued field, two Set-Cookie."""
    with _client(server, tls, ssl_ctx) as c:
        for method in ("GET", "HEAD"):
            r = c.request(method, f"/hdr592?hd={HANDLER_VALUE}&n=1000")
            _assert_h2(r)
            for i in range(MANY_FIELDS):
                assert r.headers.get(f"x-f592-{i:02d}") == f"value {i} of {MANY_FIELDS}", i
            assert r.headers.get("x-long592") == "L" * LONG_VALUE
            assert r.headers.get("x-hd") == "h" * HANDLER_VALUE
            assert r.headers.get("x-multi592") == "one, two"
            assert sorted(r.headers.get_list("set-cookie")) == ["a592=1; Path=/",
                                                                 "b592=2; Path=/"]
            assert r.cookies.get("a592") == "1" and r.cookies.get("b592") == "2"
            if method == "GET":
                assert r.content == pattern_body(1000)
            else:
                assert r.content == b""
        # the connection's HPACK state is intact afterwards
        r = c.get("/f592/edge-1.bin")
        _assert_h2(r)
        assert r.content == file_content(1)


# -- 6: more requests than the stream limit (restarts the server) ------------

@MODES
def test_h2x_592_10_more_requests_than_stream_limit(limited, ssl_ctx, tls):
    """60 concurrent GETs of a 0.2 s resource with H2MaxSessionStreams 10:
    all 200, exact, one connection.  httpcore 0.16 fails a request beyond
    the server's limit locally ("Max outbound streams is 10, 10 open"),
    without sending it; and streams it opened before it read the server's
    SETTINGS may be refused by the server (RST_STREAM REFUSED_STREAM, which
    httpx does not retry).  Both are retried here after a short pause, as
    RFC 9113 §8.7 allows for a refused stream."""
    tag = _tag("10", tls)
    count = 60
    local_refusals = []
    server_refusals = []

    async def main():
        async with _client(limited, tls, ssl_ctx, cls=httpx.AsyncClient) as c:
            async def one(i):
                while True:
                    try:
                        return await c.get(f"/h2x/delay?s=0.2&n={1000 + i}&tag={tag}")
                    except httpx.LocalProtocolError as e:
                        if "Max outbound streams" not in str(e):
                            raise
                        local_refusals.append(str(e))
                    except httpx.RemoteProtocolError as e:
                        # h2's StreamReset event; 7 is REFUSED_STREAM
                        if "error_code:7," not in str(e) and "REFUSED_STREAM" not in str(e):
                            raise
                        server_refusals.append(str(e))
                    await asyncio.sleep(0.05)
            return await asyncio.gather(*(one(i) for i in range(count)))

    t0 = time.monotonic()
    results = asyncio.run(main())
    took = time.monotonic() - t0
    for i, r in enumerate(results):
        _assert_h2(r)
        assert r.content == pattern_body(1000 + i), i
    # the server's SETTINGS reached the client: it never had more than 10 open
    assert local_refusals, "the client never hit the server's stream limit"
    assert all(f"Max outbound streams is {STREAM_LIMIT}," in e for e in local_refusals), \
        set(local_refusals)
    assert took < 25, took
    _assert_one_connection(limited, tag, count)
