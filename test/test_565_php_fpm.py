"""565: PHP on PHP-FPM behind mod_proxy_fcgi, the hosting set-up.

Debian's php8.2-fpm with httpd the way its php8.2-fpm.conf sets it up:
`SetHandler "proxy:unix:<socket>|fcgi://localhost"` for *.php, so every
PHP request is a mod_proxy_fcgi request to a PHP-FPM pool. test_556 does
the same with a FastCGI responder of our own; this is the real one, with
PHP's own body parsing ($_FILES, php://input), output buffering and
flush(), and fastcgi_finish_request().

The test starts its own PHP-FPM master (in the foreground, as a child of
the test, pool user www-data, a Unix socket in the server root) and
stops it by pid; the machine's php8.2-fpm service is never used.

Checked with the raw-frame client over h2c and h2: what PHP sees
(SERVER_PROTOCOL, HTTP2, HTTPS), raw and multipart uploads byte-exact
(with and without content-length), downloads by echo and readfile(),
bodiless 200/204/304 and HEAD ending on HEADERS, lines flushed 300 ms
apart arriving as flushed, fastcgi_finish_request() ending the stream
while the script runs on, 20 parallel streams, a script stalled
mid-body cut by ProxyTimeout (reset when short of its Content-Length),
and a client reset of a sleeping script.
"""

import hashlib
import os
import signal
import subprocess
import time

import pytest

from app_helpers import (body_of, check_timed_lines, get, h2_environ, install_php, md5_line,
                         mixed_streams, php_downloads, php_pattern, post, reset_while_sleeping)
from core_helpers import assert_flushed_end, assert_headers_only

pytestmark = pytest.mark.h2

PHP_FPM = "/usr/sbin/php-fpm8.2"
KIB = 1024
MIB = 1024 * KIB
PROXY_TIMEOUT = 2
P = "/p565"


def _fpm_conf(root: str, sock: str) -> str:
    return f"""[global]
pid = {root}/run/php-fpm.pid
error_log = {root}/logs/php-fpm.log
daemonize = no

[h2x565]
user = www-data
group = www-data
listen = {sock}
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = static
pm.max_children = 12
catch_workers_output = yes
php_admin_value[output_buffering] = 4096
php_admin_value[post_max_size] = 16M
php_admin_value[upload_max_filesize] = 16M
php_admin_value[max_input_time] = 60
php_admin_value[upload_tmp_dir] = {root}/php-tmp
"""


@pytest.fixture(scope="module")
def server(httpd, env):
    if not os.path.exists(PHP_FPM):
        pytest.skip(f"{PHP_FPM} is missing (Debian package php8.2-fpm)")
    proxy_fcgi = env.apache_module("proxy_fcgi")
    assert proxy_fcgi, "Debian's mod_proxy_fcgi.so is part of apache2"
    root = httpd.root
    sock = os.path.join(root, "run", "php-fpm.sock")
    docdir, _ = install_php(httpd, P)
    conf = os.path.join(root, "conf", "php-fpm.conf")
    with open(conf, "w") as f:
        f.write(_fpm_conf(root, sock))
    fpm = subprocess.Popen([PHP_FPM, "--nodaemonize", "--fpm-config", conf],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while not os.path.exists(sock) and fpm.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert os.path.exists(sock), f"PHP-FPM did not start: {_fpm_log(root)}"
    try:
        httpd.reconfigure(extra_global=f"""
LoadModule proxy_fcgi_module {proxy_fcgi}
ProxyTimeout {PROXY_TIMEOUT}
<Directory "{docdir}">
    <FilesMatch "\\.php$">
        SetHandler "proxy:unix:{sock}|fcgi://localhost"
    </FilesMatch>
</Directory>
""")
        yield httpd
    finally:
        fpm.send_signal(signal.SIGQUIT)       # graceful: workers finish
        try:
            fpm.wait(timeout=10)
        except subprocess.TimeoutExpired:
            fpm.kill()
            fpm.wait()
        httpd.reconfigure()


def _fpm_log(root: str) -> str:
    try:
        with open(os.path.join(root, "logs", "php-fpm.log")) as f:
            return f.read()[-2000:]
    except OSError as e:
        return str(e)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_565_01_server_vars(server, frame_client, tls):
    """PHP sees an HTTP/2 request over its transport."""
    env = h2_environ(frame_client(tls=tls), f"{P}/env.php")
    assert env["REQUEST_SCHEME"] == ("https" if tls else "http"), env
    assert env["HTTPS"] == ("on" if tls else None), env


@pytest.mark.parametrize("cl", [True, False], ids=["length", "no-length"])
@pytest.mark.parametrize("size", [0, 1, 16384, 65535, 65537, 3 * MIB + 3])
def test_h2x_565_02_raw_upload_exact(server, frame_client, size, cl):
    """php://input holds the request body byte-exact when it has a
    content-length. Without one PHP gets either the whole body or none,
    as from an HTTP/1.1 client that sends it chunked: mod_proxy_fcgi
    passes a CONTENT_LENGTH only for a body it has read ahead whole (a
    small one that has arrived), and PHP-FPM reads no body without one."""
    body = body_of(size, str(cl))
    s = post(frame_client(tls=size % 2 == 1, timeout=30), f"{P}/echo.php", body, with_length=cl)
    if cl:
        assert s.body == md5_line(body)
    else:
        assert s.body in (md5_line(body), md5_line(b"")), s.body


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_565_03_multipart_upload(server, frame_client, tls):
    """A multipart form with two files (one of 2 MiB) and a field, sent
    in odd-sized DATA frames: PHP's parser gets every file byte-exact."""
    files = {"a": ("one.bin", body_of(2 * MIB + 1, "a")), "b": ("two.txt", b"hello\r\n--x\r\n")}
    field = body_of(5000, "field").hex()
    boundary = "h2x565boundaryZ"
    parts = []
    for name, (fname, data) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; '
                     f'filename="{fname}"\r\nContent-Type: application/octet-stream\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
                 f'{field}\r\n--{boundary}--\r\n'.encode())
    body = b"".join(parts)
    c = frame_client(tls=tls, timeout=30)
    sid = c.request("POST", f"{P}/upload.php", end_stream=False,
                    headers=[("content-type", f"multipart/form-data; boundary={boundary}"),
                             ("content-length", str(len(body)))])
    pos = 0
    while pos < len(body):
        n = 7777 if pos % 2 else 12345
        assert c.send_data(sid, body[pos:pos + n], end_stream=pos + n >= len(body), timeout=20)
        pos += n
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200, s
    assert_flushed_end(s)
    want = "".join(f"{k} {fn} 0 {len(d)} {hashlib.md5(d).hexdigest()}\n"
                   for k, (fn, d) in sorted(files.items()))
    want += f"field note {hashlib.md5(field.encode()).hexdigest()}\n"
    assert s.body.decode() == want


