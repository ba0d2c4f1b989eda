"""593: Go's HTTP/2 client (net/http, golang.org/x/net/http2) against the server.

Go's client is what Go services, proxies and tools (Prometheus, Caddy's
upstreams, kubectl, ...) talk HTTP/2 with, and it is strict: it checks
flow control and frame order, and says so when a 204 carries DATA or a
stream ends early.  It also behaves the way our own clients do not: it
multiplexes concurrent requests on one connection, sends RST_STREAM(CANCEL)
when a request's context expires, and retries requests a GOAWAY says the
server did not process (RFC 9113 §6.8).

test/go/h2client/main.go is built once per session (GOPATH mode, Debian's
golang-go and golang-golang-x-net-dev, no network) and prints one JSON
object per run.  h2 uses net/http's Transport (ALPN, the session
certificate verified); h2c uses x/net/http2's Transport with prior
knowledge.  Both ask without Accept-Encoding, so bodies come as sent.

- 50 concurrent GETs of files whose sizes sit on frame and window edges,
  byte-exact, on the one connection the warm-up request opened;
- uploads to the echo handler, with Content-Length and without (io.Pipe,
  odd chunks), echoed back and as md5;
- response trailers (after a body, after an empty body, trailers-only)
  in Go's resp.Trailer;
- requests cancelled by a context deadline mid-body, before the headers
  and in a stalled CGI: the handler/CGI stops, the same connection serves
  the next requests at once;
- a graceful restart, twice, while ~200 GETs run: every request ends 200
  with the exact body and no error (the "loses nothing" promise, DESIGN.md
  invariant 8, from a client that retries what GOAWAY refused);
- HEAD, 304 (If-None-Match), 204 and empty 200s: no body, no error, the
  connection stays usable;
- 40 uploads without Content-Length in a row, each answered at once.
"""

import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

from core_helpers import (DRIBBLE_CGI, HEADERS_ONLY_CGI, TEST_HANDLER_CONF, pattern_body, sha,
                          wait_gone)
from h2x.httpd import file_content

pytestmark = pytest.mark.h2

MODES = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "go", "h2client", "main.go")
MIB = 1024 * 1024
EDGE_SIZES = [0, 1, 16383, 16384, 16385, 65535, 65536, MIB + 1]
UPLOAD_SIZES = [0, 65535, 65536, MIB + 1]
PROTO = "HTTP/2.0"


