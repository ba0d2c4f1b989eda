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
import time

import pytest

from core_helpers import pid_alive, read_pidfile

pytestmark = [pytest.mark.h2, pytest.mark.slow]

CONNS = 2
PER_CONN = 25
SIZE = 100 * 1024
ROUNDS = 6


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


def _c1_id(c):
    """The c1 id of this connection, from a CGI's H2_STREAM_TAG (pid-c1-stream)."""
    sid = c.request("GET", "/cgi-bin/env.py")
    assert c.wait_stream_end(sid, timeout=15), c.stream(sid)
    for line in c.stream(sid).body.decode().splitlines():
        if line.startswith("H2_STREAM_TAG="):
            return int(line.split("=", 1)[1].split("-")[1])
    raise AssertionError(c.stream(sid))


def test_h2x_580_03_cgid_kills_only_its_own_script(httpd, frame_client, piddir):
    """The event MPM gives a connection the id of the worker thread that
    accepted it (child * ThreadLimit + thread), and that thread accepts
    new connections while the ones it accepted earlier live on, idle: c1
    ids repeat among live connections, and so did the c2 ids built from
    them.  mod_cgid looks a script's pid up by connection id right after
    starting it and kills that pid when the request ends: two streams with
    one id starting CGIs together could each get the other's pid, and
    ending one stream killed the other connection's CGI (whose response
    then ended with END_STREAM, truncated: test_300_04 under ASan).

    Two MPM threads, three connections: two of them share a c1 id (their
    CGIs tell, H2_STREAM_TAG).  Rounds of: a stalled CGI on each of the
    two at once, reset one; its script must end, the other's live on."""
    httpd.reconfigure(cgi="cgid", extra_global=(
        "ServerLimit 1\nStartServers 1\nThreadsPerChild 2\nMaxRequestWorkers 2\n"
        "MinSpareThreads 1\nMaxSpareThreads 2\n"))
    try:
        clients = [frame_client() for _ in range(3)]
        ids = [_c1_id(c) for c in clients]
        pairs = [(a, b) for a in range(3) for b in range(a + 1, 3) if ids[a] == ids[b]]
        assert pairs, f"c1 ids {ids}: two worker threads, three connections"
        a, b = (clients[i] for i in pairs[0])
        for rnd in range(ROUNDS):
            paths = [os.path.join(piddir, f"own-{rnd}-{i}.pid") for i in range(2)]
            sids = [c.request("GET", f"/cgi-bin/stall.py?n=100&s=30&pidfile={p}")
                    for c, p in zip((a, b), paths)]
            for c, sid in zip((a, b), sids):
                assert c.run(lambda cl, sid=sid: len(cl.stream(sid).body) >= 100,
                             timeout=20), c.stream(sid)
            pids = [read_pidfile(p, timeout=15) for p in paths]
            victim, other = (0, 1) if rnd % 2 == 0 else (1, 0)
            (a, b)[victim].reset(sids[victim])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and pid_alive(pids[victim]):
                time.sleep(0.1)
            (a, b)[other].run(timeout=0.3)
            assert not pid_alive(pids[victim]), \
                f"round {rnd}: the reset stream's CGI lives on (pids {pids}, the other's " \
                f"alive: {pid_alive(pids[other])}): {(a, b)[victim].stream(sids[victim])!r}"
            assert pid_alive(pids[other]), \
                f"round {rnd}: the other connection's CGI was killed: " \
                f"{(a, b)[other].stream(sids[other])!r}"
            assert not (a, b)[other].stream(sids[other]).ended, \
                (a, b)[other].stream(sids[other])
            (a, b)[other].reset(sids[other])
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline and pid_alive(pids[other]):
                time.sleep(0.1)
            assert not pid_alive(pids[other])
    finally:
        httpd.reconfigure(cgi="cgid")
