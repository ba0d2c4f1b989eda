"""Load (issue 3): many concurrent streams on one connection, many
connections with mixed static/CGI/POST streams, h2load runs with zero
failures over h2c and TLS; all under the event MPM (the module's server)
and again under the worker MPM (a second server).  Every body is checked.
"""

import hashlib
import os
import threading

import pytest

from core_helpers import TEST_HANDLER_CONF, pattern_body, sha
from h2x.clients import h2load
from h2x.frames import FrameClient
from h2x.httpd import Httpd, file_content

pytestmark = pytest.mark.h2

SIZES = {"1k": 1024, "10k": 10_000, "100k": 100_000, "1m": 1_000_000}


def _prepare(server):
    for name, size in SIZES.items():
        server.make_file(f"load/{name}.bin", size)


@pytest.fixture(scope="module", params=["event", "worker"])
def server(request, env, httpd):
    """The module's server (event MPM), or a second one with the worker MPM."""
    if request.param == "event":
        _prepare(httpd)
        httpd.reconfigure(extra_global=TEST_HANDLER_CONF)
        yield httpd
        return
    srv = Httpd(env, name="test_400_worker", mpm="worker")
    try:
        _prepare(srv)
        srv.write_config(extra_global=TEST_HANDLER_CONF)
        srv.start()
        yield srv
    finally:
        srv.close()


def _mix(i):
    """Request i of a mixed load: (method, path, body, expected response body)."""
    kind = i % 8
    if kind == 0:
        return "GET", "/load/1k.bin", None, file_content(1024)
    if kind == 1:
        return "GET", "/load/100k.bin", None, file_content(100_000)
    if kind == 2:
        return "GET", "/load/10k.bin", None, file_content(10_000)
    if kind == 3:
        n = 1 + (i * 7919) % 200_000
        return "GET", f"/h2x/status?n={n}", None, pattern_body(n)
    if kind == 4:
        return "GET", "/h2x/status?s=204", None, b""
    if kind == 5:
        body = hashlib.sha256(b"%d" % i).digest() * (1 + i % 3000)
        return "POST", "/h2x/echo", body, body
    if kind == 6:
        return "GET", "/load/1m.bin", None, file_content(1_000_000)
    return "GET", f"/h2x/delay?s=0.05&n={i * 13}", None, pattern_body(i * 13)


def _check_all(c, expected):
    bad = []
    for sid, exp in expected.items():
        s = c.stream(sid)
        if s.ended_by != "END_STREAM" or s.status not in (200, 204) or sha(s.body) != sha(exp):
            bad.append(f"stream {sid}: ended_by={s.ended_by} status={s.status} "
                       f"body={len(s.body)}/{len(exp)} frames={s.frames_str()[-120:]}")
    return bad


def test_h2x_400_01_100_streams_one_connection(server, frame_client):
    """100 concurrent streams of mixed sizes on one connection, all complete."""
    c = frame_client(server=server, window=1 << 20)
    assert c.wait_settings()
    expected = {}
    for i in range(100):
        method, path, body, exp = _mix(i)
        headers = [("content-length", str(len(body)))] if body is not None else None
        sid = c.request(method, path, headers=headers, end_stream=body is None)
        if body is not None:
            assert c.send_data(sid, body, end_stream=True, timeout=30)
        expected[sid] = exp
    assert c.wait_all_ended(timeout=60), [s.sid for s in c.unended()]
    assert not _check_all(c, expected)
    assert not c.goaways


