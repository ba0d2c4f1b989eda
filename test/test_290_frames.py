"""Response framing (issue 3, DESIGN invariant 4: END_STREAM rides the last
frame): header-only responses are exactly HEADERS[END_STREAM]; with a body,
END_STREAM is on the last DATA frame and no zero-length DATA frame trails
it; trailers carry END_STREAM; DATA frames respect H2MaxDataFrameLen and the
client's SETTINGS_MAX_FRAME_SIZE.
"""

import pytest

from core_helpers import TEST_HANDLER_CONF, pattern_body
from h2.settings import SettingCodes
from h2x.httpd import file_content

pytestmark = pytest.mark.h2

MAX_DATA_LEN = 1000


CONF = TEST_HANDLER_CONF + f"""
<Location /big-header>
    SetHandler h2x-status
    Header always set X-Big "{'b' * 40000}"
</Location>
"""


@pytest.fixture(scope="module", autouse=True)
def _config(httpd):
    httpd.make_file("frames/100k.bin", 100_000)
    httpd.make_file("frames/1m.bin", 1_000_000)
    httpd.reconfigure(extra_global=CONF)


def _body_shapes(streamed: bool):
    """A CGI's output reaches httpd from a pipe: its end (EOF) can come after
    the last body bytes left; a streaming handler flushes its last chunk and
    only then (after its interval) passes the EOS.  Flushed bytes leave at
    once, so a DATA(0)[ES] is what invariant 4 allows there.  Everything
    else must end on its last DATA frame."""
    return {"HEADERS DATA[ES]", "HEADERS DATA DATA(0)[ES]"} if streamed \
        else {"HEADERS DATA[ES]"}


def _data_frames(c, sid):
    return [f for f in c.stream(sid).frames if f.type == "DATA"]


HEADER_ONLY = {
    "204": ("GET", "/h2x/status?s=204"),
    "204-body-dropped": ("GET", "/h2x/status?s=204&n=100"),
    "304": ("GET", "/h2x/status?s=304"),
    "304-body-dropped": ("GET", "/h2x/status?s=304&n=100"),
    "head-handler": ("HEAD", "/h2x/status?n=1000"),
    "head-static": ("HEAD", "/frames/100k.bin"),
    "head-cgi": ("HEAD", "/cgi-bin/hello.py"),
    "cl0": ("GET", "/h2x/status?cl0=1"),
    "n0": ("GET", "/h2x/status?n=0"),
    "static-empty": ("GET", "/empty.txt"),
    "cgi-204": ("GET", "/cgi-bin/nocontent.py"),
    "cgi-cl0": ("GET", "/cgi-bin/empty.py"),
    "delay-n0": ("GET", "/h2x/delay?s=0.2&n=0"),
}


@pytest.mark.parametrize("case", list(HEADER_ONLY))
def test_h2x_290_01_header_only(frame_client, case):
    """No body: exactly HEADERS with END_STREAM, no DATA, no RST."""
    method, path = HEADER_ONLY[case]
    c = frame_client()
    sid = c.request(method, path)
    assert c.wait_stream_end(sid), c.stream(sid)
    s = c.stream(sid)
    assert c.shape(sid, collapse=False) == "HEADERS[ES]", s.frames_str()
    assert s.ended_by == "END_STREAM"
    assert s.status is not None


WITH_BODY = {
    "static-1k": ("/1k.txt", 1024),
    "static-100k": ("/frames/100k.bin", 100_000),
    "handler-1": ("/h2x/status?n=1", 1),
    "handler-100": ("/h2x/status?n=100", 100),
    "handler-16384": ("/h2x/status?n=16384", 16384),
    "handler-200k": ("/h2x/status?n=200000", 200_000),
    "handler-cl": ("/h2x/status?n=5000&cl=1", 5000),
    "handler-error-page": ("/h2x/status?s=500&err=1", None),
    "cgi-hello": ("/cgi-bin/hello.py", None),
    "cgi-big": ("/cgi-bin/big.py?n=300000", 300_000),
    "delay": ("/h2x/delay?s=0.2&n=100", 100),
    "stream": ("/h2x/stream?count=5&size=100&ms=20", 500),
    "404": ("/no/such/thing", None),
}


