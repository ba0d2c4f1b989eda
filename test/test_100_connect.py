"""Ways into HTTP/2 (issue 3): h2 over TLS via ALPN, h2c via Upgrade, h2c
with prior knowledge, Protocols per virtual host, ProtocolsHonorOrder, and
HTTP/1.1 beside it all.

The module's server gets extra listeners (free ports) with their own
virtual hosts:
  h1_port   plain, `Protocols http/1.1`
  h1_tls    TLS,   `Protocols http/1.1`
  order_on  TLS,   `Protocols http/1.1 h2`, `ProtocolsHonorOrder on`
  order_off TLS,   `Protocols http/1.1 h2`, `ProtocolsHonorOrder off`
  direct_off plain, `Protocols h2 h2c http/1.1`, `H2Direct off`
  upgrade_off plain, `Protocols h2 h2c http/1.1`, `H2Upgrade off`
  direct_tls TLS,  `Protocols h2 http/1.1`, `H2Direct on`
"""

import http.client
import socket
import ssl

import pytest

from core_helpers import (TEST_HANDLER_CONF, h2c_settings_b64, h2c_upgrade, http1_exchange,
                          read_http1_head, read_rest)
from h2x.clients import curl
from h2x.frames import FrameClient
from h2x.ports import free_ports

pytestmark = pytest.mark.h2

INDEX_TEXT = b"mod_h2x test site"


@pytest.fixture(scope="module", autouse=True)
def ports(httpd, env):
    cert, key = env.cert()
    names = ("h1_port", "h1_tls", "order_on", "order_off", "direct_off", "upgrade_off",
             "direct_tls")
    p = dict(zip(names, free_ports(len(names))))
    tls = f'SSLEngine on\n    SSLCertificateFile "{cert}"\n    SSLCertificateKeyFile "{key}"'
    conf = [TEST_HANDLER_CONF]
    for name, port in p.items():
        conf.append(f"Listen 127.0.0.1:{port}")
    conf.append(f"<VirtualHost 127.0.0.1:{p['h1_port']}>\n    ServerName localhost\n"
                f"    Protocols http/1.1\n</VirtualHost>")
    conf.append(f"<VirtualHost 127.0.0.1:{p['h1_tls']}>\n    ServerName localhost\n"
                f"    Protocols http/1.1\n    {tls}\n</VirtualHost>")
    for name, honor in (("order_on", "on"), ("order_off", "off")):
        conf.append(f"<VirtualHost 127.0.0.1:{p[name]}>\n    ServerName localhost\n"
                    f"    Protocols http/1.1 h2\n    ProtocolsHonorOrder {honor}\n"
                    f"    {tls}\n</VirtualHost>")
    for name, directive in (("direct_off", "H2Direct off"), ("upgrade_off", "H2Upgrade off")):
        conf.append(f"<VirtualHost 127.0.0.1:{p[name]}>\n    ServerName localhost\n"
                    f"    Protocols h2 h2c http/1.1\n    {directive}\n</VirtualHost>")
    conf.append(f"<VirtualHost 127.0.0.1:{p['direct_tls']}>\n    ServerName localhost\n"
                f"    Protocols h2 http/1.1\n    H2Direct on\n    {tls}\n</VirtualHost>")
    httpd.reconfigure(extra_global="\n".join(conf))
    return p


def _alpn(port: int, offer) -> str:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(list(offer))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.selected_alpn_protocol()


# -- h2 over TLS ---------------------------------------------------------------

def test_h2x_100_01_tls_alpn_h2(httpd, frame_client):
    """ALPN offering h2 and http/1.1 selects h2; a request is served over it."""
    assert _alpn(httpd.https_port, ["h2", "http/1.1"]) == "h2"
    r = curl(httpd.url("/index.html", tls=True))
    assert r.exit_code == 0, r
    assert r.http_version == "2" and r.status == 200
    assert INDEX_TEXT in r.body
    c = frame_client(tls=True)
    assert c.alpn == "h2"
    assert c.wait_settings()
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid)
    assert c.stream(sid).status == 200
    assert c.shape(sid) == "HEADERS DATA[ES]"


