"""566: PHP in the server process (mod_php) under the prefork MPM.

Debian's libapache2-mod-php8.2 is a PHP built without thread safety, so
Debian switches httpd to prefork when it is installed, and shared hosting
runs much of the world's PHP that way. mod_http2 turns HTTP/2 off under
prefork; mod_h2x serves it with a single worker thread per child, so the
streams of a connection reach PHP one at a time and PHP never runs in two
threads of one process (docs/migrating-from-mod_http2.md). This module
shows it with the real mod_php: the prefork server loads it as Debian's
php8.2.conf does (SetHandler application/x-httpd-php for *.php), with
mod_h2x loaded after the standard modules.

Checked with the raw-frame client over h2c and h2: what PHP sees, uploads
byte-exact with and without content-length (mod_php reads the body up to
its end itself) and multipart ones, downloads by echo and readfile(),
bodiless answers and HEAD, flush()ed lines arriving as flushed, many
streams on one connection and on several connections at once (never two
scripts at the same time in one process), and a client reset of a
sleeping script (the connection answers again when the script is done).

scripts/install-deps installs libapache2-mod-php8.2 and undoes what its
installation does to /etc/apache2 (php8.2 enabled, the MPM switched to
prefork); this test loads it into its own config only.
"""

import hashlib
import os

import pytest

from app_helpers import (body_of, check_timed_lines, get, h2_environ, install_php, md5_line,
                         php_downloads, post, reset_while_sleeping)
from core_helpers import assert_flushed_end, assert_headers_only

pytestmark = pytest.mark.h2

MOD_PHP = "/usr/lib/apache2/modules/libphp8.2.so"
KIB = 1024
MIB = 1024 * KIB
P = "/p566"


@pytest.fixture(scope="module")
def server(httpd, env):
    if not os.path.exists(MOD_PHP):
        pytest.skip(f"{MOD_PHP} is missing (Debian package libapache2-mod-php8.2)")
    docdir, tmp = install_php(httpd, P)
    if env.sanitize:
        # Debian's conf.d loads opcache.so, which PHP opens with
        # RTLD_DEEPBIND, and ASan aborts on that (google/sanitizers issue
        # 611): under the sanitizer build PHP scans an empty directory
        # instead, so it runs without opcache. The normal run keeps
        # Debian's PHP configuration.
        scan = os.path.join(httpd.root, "php-conf.d")
        os.makedirs(scan, exist_ok=True)
        httpd.extra_env["PHP_INI_SCAN_DIR"] = scan
    httpd.reconfigure(mpm="prefork", extra_global=f"""
LoadModule php_module {MOD_PHP}
<Directory "{docdir}">
    <FilesMatch ".+\\.php$">
        SetHandler application/x-httpd-php
    </FilesMatch>
    php_admin_value post_max_size 16M
    php_admin_value upload_max_filesize 16M
    php_admin_value output_buffering 4096
    php_admin_value upload_tmp_dir "{tmp}"
</Directory>
""")
    yield httpd
    httpd.extra_env.pop("PHP_INI_SCAN_DIR", None)
    httpd.reconfigure(mpm="event")


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_566_01_server_vars(server, frame_client, tls):
    """PHP in a prefork child sees an HTTP/2 request over its transport."""
    env = h2_environ(frame_client(tls=tls), f"{P}/env.php")
    assert env["REQUEST_SCHEME"] == ("https" if tls else "http"), env