@pytest.mark.parametrize("how", ["echo-length", "echo-no-length", "readfile"])
def test_h2x_565_04_download_exact(server, frame_client, how):
    """3 MiB from PHP (echoed in 64 KiB pieces, with and without a
    Content-Length, and by readfile()) arrive byte-exact over h2c and h2."""
    php_downloads(frame_client, os.path.join(server.docroot, P.strip("/")), P, how)


@pytest.mark.parametrize("status", [200, 204, 304])
def test_h2x_565_05_no_body(server, frame_client, status):
    """A script that answers without a body (a 200 with Content-Length 0,
    a 204, a 304) ends its stream on the HEADERS frame, over h2c and h2."""
    for tls in (False, True):
        c = frame_client(tls=tls)
        assert_headers_only(get(c, f"{P}/empty.php?s={status}"), status)


@pytest.mark.parametrize("path", ["env.php", "big.php?size=100000&cl=1", "big.php?size=100000",
                                  "readfile.php?name=f565.bin"],
                         ids=["env", "big-length", "big-no-length", "readfile"])
def test_h2x_565_06_head(server, frame_client, path):
    """HEAD runs the script as GET does; the answer ends on its HEADERS."""
    c = frame_client(tls=True)
    assert_headers_only(get(c, f"{P}/{path}", method="HEAD"), 200)


def test_h2x_565_07_flushed_lines(server, frame_client):
    """Lines a script flush()es 300 ms apart arrive as they are flushed
    (mod_proxy_fcgi passes each record on): each less than 250 ms after
    its own time stamp, the first long before the last."""
    for tls in (False, True):
        c = frame_client(tls=tls)
        check_timed_lines(get(c, f"{P}/lines.php?n=4&ms=300", timeout=15), 4, 0.3)


def test_h2x_565_08_fastcgi_finish_request(server, frame_client):
    """fastcgi_finish_request() completes the answer while the script
    sleeps on for 2 s: the stream ends with END_STREAM long before that,
    and the connection serves the next request meanwhile."""
    c = frame_client(tls=True)
    t0 = time.monotonic()
    s = get(c, f"{P}/finish.php?s=2", timeout=10)
    took = time.monotonic() - t0
    assert s.status == 200 and s.body == b"finished\n", s
    assert_flushed_end(s)
    assert took < 1.5, took
    assert get(c, f"{P}/env.php").status == 200


def test_h2x_565_09_parallel_streams(server, frame_client):
    """20 streams at once on one connection (downloads, uploads, flushed
    lines, 204s), each whole and ended cleanly."""
    mixed_streams(frame_client(tls=True, timeout=30),
                  lambda size, cl: (f"{P}/big.php?size={size}&cl={int(cl)}", php_pattern(size)),
                  f"{P}/echo.php", f"{P}/lines.php?", f"{P}/empty.php?s=204")


@pytest.mark.expect_log(r"AH01075|AH01110|AH01102|AH00898")
@pytest.mark.parametrize("cl", [False, True], ids=["no-length", "length"])
def test_h2x_565_10_stalled_script(server, frame_client, cl):
    """A script that stalls mid-body after 1000 flushed bytes: ProxyTimeout
    (2 s) cuts mod_proxy_fcgi's wait, and the stream is reset - the body
    is incomplete - never ended with END_STREAM; the connection's other
    streams carry on meanwhile and after."""
    c = frame_client(tls=True, timeout=30)
    t0 = time.monotonic()
    sid = c.request("GET", f"{P}/stall.php?s=20&cl={int(cl)}")
    other = get(c, f"{P}/env.php", timeout=5)
    assert other.status == 200
    assert c.wait_stream_end(sid, timeout=PROXY_TIMEOUT + 10), c.stream(sid).frames_str()
    took = time.monotonic() - t0
    s = c.stream(sid)
    assert s.status == 200 and len(s.body) == 1000, s
    assert s.ended_by == "RST_STREAM", s
    assert PROXY_TIMEOUT - 0.5 < took < PROXY_TIMEOUT + 8, took
    assert get(c, f"{P}/env.php").status == 200


def test_h2x_565_11_client_reset_sleeping_script(server, frame_client):
    """The client resets a request whose script sleeps: the connection
    serves the next request at once, and nothing more is sent on the
    reset stream."""
    reset_while_sleeping(frame_client(tls=True), f"{P}/sleep.php?s=1.5", f"{P}/env.php",
                         next_within=1.0, linger=1.5)
