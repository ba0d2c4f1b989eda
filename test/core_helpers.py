"""Helpers shared by the core-engine tests (test_100 .. test_400, issue 3).

Not a test file (pytest collects only test_*.py).  conftest.py puts this
directory on sys.path, so the tests `import core_helpers`.
"""

import base64
import hashlib
import os
import socket
import ssl
import time
from typing import Dict, Iterable, List, Optional, Tuple

from h2.settings import SettingCodes
from hyperframe.frame import SettingsFrame

from h2x.frames import FrameClient

# Response header fields that are connection-specific (RFC 9113 §8.2.2) or
# differ per response by nature; they are left out of HTTP/1.1 vs h2 compares.
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding",
              "upgrade", "te", "trailer"}
VOLATILE = {"date"}
CONNECTION_SPECIFIC = {"connection", "keep-alive", "proxy-connection",
                       "transfer-encoding", "upgrade"}

# Handlers of test/mod_h2x_test mapped to locations (for extra_global).
TEST_HANDLER_CONF = "\n".join(
    f"<Location /h2x/{name}>\n    SetHandler h2x-{name}\n</Location>"
    for name in ("status", "stall", "error-bucket", "short-cl", "delay", "stream",
                 "echo", "trailers", "env", "early-hints"))

PATTERN = b"0123456789abcdef"


