"""800: WebSockets over HTTP/2 (RFC 8441, H2WebSockets), end to end.

A real WebSocket backend (python3-websockets, h2x/ws_backend.py) behind
`ProxyPass ... upgrade=websocket` (mod_proxy_http) and behind
mod_proxy_wstunnel's own tunnel; the client is the raw-frame client speaking RFC 6455
frames inside the stream's DATA.  What the client sees is asserted: the
SETTINGS, the CONNECT's status, messages both ways, how each side's close
ends the stream, that a client reset frees the backend connection, and that
many sockets on one connection stay independent.
"""

import os
import struct
import subprocess
import time

import pytest

from h2x.clients import chromium_dump_dom
from h2x.frames import ErrorCodes
from h2x.ports import free_port
from h2x.wsframes import BINARY, CLOSE, TEXT, ws_frame, ws_parse

pytestmark = pytest.mark.h2

ENABLE_CONNECT_PROTOCOL = 0x8
HERE = os.path.dirname(os.path.abspath(__file__))

@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The WebSocket backend: (port, events file)."""
    events = str(tmp_path_factory.mktemp("ws") / "events")
    open(events, "w").close()
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "h2x", "ws_backend.py"),
                             str(port), events],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    assert line.strip() == "ready", proc.stderr.read().decode()
    yield port, events
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def ws_server(httpd, env, backend):
    port, _ = backend
    wstunnel = env.apache_module("proxy_wstunnel")
    assert wstunnel, "Debian's mod_proxy_wstunnel.so is part of apache2"
    httpd.reconfigure(extra_global=f"""
LoadModule proxy_wstunnel_module {wstunnel}
H2WebSockets on
H2MaxWorkers 160
ProxyPass "/ws/" "http://127.0.0.1:{port}/" upgrade=websocket timeout=10
ProxyPass "/wsq/" "http://localhost:{port}/" upgrade=websocket timeout=2
<Location "/wst/">
    ProxyWebsocketFallbackToProxyHttp off
    ProxyPass "ws://127.0.0.1:{port}/"