def test_h2x_100_02_tls_alpn_http11_only_offer(httpd):
    """A client offering only http/1.1 gets http/1.1 on the h2 port."""
    assert _alpn(httpd.https_port, ["http/1.1"]) == "http/1.1"
    r = curl(httpd.url("/index.html", tls=True), http="1.1")
    assert r.http_version == "1.1" and r.status == 200


def test_h2x_100_03_tls_env_vars(httpd, frame_client):
    """Over h2 the request sees HTTP2=on and HTTPS=on (mod_http2 compatible)."""
    c = frame_client(tls=True)
    sid = c.request("GET", "/h2x/env")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 200, s
    lines = s.body.decode().splitlines()
    assert "HTTP2=on" in lines, lines
    assert "HTTPS=on" in lines
    assert "request.protocol=HTTP/2.0" in lines


# -- h2c via Upgrade -------------------------------------------------------------

def test_h2x_100_10_h2c_upgrade_curl(httpd):
    r = curl(httpd.url("/index.html"), http="h2c-upgrade")
    assert r.exit_code == 0, r
    assert r.http_version == "2" and r.status == 200
    assert INDEX_TEXT in r.body
    assert len(r.header_blocks) == 2, r.header_blocks   # 101, then the h2 response


def test_h2x_100_11_h2c_upgrade_frames(httpd, frame_client):
    """101 Switching Protocols, then SETTINGS, then the answer to the upgraded
    request on stream 1, and further streams on the same connection."""
    head, c, sock = h2c_upgrade(httpd, "/index.html")
    assert head.startswith(b"HTTP/1.1 101"), head
    assert b"upgrade: h2c" in head.lower(), head
    frame_client.track(c)
    assert c.wait_settings()
    assert c.wait_stream_end(1), c.stream(1)
    s1 = c.stream(1)
    assert s1.status == 200 and INDEX_TEXT in s1.body
    assert c.shape(1) == "HEADERS DATA[ES]", s1.frames_str()
    sid = c.request("GET", "/1k.txt")
    assert sid == 3
    assert c.wait_stream_end(sid)
    assert c.stream(sid).status == 200 and len(c.stream(sid).body) == 1024


def test_h2x_100_12_h2c_upgrade_head(httpd, frame_client):
    head, c, sock = h2c_upgrade(httpd, "/index.html", method="HEAD")
    assert head.startswith(b"HTTP/1.1 101"), head
    frame_client.track(c)
    assert c.wait_stream_end(1)
    assert c.shape(1) == "HEADERS[ES]", c.stream(1).frames_str()


def test_h2x_100_13_h2c_upgrade_with_body_not_upgraded(httpd):
    """mod_http2 (H2Upgrade): a request with a body is not upgraded; it is
    answered over HTTP/1.1 with the body read."""
    body = b"z" * 5000
    head, c, sock = h2c_upgrade(httpd, "/h2x/echo?discard=1", method="POST", body=body)
    try:
        assert c is None
        assert head.startswith(b"HTTP/1.1 200"), head
        rest = read_rest(sock, timeout=2)
        assert b"5000\n" in rest, rest
    finally:
        sock.close()
    r = curl(httpd.url("/h2x/echo?discard=1"), http="h2c-upgrade", data=body)
    assert r.exit_code == 0, r
    assert r.http_version == "1.1" and r.status == 200
    assert r.body == b"5000\n"


def test_h2x_100_14_h2c_upgrade_refused_on_tls(httpd):
    """Upgrade: h2c over TLS is not allowed (RFC 7540 §3.2: h2c is cleartext):
    answered over HTTP/1.1 without 101."""
    req = (f"GET /index.html HTTP/1.1\r\nHost: {httpd.authority(tls=True)}\r\n"
           f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           f"HTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: close\r\n\r\n").encode()
    out = http1_exchange(httpd.https_port, req, tls=True)
    assert out.startswith(b"HTTP/1.1 200"), out[:200]
    assert INDEX_TEXT in out


# -- h2c with prior knowledge ------------------------------------------------------