def pattern_body(n: int) -> bytes:
    """The body mod_h2x_test generates for `n` bytes."""
    return (PATTERN * (n // 16 + 1))[:n]


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def comparable_headers(headers: Dict[str, List[str]],
                       ignore: Iterable[str] = ()) -> Dict[str, List[str]]:
    """Lower-cased names, minus hop-by-hop, date, pseudo-headers and `ignore`."""
    skip = HOP_BY_HOP | VOLATILE | {n.lower() for n in ignore}
    out: Dict[str, List[str]] = {}
    for name, values in headers.items():
        lname = name.lower()
        if lname.startswith(":") or lname in skip:
            continue
        out.setdefault(lname, []).extend(values)
    return out


def parse_env_body(body: bytes) -> Dict[str, str]:
    """NAME=value lines (h2x-env, env.py) into a dict (first value wins)."""
    out: Dict[str, str] = {}
    for line in body.decode("utf-8", errors="replace").splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            out.setdefault(k, v)
    return out


def header_lines(body: bytes) -> List[Tuple[str, str]]:
    """h2x-env's `header.<Name>=value` lines, in arrival order."""
    out = []
    for line in body.decode("utf-8", errors="replace").splitlines():
        if line.startswith("header.") and "=" in line:
            k, v = line[len("header."):].split("=", 1)
            out.append((k, v))
    return out


# -- raw HTTP/1.1 ------------------------------------------------------------

def read_http1_head(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Read one HTTP/1.x response head (up to the blank line), byte by byte,
    so nothing after it is consumed."""
    sock.settimeout(timeout)
    buf = bytearray()
    while not buf.endswith(b"\r\n\r\n"):
        b = sock.recv(1)
        if not b:
            break
        buf += b
    return bytes(buf)


def http1_exchange(port: int, request: bytes, tls: bool = False,
                   timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server sends until it closes
    or stays quiet for a second."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["http/1.1"])
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    try:
        sock.sendall(request)
        sock.settimeout(1.0)
        out = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                data = sock.recv(65536)
            except (socket.timeout, ssl.SSLWantReadError):
                break
            except OSError:
                break
            if not data:
                break
            out += data
        return bytes(out)
    finally:
        sock.close()


def h2c_settings_b64(settings: Optional[Dict[int, int]] = None) -> str:
    """The HTTP2-Settings header value (RFC 7540 §3.2.1: base64url, no padding)."""
    payload = SettingsFrame(0, settings=settings or {int(SettingCodes.ENABLE_PUSH): 0}
                            ).serialize()[9:]
    return base64.urlsafe_b64encode(payload).rstrip(b"=").decode()


def h2c_upgrade(httpd, path: str = "/", method: str = "GET", body: Optional[bytes] = None,
                headers: Iterable[Tuple[str, str]] = (), host: Optional[str] = None
                ) -> Tuple[bytes, Optional[FrameClient], socket.socket]:
    """Send an HTTP/1.1 request with `Upgrade: h2c` to httpd's plain port.

    Returns (response head, client, socket).  On `101 Switching Protocols`
    the client is a FrameClient on that socket that has sent its preface;
    stream 1 is the upgraded request (half-closed by the client).  Otherwise
    client is None and the socket is left for the caller to read the rest.
    """
    sock = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    lines = [f"{method} {path} HTTP/1.1",
             f"Host: {host or httpd.authority()}",
             "Connection: Upgrade, HTTP2-Settings",
             "Upgrade: h2c",
             f"HTTP2-Settings: {h2c_settings_b64()}"]
    lines += [f"{n}: {v}" for n, v in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""))
    head = read_http1_head(sock)
    if not head.startswith(b"HTTP/1.1 101"):
        return head, None, sock
    c = FrameClient("127.0.0.1", httpd.http_port)
    c.sock = sock
    c.send_preface()
    rec = c._stream(1)
    rec.start_time = time.monotonic()
    rec.local_closed = True
    c._next_sid = 3
    return head, c, sock


def read_rest(sock: socket.socket, timeout: float = 3.0) -> bytes:
    sock.settimeout(timeout)
    out = bytearray()
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                break
            out += data
    except (socket.timeout, OSError):
        pass
    return bytes(out)


# -- process memory ---------------------------------------------------------

def rss_kb(pids: Iterable[int]) -> int:
    """Sum of VmRSS (kB) over `pids` that still exist."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            pass
    return total


def httpd_pids(httpd) -> List[int]:
    return httpd._our_processes()


def assert_flushed_end(s):
    """A stream whose handler flushed its body as it went (mod_wsgi after
    every block, mod_proxy_fcgi after every record, PHP's flush()) ended
    with END_STREAM on its last frame: on the last DATA frame, or - the end
    (EOS) came a moment after the last flushed data had left - on a
    zero-length DATA frame right after it (DESIGN.md invariant 4); no
    other zero-length DATA frame."""
    assert s.ended_by == "END_STREAM", s
    kinds = [f for f in s.frames if f.type in ("HEADERS", "DATA")]
    assert kinds and kinds[-1].end_stream, s.frames_str()
    empty = [i for i, f in enumerate(kinds) if f.type == "DATA" and f.length == 0]
    assert empty in ([], [len(kinds) - 1]), s.frames_str()
    if empty:
        assert kinds[-2].type == "DATA" and kinds[-2].length > 0, s.frames_str()


def assert_headers_only(s, status: int):
    """A response without a body: END_STREAM on its HEADERS, nothing else."""
    assert s.status == status, s
    assert s.ended_by == "END_STREAM", s
    kinds = [f for f in s.frames if f.type in ("HEADERS", "DATA", "RST_STREAM")]
    assert len(kinds) == 1 and kinds[0].type == "HEADERS" and kinds[0].end_stream, \
        s.frames_str()


# A CGI that prints its headers and nothing else: no Content-Length, no body.
HEADERS_ONLY_CGI = """#!/usr/bin/python3
import sys
sys.stdout.write("Content-Type: application/octet-stream\\nX-Only: headers\\n\\n")
"""

# Dribbles "line <i>" every 100 ms, ?n= lines (100), as
# application/octet-stream (httpd's filters hold back the first ~0.8 s of a
# text/plain CGI stream); writes its pid to ?pidfile= first; exits when its
# output breaks (the stream was reset).
DRIBBLE_CGI = """#!/usr/bin/python3
import os, signal, sys, time, urllib.parse
signal.signal(signal.SIGPIPE, signal.SIG_DFL)
q = urllib.parse.parse_qs(os.environ.get("QUERY_STRING", ""))
pidfile = q.get("pidfile", [""])[0]
if pidfile.startswith("/tmp/") and ".." not in pidfile:
    with open(pidfile, "w") as f:
        f.write("%d\\n" % os.getpid())
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\\n\\n")
out.flush()
for i in range(int(q.get("n", ["100"])[0])):
    out.write(b"line %d\\n" % i)
    out.flush()
    time.sleep(0.1)
"""


def wait_gone(pidfile, timeout):
    """True when the pid in `pidfile` has exited (within `timeout`)."""
    deadline = time.monotonic() + timeout
    pid = None
    while time.monotonic() < deadline:
        try:
            with open(pidfile) as f:
                pid = int(f.read().strip())
            break
        except (OSError, ValueError):
            time.sleep(0.05)
    assert pid, f"no pid in {pidfile}"
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}"):     # the CGI runs as www-data
            return True
        time.sleep(0.05)
    return False


def pid_alive(pid: int) -> bool:
    """The process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pidfile(path: str, timeout: float = 10.0) -> int:
    """The pid a CGI wrote into `path`, once it is there."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read().strip()
            if text:
                return int(text)
        except (OSError, ValueError):
            pass
        time.sleep(0.05)
    raise AssertionError(f"no pid in {path} after {timeout}s")