</Location>
""", extra_tls_vhost="H2WebSockets on")
    yield httpd
    httpd.reconfigure()


def ws_connect(c, path, protocol="websocket", headers=None):
    """Send an extended CONNECT; return the stream id."""
    hdrs = [(":protocol", protocol), ("sec-websocket-version", "13")] + list(headers or [])
    return c.request("CONNECT", path, headers=hdrs, end_stream=False)


def wait_status(c, sid, timeout=10):
    assert c.run(until=lambda cl: cl.stream(sid).status is not None or cl.stream(sid).ended,
                 timeout=timeout), c.stream(sid).frames_str()
    return c.stream(sid).status


def read_ws(c, sid, count, timeout=10):
    """Wait for `count` WebSocket frames from the server on `sid`."""
    def enough(cl):
        return len(ws_parse(cl.stream(sid).body)[0]) >= count or cl.stream(sid).ended
    c.run(until=enough, timeout=timeout)
    return ws_parse(c.stream(sid).body)[0]


def closes_since(events, t0, path):
    with open(events) as f:
        return [float(ln.split()[2]) for ln in f
                if ln.startswith("closed ") and ln.split()[1] == path
                and float(ln.split()[2]) >= t0]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_800_01_setting_announced(ws_server, frame_client, tls):
    """H2WebSockets on: SETTINGS_ENABLE_CONNECT_PROTOCOL = 1 (RFC 8441 §3)."""
    c = frame_client(tls=tls)
    assert c.wait_settings()
    assert c.peer_settings.get(ENABLE_CONNECT_PROTOCOL) == 1, c.peer_settings


@pytest.mark.parametrize("prefix", ["/ws/", "/wst/"], ids=["proxy_http", "wstunnel"])
@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_800_03_echo_and_client_close(ws_server, frame_client, prefix, tls):
    """200 without END_STREAM, a text and a binary message echo, the
    client's CLOSE is answered, the backend then closes its connection and
    the stream ends with END_STREAM right away."""
    c = frame_client(tls=tls)
    sid = ws_connect(c, prefix + "echo")
    assert wait_status(c, sid) == 200, c.stream(sid).frames_str()
    s = c.stream(sid)
    assert not s.ended, s.frames_str()
    assert s.header("sec-websocket-accept") is None and s.header("upgrade") is None
    assert s.header("content-length") is None
    c.send_data(sid, ws_frame(TEXT, b"hello h2x"))
    c.send_data(sid, ws_frame(BINARY, bytes(range(256)) * 40))
    frames = read_ws(c, sid, 2)
    assert frames[:2] == [(TEXT, b"hello h2x"), (BINARY, bytes(range(256)) * 40)], frames
    c.send_data(sid, ws_frame(CLOSE, struct.pack(">H", 1000)))
    frames = read_ws(c, sid, 3)
    assert frames[2][0] == CLOSE and frames[2][1][:2] == struct.pack(">H", 1000), frames
    t0 = time.monotonic()
    assert c.wait_stream_end(sid, timeout=10), s.frames_str()
    assert time.monotonic() - t0 < 3, time.monotonic() - t0
    assert s.ended_by == "END_STREAM", s.frames_str()


def test_h2x_800_04_backend_closes(ws_server, frame_client):
    """The backend closes at once: its CLOSE (4000 "bye") arrives whole
    (the bytes that came with the 101 are not stuck); the client answers
    the CLOSE without ending its side, the backend closes the connection,
    and the stream ends with END_STREAM at once (not at the tunnel's 10 s
    timeout)."""
    c = frame_client()
    sid = ws_connect(c, "/ws/close")
    assert wait_status(c, sid) == 200
    frames = read_ws(c, sid, 1)
    assert frames and frames[0] == (CLOSE, struct.pack(">H", 4000) + b"bye"), frames
    c.send_data(sid, ws_frame(CLOSE, struct.pack(">H", 4000)))
    t0 = time.monotonic()
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    assert time.monotonic() - t0 < 3, time.monotonic() - t0
    assert c.stream(sid).ended_by == "END_STREAM", c.stream(sid).frames_str()


def test_h2x_800_05_server_speaks_first(ws_server, frame_client):
    """A message the backend sends before the client says anything goes
    out at once (no output buffering delay)."""
    c = frame_client()
    t0 = time.monotonic()
    sid = ws_connect(c, "/ws/hello")
    assert wait_status(c, sid) == 200
    frames = read_ws(c, sid, 1, timeout=5)
    assert frames and frames[0] == (TEXT, b"hello"), frames
    assert time.monotonic() - t0 < 2, time.monotonic() - t0
    c.reset(sid)


def test_h2x_800_06_client_reset_frees_backend(ws_server, backend, frame_client):
    """RST_STREAM from the client tears the backend connection down within
    about a second, and the HTTP/2 connection goes on."""
    _, events = backend
    c = frame_client()
    sid = ws_connect(c, "/ws/echo")
    assert wait_status(c, sid) == 200
    c.send_data(sid, ws_frame(TEXT, b"ping"))
    assert read_ws(c, sid, 1)[0] == (TEXT, b"ping")
    t0 = time.monotonic()
    c.reset(sid, ErrorCodes.CANCEL)
    deadline = t0 + 5
    while not closes_since(events, t0, "/echo") and time.monotonic() < deadline:
        time.sleep(0.05)
    closed = closes_since(events, t0, "/echo")
    assert closed, "the backend connection stayed open after the client's reset"
    assert closed[0] - t0 < 1.5, closed[0] - t0
    ok = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(ok) and c.stream(ok).status == 200


def test_h2x_800_07_client_end_stream(ws_server, frame_client):
    """The client ends its side (END_STREAM, no WebSocket CLOSE): the
    tunnel ends (mod_proxy's tunnels close both ways on the client's end)
    and so does the stream, long before the tunnel's 10 s timeout."""
    c = frame_client()
    sid = ws_connect(c, "/ws/echo")
    assert wait_status(c, sid) == 200
    t0 = time.monotonic()
    c.send_data(sid, ws_frame(TEXT, b"last"), end_stream=True)
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    assert time.monotonic() - t0 < 5, time.monotonic() - t0


