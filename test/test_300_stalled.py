"""Issue 5, point 1: a response stalled mid-body ends with RST_STREAM.

A CGI sends its status, headers and part of its body, flushes, then goes
silent for longer than `Timeout`.  The response has final headers but its
EOS never comes, so the output beam is ABORTED and c1 resets the stream
with RST_STREAM(INTERNAL_ERROR) (DESIGN.md invariants 1 and 2, STYLE §3.4),
within Timeout plus slack, and never ends it with END_STREAM (which would
present a truncated body as complete).  Streams next to the stalled ones
complete normally and the connection stays usable.

Measured on Debian's mod_http2 2.0.42: 352 of 610 such streams got no
ending frame at all (background/README.md).
"""

import threading
import time

import pytest

from h2x.frames import ErrorCodes

# httpd Timeout for this module: 60 Python CGIs must start within it on 2
# cores while the other test process runs its file (with 4 s, test_300_03
# got mod_cgid's 504 "Script timed out before returning headers" in 2 of 4
# runs on 2026-12-02, beside test_320's CGIs and proxies).
TIMEOUT = 6
SLACK = 3            # the stream must be reset within TIMEOUT + SLACK
STALL_N = 100        # body bytes the CGI sends before it stalls
STALL_S = 12         # how long the CGI then sleeps (well past TIMEOUT + SLACK)
STALL = f"/cgi-bin/stall.py?n={STALL_N}&s={STALL_S}"
BODY = (b"0123456789abcdef" * (STALL_N // 16 + 1))[:STALL_N]

# mod_cgid/mod_cgi and the core when a CGI's output read times out.
CGI_TIMEOUT_LOGS = [
    r"AH00574",                                   # ap_content_length_filter: read failed
    r"Timeout waiting for output from CGI script",
    r"AH01220", r"AH01221",                       # mod_cgid/mod_cgi read timeouts
    r"AH02550",                                   # core: cleanup of CGI script
    r"AH01215",                                   # script stderr
    # Harness race: the module's server is reconfigured right after its
    # start, and mod_cgid's daemon may not have chowned its socket yet.
    r"AH01246",
]
pytestmark = [pytest.mark.h2, pytest.mark.expect_log(*CGI_TIMEOUT_LOGS)]


# Workers per child: every stream of test_300_03 (5 x 12) may land in one
# child, and a healthy stream must not wait for a stalled one's worker
# (37 by default here: 4 of the 5 connections in one child left the last
# one's healthy streams queued until the stalls' Timeout).
MAX_WORKERS = 80


def _config(cgi="cgid"):
    return dict(extra_global=f"Timeout {TIMEOUT}\nKeepAliveTimeout 30\n"
                             f"H2MaxWorkers {MAX_WORKERS}\n", cgi=cgi)


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(**_config())
    yield
    httpd.write_config(cgi="cgid")


def _assert_stall_reset(c, sid, slack=SLACK):
    """The stalled stream: HEADERS, the flushed body, RST(INTERNAL_ERROR) in time."""
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM", f"stream {sid}: {s!r}"
    assert s.rst_code == ErrorCodes.INTERNAL_ERROR, f"stream {sid}: {s!r}"
    assert not any(f.end_stream for f in s.frames), f"stream {sid}: {s!r}"
    assert c.shape(sid) == "HEADERS DATA RST(INTERNAL_ERROR)", f"stream {sid}: {s!r}"
    assert s.status == 200
    assert s.body == BODY
    # Timed from the last body byte: from then on the CGI is silent.
    silent = [f.t for f in s.frames if f.type == "DATA"][-1]
    took = s.end_time - silent
    assert took <= TIMEOUT + slack, \
        f"stream {sid} reset {took:.2f}s after its last DATA ({s.end_time - s.start_time:.2f}s " \
        f"after the request): {s!r}"
    # Not before the CGI can have been silent for Timeout (DESIGN invariant
    # 6).  Timed from the request: a late-read DATA frame (a busy client
    # thread) must not make this flaky.
    since_request = s.end_time - s.start_time
    assert since_request >= TIMEOUT * 0.9, \
        f"stream {sid} reset already {since_request:.2f}s after the request: {s!r}"


def _assert_healthy(c, sid):
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM", f"stream {sid}: {s!r}"
    assert s.status == 200, f"stream {sid}: {s!r}"
    assert s.rst_code is None
    # A streamed (CGI) body may learn its end after its last DATA left
    # (DESIGN invariant 4 allows the DATA(0)[ES] then).
    assert c.shape(sid) in ("HEADERS DATA[ES]", "HEADERS DATA DATA(0)[ES]"), \
        f"stream {sid}: {s!r}"


def _assert_usable(c):
    """The connection serves new streams after the resets."""
    sids = [c.request("GET", "/1k.txt"), c.request("GET", "/cgi-bin/hello.py")]
    assert c.wait_all_ended(timeout=10), c.unended()
    for sid in sids:
        _assert_healthy(c, sid)
    assert not c.goaways, c.goaways
    assert not c.closed, c.close_reason


def _stall_session(c, n_stall, n_healthy, results, key, slack=SLACK):
    """On one connection: n_stall stalled CGIs and n_healthy normal
    requests (static and CGI), all open at once; wait for all; then check
    the connection still works.  Puts an exception (or None) in results."""
    try:
        stalled = [c.request("GET", STALL) for _ in range(n_stall)]
        c.h2x_stalled = stalled
        healthy = []
        for i in range(n_healthy):
            healthy.append(c.request("GET", "/1k.txt" if i % 2 == 0 else "/cgi-bin/hello.py"))
        # The healthy ones do not wait for the stalled ones.
        assert c.run(lambda c: all(c.stream(h).ended for h in healthy), timeout=TIMEOUT + 1), \
            [c.stream(h) for h in healthy]
        assert c.wait_all_ended(timeout=2 * TIMEOUT + slack + 5), c.unended()
        for sid in stalled:
            _assert_stall_reset(c, sid, slack)
        for sid in healthy:
            _assert_healthy(c, sid)
        _assert_usable(c)
        results[key] = None
    except BaseException as e:   # noqa: BLE001 - reported by the main thread
        results[key] = e


def _run_concurrently(clients, n_stall, n_healthy, slack=SLACK):
    """n_stall, n_healthy: per connection, an int or a list (one per client)."""
    n_stalls = n_stall if isinstance(n_stall, list) else [n_stall] * len(clients)
    n_healthies = n_healthy if isinstance(n_healthy, list) else [n_healthy] * len(clients)
    results = {}
    threads = [threading.Thread(target=_stall_session,
                                args=(c, n_stalls[i], n_healthies[i], results, i, slack))
               for i, c in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    errors = [(i, results.get(i, "thread did not finish")) for i in range(len(clients))]
    errors = [(i, e) for i, e in errors if e is not None]
    assert not errors, "\n".join(f"connection {i}: {e!r}" for i, e in errors)
    # Zero stalled streams without a reset, over all connections.
    stalled = [(c, sid) for c in clients for sid in getattr(c, "h2x_stalled", [])]
    assert len(stalled) == sum(n_stalls)
    not_reset = [(c.port, sid, c.stream(sid).frames_str()) for c, sid in stalled
                 if c.stream(sid).rst_code != ErrorCodes.INTERNAL_ERROR]
    assert not not_reset, not_reset


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_300_01_stall_one_stream(frame_client, tls):
    c = frame_client(tls=tls)
    sid = c.request("GET", STALL)
    assert c.wait_stream_end(sid, timeout=TIMEOUT + SLACK + 5), c.stream(sid)
    _assert_stall_reset(c, sid)
    _assert_usable(c)


def test_h2x_300_02_stall_10_streams_one_connection(frame_client):
    c = frame_client()
    _run_concurrently([c], n_stall=10, n_healthy=4)


def test_h2x_300_03_stall_5_connections_x_10_streams(frame_client):
    clients = [frame_client(tls=(i % 2 == 1)) for i in range(5)]
    _run_concurrently(clients, n_stall=10, n_healthy=2)


def test_h2x_300_04_stall_20_repetitions(frame_client):
    """20 repetitions, run side by side: 20 connections, each with 2
    stalled and 2 healthy streams."""
    clients = [frame_client(tls=(i % 4 == 3)) for i in range(20)]
    _run_concurrently(clients, n_stall=2, n_healthy=2)


def test_h2x_300_05_stall_mod_cgi(httpd, frame_client):
    """The same with mod_cgi (forked by the worker) instead of mod_cgid.
    The CGI's SIGTERM is blocked (worker signal mask), so r->pool's cleanup
    waits 3 s before its SIGKILL; the reset must not wait for that.

    Healthy CGIs side by side are left to the mod_cgid variants: under a
    threaded MPM, mod_cgi forks every CGI from a busy multi-threaded process,
    and a healthy CGI's output end was seen held open past Timeout next to
    ten stalled siblings (1 run in 6) - the reason httpd recommends mod_cgid
    for threaded MPMs. Here every stream must still end; the connections
    must stay usable (checked after the stalls)."""
    httpd.reconfigure(**_config(cgi="cgi"))
    try:
        assert "cgi_module" in httpd.loaded_modules()
        clients = [frame_client(), frame_client(tls=True)]
        _run_concurrently(clients, n_stall=[1, 10], n_healthy=[0, 0],
                          slack=SLACK)
    finally:
        for c in frame_client.clients:
            c.check_ended()
        httpd.reconfigure(**_config(cgi="cgid"))


def test_h2x_300_06_stall_after_large_body(frame_client):
    """200 KB (beyond the initial 64 KB window) before the stall: all of it
    arrives (it left the CGI 2 s before the timeout), then the reset."""
    n = 200_000
    c = frame_client()
    sids = [c.request("GET", f"/cgi-bin/stall.py?n={n}&s={STALL_S}") for _ in range(3)]
    assert c.wait_all_ended(timeout=TIMEOUT + SLACK + 5), c.unended()
    for sid in sids:
        s = c.stream(sid)
        assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s
        assert not any(f.end_stream for f in s.frames), s
        assert s.body == (b"0123456789abcdef" * (n // 16 + 1))[:n], f"{len(s.body)} bytes"
        assert c.shape(sid) == "HEADERS DATA RST(INTERNAL_ERROR)", s
    _assert_usable(c)


def test_h2x_300_07_stall_other_clients(httpd):
    """curl over h2c Upgrade (the stalled request is the upgraded stream 1),
    over h2 (TLS) and with prior knowledge: each reports the stream error
    (curl exit 92, INTERNAL_ERROR) instead of waiting or taking a truncated
    body as complete (exit 0)."""
    from h2x.clients import curl
    results = {}

    def run(mode, tls):
        results[mode] = curl(httpd.url(STALL, tls=tls), http=mode, timeout=TIMEOUT + SLACK + 5)
    threads = [threading.Thread(target=run, args=a) for a in
               [("h2c-upgrade", False), ("2", True), ("2-prior", False)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for mode, r in results.items():
        assert r.http_version == "2", (mode, r)
        assert r.exit_code == 92, (mode, r.exit_code, r.stderr)
        assert "INTERNAL_ERROR" in r.stderr, (mode, r.stderr)
        assert r.body == BODY, (mode, r.body)
        assert r.time_total <= TIMEOUT + SLACK + 1, (mode, r.time_total)
    assert len(results) == 3


@pytest.mark.parametrize("mpm", ["worker", "prefork"])
def test_h2x_300_08_stall_other_mpms(httpd, frame_client, mpm):
    """The worker and prefork MPMs (prefork: mod_cgi, and mod_h2x runs one
    stream at a time, so the stalls are served one after the other)."""
    cgi = "cgi" if mpm == "prefork" else "cgid"
    httpd.reconfigure(mpm=mpm, **_config(cgi=cgi))
    try:
        if mpm == "worker":
            _run_concurrently([frame_client(), frame_client(tls=True)], n_stall=5, n_healthy=2)
        else:
            c = frame_client()
            sids = [c.request("GET", STALL) for _ in range(2)]
            assert c.wait_all_ended(timeout=2 * (TIMEOUT + SLACK) + 5), c.unended()
            for sid in sids:
                _assert_stall_reset(c, sid)
            _assert_usable(c)
    finally:
        for c in frame_client.clients:
            c.check_ended()
        httpd.reconfigure(mpm="event", **_config(cgi="cgid"))
