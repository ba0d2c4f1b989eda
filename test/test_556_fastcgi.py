"""556: a FastCGI application behind mod_proxy_fcgi (the PHP-FPM set-up).

Hosting servers run PHP as PHP-FPM behind `ProxyPass ... fcgi://`. The
application here is h2x/fcgi_backend.py, a FastCGI responder speaking the
protocol's records the way PHP-FPM does, so that what is tested is
httpd's own mod_proxy_fcgi in front of it, under mod_h2x: request bodies
byte-exact, large and streamed answers, header-only statuses, and an
application that dies in the middle of its answer (the stream is reset,
never ended as if complete).
"""

import hashlib
import os
import subprocess
import time

import pytest

from h2x.frames import ErrorCodes
from h2x.ports import free_port

pytestmark = pytest.mark.h2

HERE = os.path.dirname(os.path.abspath(__file__))
PATTERN = b"0123456789abcdef"


def body_of(n):
    return (PATTERN * (n // 16 + 1))[:n]


@pytest.fixture(scope="module")
def fcgi_server(httpd, env):
    port = free_port()
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "h2x", "fcgi_backend.py"),
                             str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout.readline().decode().strip() == "ready", proc.stderr.read().decode()
    proxy_fcgi = env.apache_module("proxy_fcgi")
    assert proxy_fcgi, "Debian's mod_proxy_fcgi.so is part of apache2"
    httpd.reconfigure(extra_global=f"""
LoadModule proxy_fcgi_module {proxy_fcgi}
ProxyPass "/fcgi/" "fcgi://127.0.0.1:{port}/app/"
""")
    yield httpd
    httpd.reconfigure()
    proc.terminate()
    proc.wait(timeout=10)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", [0, 1, 16384, 65537, 1 << 20])
def test_h2x_556_01_upload_exact(fcgi_server, frame_client, tls, size):
    """POST bodies reach the application byte-exact."""
    body = hashlib.shake_256(b"h2x-556-%d" % size).digest(size) if size else b""
    c = frame_client(tls=tls)
    sid = c.request("POST", "/fcgi/echo", headers=[("content-length", str(size))],
                    end_stream=not body)
    if body:
        c.send_data(sid, body, end_stream=True)
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == b"%s %d\n" % (hashlib.sha256(body).hexdigest().encode(), size)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("size", [1, 16384, 1 << 20, 5 << 20])
def test_h2x_556_02_download_exact(fcgi_server, frame_client, tls, size):
    """Answers of every size arrive whole and end with END_STREAM.

    httpd drops the application's Content-Length (over HTTP/1.1 the answer
    is chunked) and mod_proxy_fcgi passes each record on flushed, learning
    the end only from FCGI_END_REQUEST: when c1 has sent the last bytes by
    then, the end can only ride a zero-length DATA frame (the one streaming
    case docs/stream-lifecycle.md lists). Only the last frame may be one."""
    c = frame_client(tls=tls)
    sid = c.request("GET", f"/fcgi/big?n={size}")
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body == body_of(size)
    data = [f for f in s.frames if f.type == "DATA"]
    assert data[-1].end_stream and all(len(f.data) for f in data[:-1]), s.frames_str()


def test_h2x_556_03_streamed_lines(fcgi_server, frame_client):
    """Lines the application writes 200 ms apart arrive as it writes them
    (within 150 ms; mod_proxy_fcgi flushes each record)."""
    c = frame_client()
    sid = c.request("GET", "/fcgi/lines?n=5&ms=200")
    assert c.wait_stream_end(sid, timeout=20)
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    offset = time.time() - time.monotonic()
    late, buf = [], b""
    for f in s.frames:
        if f.type == "DATA" and f.data:
            buf += f.data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                i, written = line.split()
                late.append(f.t + offset - float(written))
    assert len(late) == 5, s.body
    assert max(late) < 0.15, late


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.expect_log(r"AH01067", r"AH01075")  # mod_proxy_fcgi: the application went away
def test_h2x_556_04_application_dies_mid_body(fcgi_server, frame_client, tls):
    """The application sends its headers (Content-Length 2000) and 1000
    bytes, then its connection closes: the stream is reset
    (INTERNAL_ERROR), never ended with END_STREAM, no error page appended;
    the other streams and the connection carry on."""
    c = frame_client(tls=tls)
    sids = [c.request("GET", "/fcgi/die?n=1000") for _ in range(5)]
    assert c.wait_all_ended(timeout=15), c.unended()
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "RST_STREAM", s.frames_str()
        assert s.rst_code == ErrorCodes.INTERNAL_ERROR, s.frames_str()
        assert not any(f.end_stream for f in s.frames), s.frames_str()
        assert body_of(1000).startswith(s.body), s.body[-200:]
    ok = c.request("GET", "/fcgi/big?n=100")
    assert c.wait_stream_end(ok, timeout=10) and c.stream(ok).body == body_of(100)
    assert not c.goaways


@pytest.mark.parametrize("status", [200, 204, 304])
def test_h2x_556_05_header_only(fcgi_server, frame_client, status):
    """A 204 or 304 from the application, or a 200 with an empty body (a
    PHP script that prints nothing), ends on its HEADERS frame: no
    zero-length DATA frame (DESIGN.md)."""
    c = frame_client()
    sid = c.request("GET", f"/fcgi/status?s={status}")
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == status and s.ended_by == "END_STREAM", s.frames_str()
    assert c.shape(sid) == "HEADERS[ES]", s.frames_str()


def test_h2x_556_06_head(fcgi_server, frame_client):
    """HEAD through mod_proxy_fcgi: the head only, END_STREAM on HEADERS."""
    c = frame_client()
    sid = c.request("HEAD", "/fcgi/big?n=5000")
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == 200 and s.body == b"", s.frames_str()
    assert c.shape(sid) == "HEADERS[ES]", s.frames_str()
