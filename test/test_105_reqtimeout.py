"""mod_reqtimeout and HTTP/2 connections (issue 9).

mod_reqtimeout's handshake and header stages guard a connection until the
client's HTTP/2 preface and first SETTINGS arrive; after that the
connection is HTTP/2 and its streams have their own timeouts: a
RequestReadTimeout meant for one HTTP/1.1 request must not end it
(mod_http2's test_105_03). A client that sends half a preface is still cut
off by the header timeout.
"""

import socket
import time

import pytest

from core_helpers import TEST_HANDLER_CONF

pytestmark = pytest.mark.h2


@pytest.fixture(scope="module", autouse=True)
def _config(httpd):
    httpd.reconfigure(extra_global=TEST_HANDLER_CONF
                      + "\nRequestReadTimeout handshake=1 header=2 body=10\nKeepAliveTimeout 30\n")


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_105_01_connection_outlives_request_timeouts(httpd, frame_client, tls):
    """Requests 1.5 s apart over 6 s on one connection, a slow handler
    among them: all served, no GOAWAY."""
    c = frame_client(tls=tls)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 6:
        sid = c.request("GET", "/h2x/delay?s=1.5&n=10")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid)
        assert c.stream(sid).status == 200, c.stream(sid)
        c.run(timeout=1.5)
        assert c.goaway is None
    assert not c.closed


def test_h2x_105_02_half_preface_cut_off(httpd):
    """Half of the h2c preface, then silence: closed by the header timeout
    (2 s), well before KeepAliveTimeout."""
    s = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    try:
        s.sendall(b"PRI * HTTP/2.0\r\n")
        t0 = time.monotonic()
        try:
            while s.recv(4096):
                pass
        except (ConnectionResetError, socket.timeout):
            pass
        took = time.monotonic() - t0
        assert took < 6, f"connection held {took:.1f}s"
    finally:
        s.close()


PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def _first_bytes(s: socket.socket, timeout: float = 5.0) -> bytes:
    s.settimeout(timeout)
    try:
        return s.recv(4096)
    except socket.timeout:
        return b""


@pytest.mark.parametrize("cut", [3, 12, 23])
def test_h2x_105_03_split_preface(httpd, cut):
    """The preface in two TCP writes 20 ms apart (a client may send it
    so): still h2c with prior knowledge - the server answers with its
    SETTINGS frame (type 4 on stream 0), not with an HTTP/1.1 error."""
    s = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        s.sendall(PREFACE[:cut])
        time.sleep(0.02)
        s.sendall(PREFACE[cut:] + SETTINGS_EMPTY)
        data = _first_bytes(s)
        assert len(data) >= 9 and data[3] == 4 and data[5:9] == b"\0\0\0\0", data[:80]
    finally:
        s.close()


def test_h2x_105_04_preface_rest_too_late(httpd):
    """The second half of the preface 1 s after the first: the connection
    went to HTTP/1.1 meanwhile, which answers the "PRI" line with an error
    and closes (as httpd does without an HTTP/2 module), quickly."""
    s = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    try:
        s.sendall(PREFACE[:12])
        time.sleep(1.0)
        t0 = time.monotonic()
        s.sendall(PREFACE[12:])
        data = _first_bytes(s)
        assert data.startswith(b"HTTP/1.1 "), data[:80]
        assert time.monotonic() - t0 < 2
    finally:
        s.close()