@pytest.mark.parametrize("cl", [True, False], ids=["length", "no-length"])
@pytest.mark.parametrize("size", [0, 1, 16384, 65537, 3 * MIB + 3])
def test_h2x_566_02_raw_upload_exact(server, frame_client, size, cl):
    """php://input holds the body byte-exact, with and without a
    content-length: mod_php reads the request body to its end."""
    body = body_of(size, str(cl))
    s = post(frame_client(tls=size % 2 == 1, timeout=30), f"{P}/echo.php", body, with_length=cl)
    assert s.body == md5_line(body)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_566_03_multipart_upload(server, frame_client, tls):
    """A multipart form with a 2 MiB file and a field: PHP's parser gets
    the file byte-exact."""
    data = body_of(2 * MIB + 1, "file")
    boundary = "h2x566boundaryQ"
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="a"; filename="one.bin"'
            f'\r\nContent-Type: application/octet-stream\r\n\r\n'.encode() + data
            + f'\r\n--{boundary}\r\nContent-Disposition: form-data; name="note"\r\n\r\n'
              f'hello\r\n--{boundary}--\r\n'.encode())
    c = frame_client(tls=tls, timeout=30)
    sid = c.request("POST", f"{P}/upload.php", body=body,
                    headers=[("content-type", f"multipart/form-data; boundary={boundary}"),
                             ("content-length", str(len(body)))])
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200, s
    assert_flushed_end(s)
    assert s.body.decode() == (f"a one.bin 0 {len(data)} {hashlib.md5(data).hexdigest()}\n"
                               f"field note {hashlib.md5(b'hello').hexdigest()}\n")


@pytest.mark.parametrize("how", ["echo-length", "echo-no-length", "readfile"])
def test_h2x_566_04_download_exact(server, frame_client, how):
    """3 MiB from PHP arrive byte-exact over h2c and h2."""
    php_downloads(frame_client, os.path.join(server.docroot, P.strip("/")), P, how)


@pytest.mark.parametrize("status", [200, 204, 304])
def test_h2x_566_05_no_body_and_head(server, frame_client, status):
    """Bodiless answers, and HEAD of a script with a body, end on HEADERS."""
    c = frame_client(tls=True)
    assert_headers_only(get(c, f"{P}/empty.php?s={status}"), status)
    assert_headers_only(get(c, f"{P}/big.php?size=5000&cl={status % 2}", method="HEAD"), 200)


def test_h2x_566_06_flushed_lines(server, frame_client):
    """Lines flush()ed 300 ms apart arrive as they are flushed."""
    c = frame_client(tls=True)
    check_timed_lines(get(c, f"{P}/lines.php?n=4&ms=300", timeout=15), 4, 0.3)


def test_h2x_566_07_one_script_at_a_time_per_process(server, frame_client):
    """12 streams on each of 3 connections at once, each a 40 ms script:
    all answered, and no two scripts ever ran at the same time in one
    process (PHP without thread safety stays on one thread at a time)."""
    clients = [frame_client(tls=bool(i % 2), timeout=30) for i in range(3)]
    sids = {c: [c.request("GET", f"{P}/spin.php?ms=40") for _ in range(12)] for c in clients}
    for c, ids in sids.items():
        assert c.run(until=lambda cl, ids=ids: all(cl.stream(s).ended for s in ids),
                     timeout=30), [c.stream(s) for s in ids if not c.stream(s).ended]
    by_pid = {}
    for c, ids in sids.items():
        for sid in ids:
            s = c.stream(sid)
            assert s.status == 200, s
            assert_flushed_end(s)
            pid, start, end = s.body.decode().split()
            by_pid.setdefault(int(pid), []).append((float(start), float(end)))
    for pid, spans in by_pid.items():
        spans.sort()
        for (s1, e1), (s2, e2) in zip(spans, spans[1:]):
            assert s2 >= e1, (pid, (s1, e1), (s2, e2))


def test_h2x_566_08_client_reset_sleeping_script(server, frame_client):
    """The client resets a stream whose script sleeps 1 s: nothing more
    is sent on it, and the connection's next request is answered once the
    script is done (one stream at a time per connection under prefork),
    well within 3 s."""
    reset_while_sleeping(frame_client(tls=True), f"{P}/sleep.php?s=1", f"{P}/env.php",
                         next_within=3.0, linger=0.3)