def test_h2x_100_20_h2c_prior_knowledge(httpd, frame_client):
    r = curl(httpd.url("/index.html"), http="2-prior")
    assert r.exit_code == 0, r
    assert r.http_version == "2" and r.status == 200
    c = frame_client()
    assert c.wait_settings()
    assert c.run(lambda c: c.settings_acks >= 1, timeout=5)
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid)
    assert c.stream(sid).status == 200
    assert c.shape(sid) == "HEADERS DATA[ES]"


def test_h2x_100_21_h2c_env_vars(httpd, frame_client):
    c = frame_client()
    sid = c.request("GET", "/h2x/env")
    assert c.wait_stream_end(sid)
    lines = c.stream(sid).body.decode().splitlines()
    assert "HTTP2=on" in lines, lines
    assert "HTTPS=on" not in lines
    assert "request.protocol=HTTP/2.0" in lines


def test_h2x_100_22_h2direct_off(httpd, ports, frame_client):
    """H2Direct off: the h2 preface is not taken as HTTP/2 (it is a bad
    HTTP/1.1 request); HTTP/1.1 and the h2c Upgrade still work."""
    port = ports["direct_off"]
    out = http1_exchange(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert not out or out.startswith(b"HTTP/1."), out[:100]
    c = FrameClient("127.0.0.1", port, timeout=3)
    frame_client.track(c)
    c.connect()
    c.run(lambda c: bool(c.settings), timeout=2)
    assert not c.settings, "server spoke HTTP/2 with H2Direct off"
    r = curl(f"http://127.0.0.1:{port}/index.html", http="h2c-upgrade")
    assert r.http_version == "2" and r.status == 200, r
    r = curl(f"http://127.0.0.1:{port}/index.html", http="1.1")
    assert r.status == 200


def test_h2x_100_23_h2upgrade_off(httpd, ports):
    """H2Upgrade off: Upgrade: h2c is ignored (answered over HTTP/1.1),
    prior knowledge still works."""
    port = ports["upgrade_off"]
    r = curl(f"http://127.0.0.1:{port}/index.html", http="h2c-upgrade")
    assert r.exit_code == 0, r
    assert r.http_version == "1.1" and r.status == 200
    assert len(r.header_blocks) == 1
    r = curl(f"http://127.0.0.1:{port}/index.html", http="2-prior")
    assert r.http_version == "2" and r.status == 200


# -- Protocols per virtual host -------------------------------------------------------

def test_h2x_100_30_vhost_http11_only_plain(httpd, ports, frame_client):
    """A vhost with `Protocols http/1.1`: no upgrade, and the h2 preface is
    not taken as HTTP/2."""
    port = ports["h1_port"]
    r = curl(f"http://127.0.0.1:{port}/index.html", http="h2c-upgrade")
    assert r.exit_code == 0, r
    assert r.http_version == "1.1" and r.status == 200
    assert INDEX_TEXT in r.body
    out = http1_exchange(port, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    assert not out or out.startswith(b"HTTP/1."), out[:100]
    c = FrameClient("127.0.0.1", port, timeout=3)
    frame_client.track(c)
    c.connect()
    c.run(lambda c: bool(c.settings), timeout=2)
    assert not c.settings, "server sent SETTINGS on an http/1.1-only vhost"


def test_h2x_100_31_vhost_http11_only_tls(httpd, ports):
    port = ports["h1_tls"]
    assert _alpn(port, ["h2", "http/1.1"]) == "http/1.1"
    r = curl(f"https://localhost:{port}/index.html")
    assert r.exit_code == 0, r
    assert r.http_version == "1.1" and r.status == 200


def test_h2x_100_32_protocols_honor_order_on(httpd, ports):
    """`Protocols http/1.1 h2` + ProtocolsHonorOrder on: the server's
    preference wins over the client's h2-first offer."""
    assert _alpn(ports["order_on"], ["h2", "http/1.1"]) == "http/1.1"
    assert _alpn(ports["order_on"], ["h2"]) == "h2"


def test_h2x_100_33_protocols_honor_order_off(httpd, ports):
    """ProtocolsHonorOrder off: the client's order wins."""
    assert _alpn(ports["order_off"], ["h2", "http/1.1"]) == "h2"
    assert _alpn(ports["order_off"], ["http/1.1", "h2"]) == "http/1.1"
    r = curl(f"https://localhost:{ports['order_off']}/index.html")
    assert r.http_version == "2" and r.status == 200


# -- HTTP/1.1 beside it -------------------------------------------------------------------

@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_h2x_100_40_http11_keepalive(httpd, tls):
    """Several HTTP/1.1 requests on one keep-alive connection, on both ports."""
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        conn = http.client.HTTPSConnection("127.0.0.1", httpd.https_port, context=ctx,
                                           timeout=10)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", httpd.http_port, timeout=10)
    try:
        for path, expect in (("/index.html", INDEX_TEXT), ("/1k.txt", None),
                             ("/h2x/status?n=100", None), ("/cgi-bin/hello.py", None)):
            conn.request("GET", path)
            resp = conn.getresponse()
            body = resp.read()
            assert resp.status == 200, (path, resp.status)
            assert resp.version == 11
            if expect:
                assert expect in body
        conn.request("POST", "/h2x/echo?discard=1", body=b"q" * 70000)
        resp = conn.getresponse()
        assert resp.status == 200 and resp.read() == b"70000\n"
        assert conn.sock is not None       # still the same connection
    finally:
        conn.close()


def test_h2x_100_41_http11_and_h2_side_by_side(httpd, frame_client):
    """An open h2 connection does not disturb HTTP/1.1 clients and vice versa."""
    c = frame_client()
    sid = c.request("GET", "/h2x/delay?s=0.5&n=10")
    for _ in range(3):
        r = curl(httpd.url("/1k.txt"), http="1.1")
        assert r.status == 200 and len(r.body) == 1024
    assert c.wait_stream_end(sid)
    assert c.stream(sid).status == 200
    sid2 = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid2)
    assert len(c.stream(sid2).body) == 1024


# -- h2c Upgrade edge cases, H2Direct over TLS ---------------------------------------


def _upgrade_raw(httpd, settings_lines):
    sock = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    req = (f"GET /index.html HTTP/1.1\r\nHost: {httpd.authority()}\r\n"
           f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           + "".join(f"HTTP2-Settings: {v}\r\n" for v in settings_lines) + "\r\n")
    sock.sendall(req.encode())
    try:
        return read_rest(sock, timeout=2)
    finally:
        sock.close()


def test_h2x_100_15_upgrade_two_http2_settings_not_upgraded(httpd):
    """RFC 7540 §3.2.1: "A server MUST NOT upgrade the connection to
    HTTP/2 if this header field is not present or if more than one is
    present."  Two HTTP2-Settings fields: answered over HTTP/1.1."""
    out = _upgrade_raw(httpd, [h2c_settings_b64(), h2c_settings_b64()])
    assert out.startswith(b"HTTP/1.1 200"), out[:120]
    assert INDEX_TEXT in out


@pytest.mark.parametrize("value", ["AAA", "AAMAAABkAA"], ids=["2-bytes", "7-bytes"])
def test_h2x_100_16_upgrade_bad_http2_settings(httpd, value):
    """an HTTP2-Settings value that does not decode to a SETTINGS payload
    (length not a multiple of 6) must not leave the client with a 101 and
    then a silent close: either no upgrade (HTTP/1.1 answer), or after 101 a
    GOAWAY(PROTOCOL_ERROR) (RFC 7540 §3.2.1, §6.5); and no [error] log line
    a client can trigger at will."""
    out = _upgrade_raw(httpd, [value])
    if out.startswith(b"HTTP/1.1 101"):
        rest = out.split(b"\r\n\r\n", 1)[1]
        c = FrameClient("127.0.0.1", httpd.http_port)
        c._inbuf += rest
        frames = []
        while len(c._inbuf) >= 9:
            n = int.from_bytes(c._inbuf[0:3], "big")
            if len(c._inbuf) < 9 + n:
                break
            frames.append(c._describe(bytes(c._inbuf[:9]), bytes(c._inbuf[9:9 + n])))
            del c._inbuf[:9 + n]
        assert any(f.type == "GOAWAY" for f in frames), (out[:200], [str(f) for f in frames])
    else:
        assert out.startswith(b"HTTP/1.1 "), out[:120]


def test_h2x_100_24_h2direct_on_tls(httpd, ports, frame_client):
    """mod_http2's `H2Direct on` in a TLS vhost: a TLS client that sends
    the h2 preface without ALPN is spoken to in h2 (mod_http2
    h2_c1_can_direct(): direct on + h2 allowed by Protocols)."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE          # no ALPN offered
    raw = socket.create_connection(("127.0.0.1", ports["direct_tls"]), timeout=10)
    c = FrameClient("127.0.0.1", ports["direct_tls"], tls=True)
    frame_client.track(c)
    c.sock = ctx.wrap_socket(raw, server_hostname="localhost")
    assert c.sock.selected_alpn_protocol() is None
    c.send_preface()
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid, timeout=5), c.frames
    assert c.stream(sid).status == 200


def _raw_frames(buf: bytes):
    """(type, flags, stream id, payload length) of the whole frames in buf."""
    out, pos = [], 0
    while pos + 9 <= len(buf):
        length = int.from_bytes(buf[pos:pos + 3], "big")
        if pos + 9 + length > len(buf):
            break
        out.append((buf[pos + 3], buf[pos + 4],
                    int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7fffffff, length))
        pos += 9 + length
    return out


def test_h2x_100_17_h2c_upgrade_data_waits_for_settings_ack(httpd):
    """After the 101 of an h2c Upgrade, stream 1's DATA waits until the
    client has acknowledged the server's SETTINGS: clients that keep what
    follows the 101 in a fixed buffer fail when the initial 64 KiB window
    of DATA arrives with it (curl 7.88: "connection buffer size is too small
    to store data following HTTP Upgrade response header", in ~1 of 200
    upgraded downloads of 100 KB; Java's HttpClient alike). Seen on the
    wire: SETTINGS and stream 1's HEADERS, no DATA while the client is
    silent; after the client's preface, SETTINGS and SETTINGS ACK the
    whole body with END_STREAM."""
    httpd.make_file("/up100/100k.bin", 100_000)
    sock = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    try:
        req = (f"GET /up100/100k.bin HTTP/1.1\r\nHost: {httpd.authority()}\r\n"
               f"Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
               f"HTTP2-Settings: {h2c_settings_b64()}\r\n\r\n")
        sock.sendall(req.encode())
        head = read_http1_head(sock)
        assert head.startswith(b"HTTP/1.1 101"), head
        early = bytearray()
        sock.settimeout(0.5)
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    break
                early += data
        except socket.timeout:
            pass
        frames = _raw_frames(bytes(early))
        assert frames and frames[0][0] == 0x4, frames          # SETTINGS first
        assert not [f for f in frames if f[0] == 0x0], f"DATA before the ACK: {frames}"
        assert [f for f in frames if f[0] == 0x1 and f[2] == 1], frames   # HEADERS
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        # SETTINGS_INITIAL_WINDOW_SIZE 1 MiB, its ACK of ours, and 1 MiB
        # more for the connection: the whole body may come at once.
        settings = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x04\x00\x10\x00\x00"
        ack = b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
        window = b"\x00\x00\x04\x08\x00\x00\x00\x00\x00" + (1 << 20).to_bytes(4, "big")
        sock.sendall(preface + settings + ack + window)
        rest = bytearray()
        sock.settimeout(5)
        body = 0
        while True:
            data = sock.recv(65536)
            assert data, "connection closed before the body ended"
            rest += data
            frames = _raw_frames(bytes(rest))
            body = sum(f[3] for f in frames if f[0] == 0x0 and f[2] == 1)
            if [f for f in frames if f[0] == 0x0 and f[2] == 1 and f[1] & 0x1]:
                break
        assert body == 100_000, frames
    finally:
        sock.close()