def test_h2x_800_08_many_sockets_one_connection(ws_server, frame_client):
    """100 WebSockets on one connection (H2MaxSessionStreams 100; each open
    tunnel holds a worker, hence H2MaxWorkers 160 here), each with its own
    messages; one socket left silent delays none of the others; a
    1 MB message echoes whole."""
    c = frame_client()
    assert c.wait_settings()
    silent = ws_connect(c, "/ws/echo")
    sids = [ws_connect(c, "/ws/echo") for _ in range(99)]
    for sid in [silent] + sids:
        assert wait_status(c, sid) == 200, c.stream(sid).frames_str()
    for i, sid in enumerate(sids):
        c.send_data(sid, ws_frame(TEXT, f"socket {i}".encode()))
    for i, sid in enumerate(sids):
        frames = read_ws(c, sid, 1)
        assert frames and frames[0] == (TEXT, f"socket {i}".encode()), (i, frames)
    big = os.urandom(1 << 20)
    assert c.send_data(sids[0], ws_frame(BINARY, big), timeout=20)
    frames = read_ws(c, sids[0], 2, timeout=20)
    assert len(frames) >= 2 and frames[1] == (BINARY, big), [len(p) for _, p in frames]
    for sid in [silent] + sids:
        c.reset(sid)


def test_h2x_800_09_refusals(ws_server, frame_client):
    """Another :protocol: 501.  A resource that is no WebSocket (a static
    file) gets 502 without a body; a missing one its 404."""
    c = frame_client()
    other = ws_connect(c, "/ws/echo", protocol="not-a-protocol")
    static = ws_connect(c, "/1k.txt")
    missing = ws_connect(c, "/no/such/thing")
    for sid, status in ((other, 501), (static, 502), (missing, 404)):
        assert c.wait_stream_end(sid), c.stream(sid).frames_str()
        s = c.stream(sid)
        assert s.status == status, (status, s.frames_str())
        assert s.ended_by in ("END_STREAM", "RST_STREAM"), s.frames_str()
    assert c.stream(static).body == b"", c.stream(static).frames_str()


def test_h2x_800_10_stop_with_open_sockets(ws_server, frame_client):
    """Open WebSockets do not hold up a server stop: the tunnels end when
    their connection goes, and every child exits on the first SIGTERM."""
    c = frame_client()
    sids = [ws_connect(c, "/ws/echo") for _ in range(3)]
    for sid in sids:
        assert wait_status(c, sid) == 200
        c.expect_open(sid)
    t0 = time.monotonic()
    ws_server.stop(timeout=8, settle=0)
    elapsed = time.monotonic() - t0
    ws_server.start()
    assert elapsed < 4, elapsed
    assert not [ln for ln in ws_server.error_log_lines() if "AH00045" in ln]


@pytest.mark.parametrize("missing", [":path", ":scheme", ":authority"])
def test_h2x_800_12_malformed_connect(ws_server, frame_client, missing):
    """An extended CONNECT without :path, :scheme or :authority is
    malformed (RFC 8441 section 4, RFC 9113 section 8.3 and 8.1.1): the
    stream is reset with PROTOCOL_ERROR, no response head is sent, and
    other streams on the connection go on."""
    c = frame_client()
    assert c.wait_settings()
    full = [(":method", "CONNECT"), (":protocol", "websocket"), (":scheme", "http"),
            (":authority", "localhost"), (":path", "/ws/echo"),
            ("sec-websocket-version", "13")]
    sid = c.request(pseudo=False, end_stream=False,
                    headers=[(n, v) for n, v in full if n != missing])
    assert c.wait_stream_end(sid), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.rst_code == ErrorCodes.PROTOCOL_ERROR, s.frames_str()
    assert s.status is None, s.frames_str()
    ok = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(ok) and c.stream(ok).status == 200, c.stream(ok).frames_str()
    assert not c.goaways, c.goaways


def test_h2x_800_13_data_before_200(ws_server, frame_client):
    """A client that sends its first message right behind the CONNECT,
    before the 200 came: the bytes wait in the stream's input and reach
    the backend once the tunnel is up (nothing lost, nothing reset), as an
    HTTP/1.1 client's bytes after its Upgrade request would."""
    c = frame_client()
    sid = ws_connect(c, "/ws/echo")
    c.send_data(sid, ws_frame(TEXT, b"early bird"))
    assert wait_status(c, sid) == 200, c.stream(sid).frames_str()
    frames = read_ws(c, sid, 1)
    assert frames and frames[0] == (TEXT, b"early bird"), (frames, c.stream(sid).frames_str())
    c.reset(sid)


