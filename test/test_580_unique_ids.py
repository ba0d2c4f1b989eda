"""Issue 4 / DESIGN.md invariant 7: each stream's c2 has a server-wide
unique connection id.

mod_cgid keys its CGI processes on the connection id (the cgid daemon
finds a request's script by it): if two concurrent streams shared a c2 id,
their CGIs would get each other's request bodies or outputs.  50
concurrent ~100 KB POST uploads over 2 connections (25 streams each) to
echo.py?sha=1 must each get back the checksum of their own body; the same
with mod_cgi.
"""

import hashlib
import os

import pytest

pytestmark = [pytest.mark.h2, pytest.mark.slow]

CONNS = 2
PER_CONN = 25
SIZE = 100 * 1024


def _uploads(frame_client, tls=False):
    # Each connection opens just before its uploads: one opened earlier
    # would sit idle while the other's 2.5 MB go out and could meet
    # KeepAliveTimeout (5 s) on a slow (sanitizer) build.
    clients = []
    expected = {}
    for ci in range(CONNS):
        c = frame_client(tls=tls, timeout=30)
        clients.append(c)
        for i in range(PER_CONN):
            # every body different (random, plus a distinct size)
            body = os.urandom(SIZE + 16 * (ci * PER_CONN + i))
            sid = c.request("POST", f"/cgi-bin/echo.py?sha=1&c={ci}&i={i}",
                            headers=[("content-type", "application/octet-stream"),
                                     ("content-length", str(len(body)))],
                            body=body, end_stream=True)
            expected[(ci, sid)] = (hashlib.sha256(body).hexdigest(), len(body))
    for c in clients:
        assert c.wait_all_ended(timeout=60), (c.check_ended(0)[:3], c.errors[:3])
    bad = []
    for (ci, sid), (sha, n) in expected.items():
        s = clients[ci].stream(sid)
        got = s.body.decode(errors="replace").split()
        if s.ended_by != "END_STREAM" or s.status != 200 or got != [sha, str(n)]:
            bad.append(f"conn {ci} stream {sid}: {s.status} {s.ended_by} {got} want {n}")
    assert not bad, f"{len(bad)} of {len(expected)} wrong:\n" + "\n".join(bad[:10])


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_580_01_cgid_concurrent_uploads(httpd, frame_client, tls):
    if httpd.cgi not in (None, "cgid"):
        httpd.reconfigure(cgi="cgid")
    _uploads(frame_client, tls=tls)


def test_h2x_580_02_cgi_concurrent_uploads(httpd, frame_client):
    httpd.reconfigure(cgi="cgi")
    _uploads(frame_client)
