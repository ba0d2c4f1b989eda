"""What the application-server tests share (test_564 mod_wsgi, test_565
PHP-FPM, test_566 mod_php): each application answers the same kinds of
requests - a download of a known pattern, an echo of the body's md5, lines
with time stamps flushed as they are written, bodiless statuses - and these
helpers send them and check what the client saw."""

import hashlib
import json
import os
import shutil
import time
from typing import Callable, Tuple

from core_helpers import assert_flushed_end, assert_headers_only


def body_of(size: int, tag: str) -> bytes:
    """A body that is no repeating pattern: a lost, doubled or shifted byte
    changes its md5."""
    return hashlib.shake_256(b"h2x-app-%d-%s" % (size, tag.encode())).digest(size) \
        if size else b""


def php_pattern(size: int) -> bytes:
    """What test/php/big.php sends for `size`."""
    block = hashlib.sha256(b"h2x-565-%d" % size).digest() * 2048
    return (block * (size // len(block) + 1))[:size]


def md5_line(data: bytes) -> bytes:
    """What the echo applications answer: "<md5> <length>\\n"."""
    return f"{hashlib.md5(data).hexdigest()} {len(data)}\n".encode()


def get(c, path: str, method: str = "GET", headers=(), timeout: float = 20):
    """One request without a body; the ended stream's record."""
    sid = c.request(method, path, headers=list(headers))
    assert c.wait_stream_end(sid, timeout=timeout), c.stream(sid).frames_str()
    return c.stream(sid)


def post(c, path: str, body: bytes, with_length: bool = True, timeout: float = 30):
    """POST `body` (with or without a content-length); the ended stream's
    record, checked to be a 200 ended as a flushed stream."""
    headers = [("content-type", "application/octet-stream")]
    if with_length:
        headers.append(("content-length", str(len(body))))
    sid = c.request("POST", path, headers=headers, body=body if body else None)
    assert c.wait_stream_end(sid, timeout=timeout), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200, s
    assert_flushed_end(s)
    return s


def check_download(s, want: bytes, what=None):
    """A 200 with exactly `want` as its body, ended as a flushed stream."""
    assert s.status == 200, s
    assert_flushed_end(s)
    assert len(s.body) == len(want) and s.body == want, (what, len(s.body), len(want))


def check_timed_lines(s, n: int, interval: float):
    """`n` lines "line <i> <wall-clock stamp>" written `interval` s apart,
    each flushed: each arrived less than 250 ms after its own stamp, and
    the last well after the first."""
    assert s.status == 200, s
    assert_flushed_end(s)
    lines = s.body.decode().splitlines()
    assert [ln.split()[1] for ln in lines] == [str(i) for i in range(n)], lines
    data = [f for f in s.frames if f.type == "DATA" and f.length]
    wall_minus_mono = time.time() - time.monotonic()
    offsets = [f.t + wall_minus_mono - float(ln.split()[2])
               for f in data for ln in f.data.decode().splitlines()]
    assert len(offsets) == n and max(offsets) < 0.25, offsets
    assert data[-1].t - data[0].t > (n - 1) * interval / 2, [f.t for f in data]


def mixed_streams(c, big: Callable[[int, bool], Tuple[str, bytes]], echo: str,
                  lines: str, no_content: str, count: int = 20):
    """`count` streams at once on one connection, in turn: a download
    (big(size, with_length) gives its path and body), a POST to `echo`, 3
    flushed lines from `lines` (a path ending in its query, to which n=3&ms=50
    is added), a 204 from `no_content`. Every one whole and ended cleanly."""
    want = {}
    for i in range(count):
        kind = i % 4
        if kind == 0:
            path, body = big(200_000 + i, bool(i % 2))
            want[c.request("GET", path)] = ("body", body)
        elif kind == 1:
            body = body_of(150_000 + i, "mixed")
            sid = c.request("POST", echo, headers=[("content-length", str(len(body)))],
                            body=body)
            want[sid] = ("body", md5_line(body))
        elif kind == 2:
            want[c.request("GET", f"{lines}n=3&ms=50")] = ("lines", 3)
        else:
            want[c.request("GET", no_content)] = ("none", 204)
    assert c.run(until=lambda cl: all(cl.stream(s).ended for s in want), timeout=30), \
        [c.stream(s) for s in want if not c.stream(s).ended]
    for sid, (kind, w) in want.items():
        s = c.stream(sid)
        if kind == "none":
            assert_headers_only(s, w)
        elif kind == "body":
            check_download(s, w, sid)
        else:
            assert s.status == 200, s
            assert_flushed_end(s)
            assert len(s.body.decode().splitlines()) == w, s.body


def reset_while_sleeping(c, sleep_path: str, next_path: str, next_within: float,
                         linger: float):
    """The client resets a stream whose application sleeps: the next
    request on the connection is answered within `next_within` s, and
    nothing more comes on the reset stream in the `linger` s after it (the
    application's late answer is dropped). Ends with one more request."""
    sid = c.request("GET", sleep_path)
    c.run(timeout=0.2)
    c.reset(sid)
    t0 = time.monotonic()
    nxt = get(c, next_path, timeout=5)
    took = time.monotonic() - t0
    assert nxt.status == 200, nxt
    assert took < next_within, took
    c.run(timeout=linger)
    assert not [f for f in c.stream(sid).frames if f.type in ("HEADERS", "DATA")], \
        c.stream(sid).frames_str()
    assert get(c, next_path).status == 200 and not c.goaways


def h2_environ(c, path: str) -> dict:
    """GET `path`, an application that answers its environment as JSON;
    check that it saw an HTTP/2 request (SERVER_PROTOCOL, the HTTP2 and
    H2_STREAM_ID variables) and return the environment."""
    s = get(c, path)
    assert s.status == 200, s
    assert_flushed_end(s)
    env = json.loads(s.body)
    assert env["SERVER_PROTOCOL"] == "HTTP/2.0", env
    assert env["HTTP2"] == "on", env
    assert env["H2_STREAM_ID"] == str(s.sid), env
    return env


def php_downloads(frame_client, docdir: str, prefix: str, how: str):
    """3 MiB from test/php over h2c and h2: echoed by big.php with and
    without a Content-Length ("echo-length", "echo-no-length"), or f565.bin
    of `docdir` by readfile.php ("readfile"); byte-exact."""
    size = 3 * 1024 * 1024 + 5
    for tls in (False, True):
        c = frame_client(tls=tls, timeout=30)
        if how == "readfile":
            s = get(c, f"{prefix}/readfile.php?name=f565.bin", timeout=30)
            with open(os.path.join(docdir, "f565.bin"), "rb") as f:
                want = f.read()
        else:
            s = get(c, f"{prefix}/big.php?size={size}&cl={int(how == 'echo-length')}",
                    timeout=30)
            want = php_pattern(size)
        check_download(s, want, tls)


PHP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "php")


def install_php(httpd, prefix: str):
    """test/php's scripts under `prefix` of httpd's document root, with the
    3 MiB f565.bin beside them, and a PHP upload directory owned by
    www-data; returns (script directory, upload directory)."""
    docdir = os.path.join(httpd.docroot, prefix.strip("/"))
    os.makedirs(docdir, exist_ok=True)
    for name in os.listdir(PHP_DIR):
        shutil.copy(os.path.join(PHP_DIR, name), os.path.join(docdir, name))
        os.chmod(os.path.join(docdir, name), 0o644)
    httpd.make_file(f"{prefix}/f565.bin", 3 * 1024 * 1024 + 5)
    tmp = os.path.join(httpd.root, "php-tmp")
    os.makedirs(tmp, exist_ok=True)
    shutil.chown(tmp, "www-data", "www-data")
    return docdir, tmp
