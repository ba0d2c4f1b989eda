"""216: a static file's stream ends on its last DATA frame, however served.

A static file goes out either from the connection's own thread (a lone
request, h2x_c2_inline.h) or from a worker (`H2xInlineRequests off`, or
when another stream is running). From a worker, the file's data and its
end used to reach c1 one after the other: when c1 had sent the data
before the end arrived, the stream ended with a zero-length DATA frame -
in half of the 32 KiB responses over h2c (measured 2026-12-01; the frame
gRPC and some proxies choke on, DESIGN.md). Now a file bucket taken whole
goes into the beam together with the EOS that follows it.

The standard server has Debian's deflate.conf (AddOutputFilterByType
DEFLATE ...): its mod_filter harness must not push static files off the
connection's thread either (it did, since its filter name was not on the
list of quick filters), checked with the frame trace.
"""

import pytest

from h2x.httpd import Httpd, file_content

pytestmark = pytest.mark.h2

SIZES = [1, 1000, 16384, 16385, 32768, 49152, 65536, 65537, 200_000]
ROUNDS = 12


@pytest.fixture(scope="module", params=["inline", "workers"])
def server(env, request):
    httpd = Httpd(env, name=f"test_216-{request.param}")
    extra = "H2xInlineRequests off\n" if request.param == "workers" else ""
    httpd.write_config(extra_global=extra, loglevel="warn h2x:trace2")
    for size in SIZES:
        httpd.make_file(f"/s216/f-{size}.bin", size)
        httpd.make_file(f"/s216/t-{size}.txt", size)
    httpd.start()
    yield request.param, httpd
    httpd.stop()
    Httpd._live.discard(httpd)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("ext", ["bin", "txt"])
def test_h2x_216_01_last_data_ends(server, frame_client, tls, ext):
    """Each size, ROUNDS times on one connection: the whole file, the last
    DATA frame carries END_STREAM, no DATA frame is empty (text files pass
    through mod_deflate's harness without being compressed: the client
    does not ask for it)."""
    _, httpd = server
    c = frame_client(tls=tls, server=httpd)
    bad = []
    for size in SIZES:
        for _ in range(ROUNDS):
            sid = c.request("GET", f"/s216/{'f' if ext == 'bin' else 't'}-{size}.{ext}")
            assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
            s = c.stream(sid)
            assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
            assert s.body == file_content(size)
            data = [f for f in s.frames if f.type == "DATA"]
            if not data[-1].end_stream or any(len(f.data) == 0 for f in data):
                bad.append((size, s.frames_str()))
    assert not bad, f"{len(bad)} of {len(SIZES) * ROUNDS}: {bad[:3]}"


def test_h2x_216_02_bytype_filter_stays_on_c1(httpd, frame_client):
    """Debian's AddOutputFilterByType lines put mod_filter's harness
    (bytype:deflate) into every response's chain; a lone static request
    is still served on the connection's thread."""
    httpd.reconfigure(loglevel="warn h2x:trace2")
    try:
        for name, size in (("f.bin", 32768), ("t.txt", 32768)):
            httpd.make_file(f"/s216/{name}", size)
        c = frame_client()
        for name in ("f.bin", "t.txt"):
            sid = c.request("GET", f"/s216/{name}")
            assert c.wait_stream_end(sid, timeout=10)
            assert c.stream(sid).status == 200
        lines = httpd.error_log_lines()
    finally:
        httpd.reconfigure()
    moved = [ln for ln in lines if "handler runs on a worker" in ln]
    assert not moved, moved[:3]