def _connection_worker(server, idx, results):
    errors = []
    c = FrameClient.for_httpd(server, window=1 << 20, timeout=30)
    try:
        c.connect()
        expected = {}
        for j in range(20):
            i = idx * 20 + j
            if j % 5 == 0:       # one in five: CGI (GET or POST through mod_cgid)
                if j % 10 == 0:
                    body = os.urandom(1000 + i)
                    sid = c.request("POST", "/cgi-bin/echo.py?sha=1", body=body)
                    expected[sid] = f"{sha(body)} {len(body)}\n".encode()
                else:
                    sid = c.request("GET", f"/cgi-bin/big.py?n={5000 + i}")
                    expected[sid] = pattern_body(5000 + i)
                continue
            method, path, body, exp = _mix(i)
            if method == "GET" and "1m" in path:
                path, exp = "/load/100k.bin", file_content(100_000)
            sid = c.request(method, path, body=body)
            expected[sid] = exp
        if not c.wait_all_ended(timeout=60):
            errors.append(f"conn {idx}: streams not ended: {[s.sid for s in c.unended()]}")
        errors += [f"conn {idx}: {e}" for e in _check_all(c, expected)]
        if c.goaways:
            errors.append(f"conn {idx}: GOAWAY {c.goaways}")
    except Exception as e:     # noqa: BLE001 - reported by the test
        errors.append(f"conn {idx}: {type(e).__name__}: {e}")
    finally:
        c.close()
    results[idx] = errors


def test_h2x_400_02_20_connections_20_streams(server):
    """20 connections x 20 streams, mixed static / handler / CGI / POST."""
    results = {}
    threads = [threading.Thread(target=_connection_worker, args=(server, i, results))
               for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert len(results) == 20, "a connection thread did not finish"
    errors = [e for errs in results.values() for e in errs]
    assert not errors, "\n".join(errors[:20])


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_400_03_h2load(server, tls):
    """A few thousand requests through h2load, none failed."""
    n = 3000
    r = h2load(server.url("/load/10k.bin", tls=tls), n, 10, 10, timeout=120)
    assert r.exit_code == 0, r.stdout[-1000:]
    assert r.requests.get("succeeded") == n, r
    assert r.requests.get("failed") == 0 and r.requests.get("errored") == 0, r
    assert r.status.get("2xx") == n, r


def test_h2x_400_04_h2load_handler_mix(server):
    """h2load over several URIs (static, handler, 204, delayed) on h2c."""
    import tempfile
    uris = ["/load/1k.bin", "/h2x/status?n=5000", "/h2x/status?s=204",
            "/load/100k.bin", "/h2x/delay?s=0.01&n=100"]
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write("\n".join(server.url(u) for u in uris) + "\n")
        path = f.name
    try:
        n = 2000
        r = h2load(server.url("/"), n, 8, 10, "-i", path, timeout=120)
    finally:
        os.unlink(path)
    assert r.exit_code == 0, r.stdout[-1000:]
    assert r.requests.get("succeeded") == n, r
    assert r.requests.get("errored") == 0, r


def test_h2x_400_05_h2load_post(server, env):
    """h2load POSTing 100 KB bodies to a handler that reads them all."""
    path = os.path.join(env.session_dir, "h2load-post.bin")
    with open(path, "wb") as f:
        f.write(pattern_body(100_000))
    n = 1000
    r = h2load(server.url("/h2x/echo?discard=1"), n, 5, 10, "-d", path, timeout=120)
    assert r.exit_code == 0, r.stdout[-1000:]
    assert r.requests.get("succeeded") == n, r
    assert r.status.get("2xx") == n, r


def test_h2x_400_06_h2load_small_windows(server):
    """h2load with 64 KiB-ish windows (-w/-W 16: 65535) on 1 MB files: every
    response needs many WINDOW_UPDATEs; none may stall."""
    n = 200
    r = h2load(server.url("/load/1m.bin"), n, 4, 10, "-w", "16", "-W", "16", timeout=120)
    assert r.exit_code == 0, r.stdout[-1000:]
    assert r.requests.get("succeeded") == n, r


def test_h2x_400_07_h2load_huge_windows(server):
    """h2load with 1 GiB windows (-w/-W 30) on 1 MB files: the client sends
    (almost) nothing after its requests; nothing may wait for it."""
    n = 200
    r = h2load(server.url("/load/1m.bin", tls=True), n, 4, 10, "-w", "30", "-W", "30",
               timeout=120)
    assert r.exit_code == 0, r.stdout[-1000:]
    assert r.requests.get("succeeded") == n, r