@pytest.mark.parametrize("case", list(WITH_BODY))
def test_h2x_290_02_body_end_stream_on_last_data(frame_client, case):
    """With a body: END_STREAM on the last DATA frame, no DATA(0)."""
    path, size = WITH_BODY[case]
    c = frame_client()
    sid = c.request("GET", path)
    assert c.wait_stream_end(sid, timeout=20), c.stream(sid)
    s = c.stream(sid)
    assert c.shape(sid) in _body_shapes(case.startswith("cgi") or case == "stream"), \
        s.frames_str()
    if size is not None:
        assert len(s.body) == size
    datas = [f for f in _data_frames(c, sid) if f.length]
    assert datas and not any(f.length == 0 for f in datas[:-1]), s.frames_str()


@pytest.mark.parametrize("path", ["/h2x/status?n=100", "/h2x/status?n=20000",
                                  "/h2x/delay?s=0.02&n=100"],
                         ids=["at-once", "at-once-20k", "after-delay"])
def test_h2x_290_03_no_stray_empty_data_50x(frame_client, path):
    """50 times each: a handler returning at once or after a delay ends with
    END_STREAM on its last DATA (no zero-length DATA frame).  Streams run
    five at a time on one connection."""
    c = frame_client()
    shapes = {}
    for batch in range(10):
        sids = [c.request("GET", path) for _ in range(5)]
        assert c.wait_all_ended(timeout=20)
        for sid in sids:
            shape = c.shape(sid, collapse=True)
            shapes[shape] = shapes.get(shape, 0) + 1
            assert c.stream(sid).status == 200
    assert shapes == {"HEADERS DATA[ES]": 50}, shapes


def test_h2x_290_04_header_only_50x(frame_client):
    """50 times each, concurrently: 204, 304, HEAD and cl0 are HEADERS[ES]."""
    c = frame_client()
    reqs = [("GET", "/h2x/status?s=204"), ("GET", "/h2x/status?s=304"),
            ("HEAD", "/h2x/status?n=100"), ("GET", "/h2x/status?cl0=1"),
            ("GET", "/h2x/delay?s=0.01&n=0")]
    bad = []
    for _ in range(10):
        sids = [c.request(m, p) for m, p in reqs]
        assert c.wait_all_ended(timeout=20)
        bad += [(sid, c.stream(sid).frames_str()) for sid in sids
                if c.shape(sid, collapse=False) != "HEADERS[ES]"]
    assert not bad, bad


def test_h2x_290_05_trailers(frame_client):
    """Trailers: END_STREAM rides the trailing HEADERS, no DATA(0)."""
    c = frame_client()
    sid = c.request("GET", "/h2x/trailers?n=1000&t=x-t1:v1&t=x-t2:v2",
                    headers=[("te", "trailers")])
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert c.shape(sid) == "HEADERS DATA HEADERS[ES]", s.frames_str()
    assert ("x-t1", "v1") in s.trailers and ("x-t2", "v2") in s.trailers
    assert all(f.length > 0 for f in _data_frames(c, sid)), s.frames_str()


def test_h2x_290_10_max_data_frame_len(httpd, frame_client):
    """H2MaxDataFrameLen 1000: no DATA payload above 1000 bytes."""
    httpd.reconfigure(extra_global=CONF + f"\nH2MaxDataFrameLen {MAX_DATA_LEN}\n")
    try:
        c = frame_client()
        sids = {c.request("GET", "/frames/100k.bin"): file_content(100_000),
                c.request("GET", "/h2x/status?n=50000"): pattern_body(50_000),
                c.request("GET", "/cgi-bin/big.py?n=30000"): pattern_body(30_000)}
        cgi = max(sids)
        assert c.wait_all_ended(timeout=20)
        for sid, body in sids.items():
            s = c.stream(sid)
            assert s.body == body
            lens = [f.length for f in _data_frames(c, sid)]
            assert max(lens) <= MAX_DATA_LEN, lens
            assert len(lens) >= len(body) // MAX_DATA_LEN
            assert c.shape(sid) in _body_shapes(sid == cgi), c.stream(sid).frames_str()
    finally:
        httpd.reconfigure(extra_global=CONF)


