"""Idle HTTP/2 connections, for the memory-per-connection measurement.

open_idle() opens N connections to a server (h2c with prior knowledge or
TLS with ALPN h2), sends the client preface and an empty SETTINGS frame on
each, reads until the server's SETTINGS arrived, acknowledges it, and
leaves the connection open and idle: no stream is ever opened.
"""

import socket
import ssl
import struct
import time
from typing import List

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS = 0x4
ACK = 0x1


def _frame(ftype: int, flags: int, sid: int = 0, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", sid) \
        + payload


def _await_settings(sock, deadline: float) -> bool:
    """Read frames until a non-ACK SETTINGS frame arrived."""
    buf = b""
    while time.monotonic() < deadline:
        while len(buf) >= 9:
            length = int.from_bytes(buf[:3], "big")
            if len(buf) < 9 + length:
                break
            ftype, flags = buf[3], buf[4]
            buf = buf[9 + length:]
            if ftype == SETTINGS and not flags & ACK:
                return True
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            continue
        if not chunk:
            return False
        buf += chunk
    return False


def open_idle(port: int, count: int, tls: bool, timeout: float = 10.0) -> List[socket.socket]:
    """Open `count` idle HTTP/2 connections; returns the sockets (close them
    with close_all).  Raises RuntimeError if a connection fails."""
    ctx = None
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["h2"])
    socks = []
    try:
        for i in range(count):
            s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            if ctx is not None:
                s = ctx.wrap_socket(s, server_hostname="localhost")
                if s.selected_alpn_protocol() != "h2":
                    raise RuntimeError(f"connection {i}: ALPN {s.selected_alpn_protocol()!r}")
            socks.append(s)
            s.sendall(PREFACE + _frame(SETTINGS, 0))
            if not _await_settings(s, time.monotonic() + timeout):
                raise RuntimeError(f"connection {i}: no SETTINGS from the server")
            s.sendall(_frame(SETTINGS, ACK))
    except BaseException:
        close_all(socks)
        raise
    return socks


def close_all(socks: List[socket.socket]):
    for s in socks:
        try:
            s.close()
        except OSError:
            pass