@pytest.fixture(scope="module")
def h2client(env):
    """The Go client, built into the session dir (its own GOCACHE there:
    HOME may be unset)."""
    go = shutil.which("go")
    if not go:
        pytest.skip("needs Go: Debian packages golang-go golang-golang-x-net-dev")
    out_dir = os.path.join(env.session_dir, "go593")
    os.makedirs(out_dir, exist_ok=True)
    binary = os.path.join(out_dir, "h2client")
    genv = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GOPATH": "/usr/share/gocode",
            "GO111MODULE": "off", "GOFLAGS": "", "GOENV": "off",
            "GOCACHE": os.path.join(out_dir, "cache"), "HOME": out_dir}
    proc = subprocess.run([go, "build", "-o", binary, SRC], env=genv, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, (
        "building test/go/h2client failed (golang.org/x/net/http2 comes from Debian's "
        f"golang-golang-x-net-dev in /usr/share/gocode):\n{proc.stdout}{proc.stderr}")
    return binary


@pytest.fixture(scope="module")
def server(httpd, env):
    for size in EDGE_SIZES:
        httpd.make_file(f"/f593/edge-{size}.bin", size)
    httpd.make_cgi("/c593/headers_only.py", HEADERS_ONLY_CGI)
    httpd.make_cgi("/c593/dribble.py", DRIBBLE_CGI)
    # h2x_test:info: h2x-stream logs where a cancelled stream stopped.
    httpd.reconfigure(extra_global=TEST_HANDLER_CONF,
                      loglevel=f"warn {env.module_log_name(httpd.module)}:debug h2x_test:info")
    yield httpd
    httpd.reconfigure()


def _base(httpd, tls):
    return httpd.url("/", tls=tls).rstrip("/")


def _args(h2client, env, httpd, tls, scenario, **flags):
    args = [h2client, f"-url={_base(httpd, tls)}", f"-ca={env.cert()[0]}"]
    args += [f"-{k}={v}" for k, v in flags.items()]
    return args + [scenario]


def run_go(h2client, env, httpd, tls, scenario, wait=60, **flags):
    """Run one scenario (flags: main.go's); return its JSON output."""
    proc = subprocess.run(_args(h2client, env, httpd, tls, scenario, **flags),
                          capture_output=True, text=True, timeout=wait)
    assert proc.returncode == 0, f"h2client {scenario} exited {proc.returncode}:\n{proc.stderr}"
    return json.loads(proc.stdout)


def _brief(r):
    """A result without the bulky parts, for assertion messages."""
    return {k: v for k, v in r.items() if k not in ("header", "text")}


def assert_ok(r, body=None, status=200):
    """HTTP/2, the status, no error; with `body`, byte-exact."""
    assert r["proto"] == PROTO, _brief(r)
    assert r["error"] == "", _brief(r)
    assert r["status"] == status, _brief(r)
    if body is not None:
        assert r["bytes"] == len(body) and r["sha256"] == sha(body), _brief(r)


def upload_body(seed, size):
    """main.go's uploadBody: sha256("h2x-593-<seed>-<i>") for i = 0, 1, ..."""
    out = bytearray()
    i = 0
    while len(out) < size:
        out += hashlib.sha256(f"h2x-593-{seed}-{i}".encode()).digest()
        i += 1
    return bytes(out[:size])


# -- 1: concurrent downloads on one connection --------------------------------

@MODES
def test_h2x_593_01_concurrent_gets_one_connection(server, h2client, env, tls):
    """50 GETs at once after a warm-up GET: all byte-exact, all streams of
    the warm-up's connection."""
    paths = [f"/f593/edge-{size}.bin" for size in EDGE_SIZES]
    out = run_go(h2client, env, server, tls, "gets", paths=",".join(paths),
                 count=50, concurrency=50)
    warm = out["warm"]
    assert_ok(warm, file_content(0))
    conn = warm["conns"][0]
    results = out["results"]
    assert len(results) == 50
    for i, r in enumerate(results):
        size = EDGE_SIZES[i % len(EDGE_SIZES)]
        assert r["label"] == paths[i % len(paths)]
        assert_ok(r, file_content(size))
        assert r["header"].get("Content-Length") == [str(size)], _brief(r)
        assert r["conns"] == [conn], f"not on the warm-up connection {conn}: {_brief(r)}"
    # Some were in flight together (Go did not serialize them).  Not
    # "several started before the first ended": under ASan a small first
    # response came back before Go's other goroutines had started theirs.
    overlapping = sum(1 for i, a in enumerate(results) for b in results[i + 1:]
                      if a["start_ms"] < b["end_ms"] and b["start_ms"] < a["end_ms"])
    assert overlapping > 0, [(r["start_ms"], r["end_ms"]) for r in results]


# -- 2: uploads ---------------------------------------------------------------

@MODES
def test_h2x_593_02_uploads(server, h2client, env, tls):
    """Known length and io.Pipe (no Content-Length, odd chunks): the echo
    handler sends back exactly what Go sent, and md5=1 agrees."""
    sizes = ",".join(map(str, UPLOAD_SIZES))
    echo = run_go(h2client, env, server, tls, "upload", paths="/h2x/echo", sizes=sizes)
    digest = run_go(h2client, env, server, tls, "upload", paths="/h2x/echo?md5=1", sizes=sizes)
    assert len(echo["uploads"]) == len(digest["uploads"]) == 2 * len(UPLOAD_SIZES)
    for u in echo["uploads"]:
        body = upload_body(u["size"], u["size"])
        assert u["sent_sha256"] == sha(body), u["size"]
        assert_ok(u["result"], body)
    for u in digest["uploads"]:
        r = u["result"]
        assert_ok(r)
        assert r["text"] == f"{hashlib.md5(upload_body(u['size'], u['size'])).hexdigest()} " \
                           f"{u['size']}\n", (u["mode"], _brief(r))


# -- 3: response trailers -----------------------------------------------------

@MODES
def test_h2x_593_03_trailers(server, h2client, env, tls):
    paths = ["/h2x/trailers?n=100000&t=x-t1:one&t=x-t2:two",
             "/h2x/trailers?n=0&t=x-t3:three",
             "/h2x/trailers?only=1&t=grpc-status:13&t=grpc-message:boom&ct=application/grpc",
             "/f593/edge-1.bin"]
    out = run_go(h2client, env, server, tls, "sequence", paths=",".join(paths))
    big, empty, only, after = out["results"]
    assert_ok(big, pattern_body(100000))
    assert big["trailer"] == {"X-T1": ["one"], "X-T2": ["two"]}, _brief(big)
    assert_ok(empty, b"")
    assert empty["trailer"] == {"X-T3": ["three"]}, _brief(empty)
    assert_ok(only, b"")
    assert only["header"].get("Content-Type") == ["application/grpc"], only["header"]
    assert only["trailer"] == {"Grpc-Status": ["13"], "Grpc-Message": ["boom"]}, _brief(only)
    # Trailers are not mixed into the headers.
    for r in (big, empty, only):
        assert not {"X-T1", "X-T2", "X-T3", "Grpc-Status"} & set(r["header"]), r["header"]
    assert_ok(after, file_content(1))
    conns = {r["conns"][0] for r in out["results"]}
    assert len(conns) == 1, conns


# -- 4: cancelled requests ----------------------------------------------------

def _dribbled(n):
    """The first n bytes DRIBBLE_CGI writes."""
    return "".join(f"line {i}\n" for i in range(n // 5 + 1)).encode()[:n]


@MODES
def test_h2x_593_04_cancel_mid_body(server, h2client, env, piddir, tls):
    """A 0.8 s context deadline on a dribbling handler, a dribbling CGI, a
    handler busy before its headers and a CGI stalled mid-body: Go resets
    each stream; the handler and the CGI notice and stop; each time the
    same connection serves three more GETs at once."""
    pidfile = os.path.join(piddir, f"dribble593-{'h2' if tls else 'h2c'}.pid")
    log_start = len(server.error_log_lines())
    small = "/f593/edge-16385.bin"
    cancelled = ["/h2x/stream?count=100&size=100&ms=100",
                 f"/c593/dribble.py?pidfile={pidfile}",
                 "/h2x/delay?s=3&n=100",
                 "/cgi-bin/stall.py?n=100&s=3"]
    out = run_go(h2client, env, server, tls, "cancel", paths=",".join([small] + cancelled),
                 timeout="800ms", count=3)
    warm = out["warm"]
    assert_ok(warm, file_content(16385))
    conn = warm["conns"][0]
    expect_prefix = [lambda n: pattern_body(n), _dribbled, None, lambda n: pattern_body(n)]
    for path, c, prefix in zip(cancelled, out["cancelled"], expect_prefix):
        r = c["result"]
        took = (r["end_ms"] - r["start_ms"]) / 1000
        assert "context deadline exceeded" in r["error"], (path, _brief(r))
        assert 0.7 < took < 3, (path, took)
        if prefix is None:           # cancelled before the response headers
            assert r["status"] == 0 and r["bytes"] == 0, _brief(r)
        else:
            assert r["status"] == 200 and r["proto"] == PROTO, _brief(r)
            assert r["bytes"] > 0 and r["sha256"] == sha(prefix(r["bytes"])), _brief(r)
        assert r["conns"] == [conn], (path, _brief(r))
        for a in c["after"]:
            assert_ok(a, file_content(16385))
            assert a["conns"] == [conn], (path, _brief(a))
            assert a["end_ms"] - a["start_ms"] < 1000, (path, _brief(a))
    # The handler saw the reset and stopped (h2x-stream logs it at info) ...
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        stopped = [ln for ln in server.error_log_lines()[log_start:]
                   if "h2x-stream: stopped after" in ln and "(of 100)" in ln]
        if stopped:
            break
        time.sleep(0.1)
    assert stopped, "h2x-stream never stopped:\n" + server.error_log_tail(15)
    # ... and so did the CGI (it exits when its output breaks).
    assert wait_gone(pidfile, 5), "dribble.py still running after the cancel"
    # The server is fine on a new connection too.
    again = run_go(h2client, env, server, tls, "sequence", paths=small)
    assert_ok(again["results"][0], file_content(16385))


# -- 5: graceful restart ------------------------------------------------------

LOOP_PATHS = {
    "/f593/edge-65536.bin": file_content(65536),
    "/h2x/delay?s=0.05&n=20000": pattern_body(20000),
    f"/f593/edge-{MIB + 1}.bin": file_content(MIB + 1),
    "/f593/edge-16385.bin": file_content(16385),
    "/h2x/delay?s=0.2&n=1000": pattern_body(1000),
}
LOOP_COUNT = 200


@MODES
@pytest.mark.expect_log(r"AH01246")       # mod_cgid's daemon restarts with the generation
def test_h2x_593_05_graceful_restart_loses_nothing(server, h2client, env, tls):
    """~200 GETs, 4 at a time, while httpd restarts gracefully twice: each
    ends 200 with its exact body, no error; Go moved to new connections."""
    paths = list(LOOP_PATHS)
    proc = subprocess.Popen(_args(h2client, env, server, tls, "loop", paths=",".join(paths),
                                  count=LOOP_COUNT, concurrency=4, pause="20ms"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    restarts = []
    try:
        done = 0
        for at in (40, 120):
            while done < at:
                line = proc.stderr.readline()
                assert line, f"h2client ended after {done} requests: {proc.stderr.read()}"
                if line.startswith("done "):
                    done = int(line.split()[1])
            t0 = time.monotonic()
            server.graceful()
            restarts.append((done, round(time.monotonic() - t0, 2)))
        rest, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    out = json.loads(rest)
    assert_ok(out["warm"], LOOP_PATHS[paths[0]])
    failed = []
    for i, r in enumerate(out["results"]):
        body = LOOP_PATHS[paths[i % len(paths)]]
        if not (r["proto"] == PROTO and r["status"] == 200 and r["error"] == ""
                and r["bytes"] == len(body) and r["sha256"] == sha(body)):
            failed.append((i, _brief(r)))
    assert not failed, f"{len(failed)} of {LOOP_COUNT} requests lost " \
                       f"(graceful at/after request {restarts}):\n" + \
                       "\n".join(map(str, failed[:10]))
    # Both restarts happened while the loop ran and closed connections.
    conns = {r["conns"][-1] for r in out["results"]} | {out["warm"]["conns"][0]}
    assert len(conns) >= 3, (conns, restarts)


# -- 6, 7: responses without a body -------------------------------------------

@MODES
def test_h2x_593_06_head_304_204(server, h2client, env, tls):
    f = "/f593/edge-65536.bin"
    paths = [f"HEAD {f}", f, f"INM {f}", "/cgi-bin/nocontent.py", "/h2x/status?s=204",
             "/h2x/status?s=304", "HEAD /cgi-bin/hello.py", "HEAD /h2x/trailers?n=100",
             "/f593/edge-16384.bin"]
    out = run_go(h2client, env, server, tls, "sequence", paths=",".join(paths))
    head, get, inm, cgi204, h204, h304, cgi_head, trailers_head, after = out["results"]
    assert_ok(head, b"")
    assert head["header"]["Content-Length"] == ["65536"], head["header"]
    assert_ok(get, file_content(65536))
    etag = get["header"]["Etag"]
    assert_ok(inm, b"", status=304)
    assert inm["header"].get("Etag") == etag, inm["header"]
    for r in (cgi204, h204):
        assert_ok(r, b"", status=204)
    assert_ok(h304, b"", status=304)
    assert_ok(cgi_head, b"")
    assert_ok(trailers_head, b"")
    assert_ok(after, file_content(16384))
    conns = {r["conns"][0] for r in out["results"]}
    assert len(conns) == 1, f"Go dropped the connection: {conns}"


@MODES
def test_h2x_593_07_empty_200(server, h2client, env, tls):
    paths = ["/f593/edge-0.bin", "/cgi-bin/empty.py", "/c593/headers_only.py",
             "/h2x/status?cl0=1", "/h2x/status?n=0", "/f593/edge-1.bin"]
    out = run_go(h2client, env, server, tls, "sequence", paths=",".join(paths))
    results = out["results"]
    for r in results[:-1]:
        assert_ok(r, b"")
    assert results[0]["header"].get("Content-Length") == ["0"], results[0]["header"]
    assert results[2]["header"].get("X-Only") == ["headers"], results[2]["header"]
    assert_ok(results[-1], file_content(1))
    conns = {r["conns"][0] for r in results}
    assert len(conns) == 1, f"Go dropped the connection: {conns}"


# -- 8: uploads without Content-Length, answered at once ----------------------

PIPE_UPLOADS = 40
PIPE_SIZE = 65535


@MODES
def test_h2x_593_08_pipe_uploads_not_delayed(server, h2client, env, tls):
    """40 uploads of 65535 bytes from an io.Pipe, one after the other: Go
    sends the last DATA frames and then an empty DATA frame with END_STREAM
    in one burst.  Each is answered within 0.5 s (a few ms is usual; on
    mod_http2 and over h2c all are).  Catches the server leaving frames it
    has already received unread until a timer fires."""
    out = run_go(h2client, env, server, tls, "upload", paths="/h2x/echo?md5=1",
                 sizes=",".join([str(PIPE_SIZE)] * PIPE_UPLOADS), modes="pipe")
    md5 = hashlib.md5(upload_body(PIPE_SIZE, PIPE_SIZE)).hexdigest()
    slow = []
    for u in out["uploads"]:
        r = u["result"]
        assert_ok(r)
        assert r["text"] == f"{md5} {PIPE_SIZE}\n", _brief(r)
        took = r["end_ms"] - r["start_ms"]
        if took > 500:
            slow.append(f"{took:.0f} ms (response headers after "
                        f"{r['headers_ms'] - r['start_ms']:.0f} ms)")
    assert not slow, f"{len(slow)} of {PIPE_UPLOADS} uploads answered late: {slow}"