@pytest.mark.parametrize("max_frame", [None, 16385, 65536], ids=["default", "16385", "64k"])
def test_h2x_290_11_client_max_frame_size(httpd, frame_client, max_frame):
    """DATA frames never exceed the client's SETTINGS_MAX_FRAME_SIZE."""
    settings = {SettingCodes.MAX_FRAME_SIZE: max_frame} if max_frame else {}
    c = frame_client(settings=settings, window=4 * 1024 * 1024)
    sid = c.request("GET", "/frames/1m.bin")
    sid2 = c.request("GET", "/h2x/status?n=300000")
    assert c.wait_all_ended(timeout=20)
    limit = max_frame or 16384
    for s, body in ((sid, file_content(1_000_000)), (sid2, pattern_body(300_000))):
        assert c.stream(s).body == body
        assert max(f.length for f in _data_frames(c, s)) <= limit
    assert all(f.length <= limit for f in c.frames), [str(f) for f in c.frames
                                                       if f.length > limit][:5]


def test_h2x_290_12_big_response_header_continuation(httpd, frame_client):
    """A 40 KB response header block is split into HEADERS + CONTINUATION
    frames of at most the client's max frame size."""
    c = frame_client()
    sid = c.request("GET", "/big-header?n=10")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 200, s
    assert s.header("x-big") == "b" * 40000
    types = [f.type for f in s.frames]
    assert "CONTINUATION" in types, s.frames_str()
    assert all(f.length <= 16384 for f in s.frames)
    assert c.shape(sid) == "HEADERS DATA[ES]"



@pytest.mark.parametrize("path,body", [
    ("/frames/1m.bin", file_content(1_000_000)),
    ("/h2x/status?n=1000000", pattern_body(1_000_000)),
    ("/cgi-bin/big.py?n=1000000", pattern_body(1_000_000)),
], ids=["static", "handler", "cgi"])
def test_h2x_290_20_no_client_frames_large_body(frame_client, path, body):
    """A client with huge windows that sends nothing after the request
    (as curl does) gets the whole body; nothing waits for a client frame."""
    c = frame_client(window=(1 << 31) - 1, auto_window_update=False)
    sid = c.request("GET", path)
    assert c.wait_stream_end(sid, timeout=10), \
        f"{len(c.stream(sid).body)} of {len(body)} bytes, then nothing"
    assert c.stream(sid).body == body


def _lazy_window_get(c, sid, threshold=32768):
    """Read like nghttp: WINDOW_UPDATE only when half a window was consumed."""
    consumed = {"conn": 0, "stream": 0}

    def on_data(cl):
        s = cl.stream(sid)
        got = len(s.body)
        if got - consumed["stream"] >= threshold and not s.ended:
            inc = got - consumed["stream"]
            consumed["stream"] = got
            cl.window_update(0, inc)
            cl.window_update(sid, inc)
        return s.ended
    ok = c.run(on_data, timeout=20)
    rest = len(c.stream(sid).body) - consumed["stream"]
    if rest > 0:
        c.window_update(0, rest)      # give the connection window back
    return ok


@pytest.mark.parametrize("path,size", [("/frames/1m.bin", 1_000_000),
                                       ("/h2x/status?n=1000000", 1_000_000)],
                         ids=["static", "handler"])
def test_h2x_290_21_flow_controlled_body_ends_on_last_data(frame_client, path, size):
    """A body sent under flow control (windows granted lazily, as nghttp does)
    still ends with END_STREAM on the last DATA: the handler's EOS follows
    its last bytes in the same brigade, so the end is known in time."""
    c = frame_client(auto_window_update=False)
    for _ in range(10):
        sid = c.request("GET", path)
        assert _lazy_window_get(c, sid), c.stream(sid)
        assert len(c.stream(sid).body) == size
        assert c.shape(sid) == "HEADERS DATA[ES]", c.stream(sid).frames_str()[-200:]