def test_h2x_800_14_tunnel_timeout(ws_server, frame_client):
    """Silence in both directions for longer than the tunnel's timeout
    (ProxyPass ... timeout=2 here) ends the stream - with END_STREAM or
    RST_STREAM, never left open - and the backend connection with it; a
    socket with a message every second under the same timeout lives on."""
    c = frame_client()
    quiet = ws_connect(c, "/wsq/echo")
    busy = ws_connect(c, "/wsq/echo")
    assert wait_status(c, quiet) == 200, c.stream(quiet).frames_str()
    assert wait_status(c, busy) == 200, c.stream(busy).frames_str()
    t0 = time.monotonic()
    for i in range(4):
        c.send_data(busy, ws_frame(TEXT, f"tick {i}".encode()))
        assert read_ws(c, busy, i + 1)[i] == (TEXT, f"tick {i}".encode())
        if i < 3:
            c.run(timeout=1.0)
    assert c.wait_stream_end(quiet, timeout=10), c.stream(quiet).frames_str()
    elapsed = time.monotonic() - t0
    assert 1.5 < elapsed < 8, elapsed
    assert c.stream(quiet).ended_by in ("END_STREAM", "RST_STREAM"), c.stream(quiet).frames_str()
    assert not c.stream(busy).ended, c.stream(busy).frames_str()
    c.reset(busy)
    ok = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(ok) and c.stream(ok).status == 200


CHROMIUM_PAGE = """<!doctype html>
<html><head><title>waiting</title></head><body>
<script>
// --virtual-time-budget lets virtual time run ahead whenever no fetch is
// pending, and an open WebSocket is not a fetch: on a slow server (a
// sanitizer build) the budget ran out before the echo came back.  Keep a
// slow fetch in flight until the socket has answered (at most ~20 s).
let done = false;
const ws = new WebSocket("wss://" + location.host + "/ws/echo");
ws.onopen = () => ws.send("hello from chromium");
ws.onmessage = (e) => { document.body.setAttribute("data-echo", e.data); done = true; ws.close(); };
ws.onerror = () => { document.body.setAttribute("data-echo", "ERROR"); done = true; };
(async () => {
  for (let i = 0; i < 40 && !done; i++) {
    try { await (await fetch("/cgi-bin/slow.py?ms=100&s=0.5")).text(); } catch (e) {}
  }
})();
</script>
</body></html>
"""


def test_h2x_800_11_chromium(ws_server, tmp_path):
    """Headless Chromium (Debian's chromium) loads a page over h2 (TLS) and
    opens a WebSocket from it: the socket goes over the same HTTP/2
    connection (the access log has the handshake as HTTP/2.0, not an
    HTTP/1.1 upgrade) and the message echoes."""
    with open(os.path.join(ws_server.docroot, "wstest.html"), "w") as f:
        f.write(CHROMIUM_PAGE)
    dom, stderr = chromium_dump_dom(ws_server.url("/wstest.html", tls=True), str(tmp_path),
                                    budget_ms=15000, timeout=90)
    assert 'data-echo="hello from chromium"' in dom, (dom[-2000:], stderr[-2000:])
    lines = [ln for ln in ws_server.access_log_lines() if "/ws/echo" in ln]
    assert lines, ws_server.access_log_lines()[-5:]
    assert all("HTTP/2.0" in ln for ln in lines), lines


def test_h2x_800_99_setting_absent_when_off(httpd, frame_client):
    """The default (off): no ENABLE_CONNECT_PROTOCOL, and an extended
    CONNECT is malformed for the server: reset, the connection goes on.
    (Last in the file: it puts the module's server back to its default.)"""
    httpd.reconfigure()
    c = frame_client()
    assert c.wait_settings()
    assert c.peer_settings.get(ENABLE_CONNECT_PROTOCOL, 0) == 0, c.peer_settings
    sid = ws_connect(c, "/ws/echo")
    assert c.wait_stream_end(sid)
    assert c.stream(sid).rst_code == ErrorCodes.PROTOCOL_ERROR, c.stream(sid).frames_str()
    ok = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(ok) and c.stream(ok).status == 200
