"""563: httpd as an API gateway - HTTP/2 in front, a balancer of HTTP/1.1
backends behind (mod_proxy_balancer, lbmethod_byrequests, mod_proxy_http).

Clients speak h2c (prior knowledge) and h2 (TLS, ALPN) to httpd; httpd
forwards with `ProxyPass /gw/ balancer://gw563/` to two backends
(h2x/http_backend.py, Python's standard library), the set-up of an API
gateway in front of application servers. What matters is that every
stream ends properly whatever happens behind the gateway, and that a
client's reset reaches the backend:

- 60 concurrent streams on one connection spread over both members, each
  with its own, exact JSON body and END_STREAM;
- uploads of 0, 65535, 65536 and 1 MiB + 1 bytes, with and without a
  content-length, echoed byte-exact;
- a chunked answer the backend writes line by line reaches the client
  line by line and ends with END_STREAM after its last line;
- a backend that dies in the middle of a Content-Length body: the stream
  is reset (INTERNAL_ERROR), never ended as if complete; the other streams
  carry on;
- a member killed (balancer://fo563, `retry=1 connectiontimeout=1`):
  requests fail over to the other member, all 200; a request in flight on
  the dead member gets what HTTP/1.1 gets on the same server;
- a client's RST_STREAM(CANCEL) on a request the backend has not answered
  yet closes the proxy's backend connection within a few seconds (not
  after the 60 s Timeout), while the connection's other streams go on;
  and it is not taken for a backend failure: the member stays in the
  balancer's rotation (a client that goes away over HTTP/1.1 does not put
  a member in error state either);
- a worker `timeout=1` (ProxyTimeout of that worker; ProxyTimeout itself
  is per server, and the other tests need the default): a backend silent
  before its headers gives a complete error response with the status
  HTTP/1.1 gets (502 from httpd 2.4's mod_proxy_http, not 504); one that
  stalls mid-body a RST_STREAM, never END_STREAM on a cut body (over
  HTTP/1.1 the connection closes without the last chunk);
- 200 sequential requests over one connection: no error, and the backends'
  own request counts agree with the answers the client got.

Backends are started once for the module (the member killed in test 05 is
started for that test) and stopped by pid.
"""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from h2x.frames import ErrorCodes
from h2x.ports import free_port

pytestmark = pytest.mark.h2

HERE = os.path.dirname(os.path.abspath(__file__))
BACKEND = os.path.join(HERE, "h2x", "http_backend.py")
TLS = pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
MB = 1 << 20


class Backend:
    """One http_backend.py process: NAME on PORT, its events file."""

    def __init__(self, name, port, events):
        self.name, self.port, self.events_path = name, port, events
        self.proc = None
        open(events, "a").close()

    def start(self):
        self.proc = subprocess.Popen(["/usr/bin/python3", BACKEND, self.name, str(self.port),
                                      self.events_path],
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        line = self.proc.stdout.readline().decode().strip()
        assert line == "ready", f"backend {self.name} did not start: {line!r}"
        return self

    def kill(self, sig=signal.SIGKILL):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
        if self.proc is not None:
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
            self.proc.stdout.close()

    def stop(self):
        self.kill(signal.SIGTERM)

    def events(self, what=None, action=None, tag_prefix=None):
        """[(time, event, action, tag)] from the events file, filtered."""
        out = []
        with open(self.events_path) as f:
            for line in f:
                parts = line.split()
                if len(parts) != 4:
                    continue
                t, ev, act, tag = float(parts[0]), parts[1], parts[2], parts[3]
                if what and ev != what or action and act != action:
                    continue
                if tag_prefix and not tag.startswith(tag_prefix):
                    continue
                out.append((t, ev, act, tag))
        return out


def _require_module(env, name):
    path = env.apache_module(name)
    if not path:
        pytest.skip(f"mod_{name}.so is missing (Debian package apache2-bin)")
    return path


@pytest.fixture(scope="module")
def gw(httpd, env, tmp_path_factory):
    """The gateway: httpd reconfigured, backends b1, b2 (balancer gw563),
    b3 (worker timeout=1) running; `gw.doomed` is the fo563 member that
    test 05 starts and kills."""
    mods = {n: _require_module(env, n)
            for n in ("slotmem_shm", "proxy_balancer", "lbmethod_byrequests")}
    d = tmp_path_factory.mktemp("gw563")
    backends = {}

    class GW:
        pass
    g = GW()
    try:
        for name in ("b1", "b2", "b3"):
            backends[name] = Backend(name, free_port(), str(d / f"{name}.events")).start()
        g.b1, g.b2, g.b3 = backends["b1"], backends["b2"], backends["b3"]
        g.doomed = Backend("doomed", free_port(), str(d / "doomed.events"))
        g.httpd = httpd
        p1, p2, p3, pd = g.b1.port, g.b2.port, g.b3.port, g.doomed.port
        httpd.reconfigure(extra_global=f"""
LoadModule slotmem_shm_module {mods['slotmem_shm']}
LoadModule proxy_balancer_module {mods['proxy_balancer']}
LoadModule lbmethod_byrequests_module {mods['lbmethod_byrequests']}
<Proxy "balancer://gw563">
    BalancerMember "http://127.0.0.1:{p1}/gw"
    BalancerMember "http://127.0.0.1:{p2}/gw"
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/gw/" "balancer://gw563/"
<Proxy "balancer://fo563">
    BalancerMember "http://127.0.0.1:{p1}/fo" retry=1 connectiontimeout=1
    BalancerMember "http://127.0.0.1:{pd}/fo" retry=1 connectiontimeout=1
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/fo/" "balancer://fo563/"
ProxyPass "/short/" "http://127.0.0.1:{p3}/short/" timeout=1
{_balancer("cxp", p1, p2)}
{_balancer("cxs", p1, p2)}
{_balancer("cbp", p1, p2, "disablereuse=on")}
{_balancer("cbs", p1, p2, "disablereuse=on")}
""")
        yield g
    finally:
        try:
            httpd.reconfigure()
        finally:
            for b in list(backends.values()) + [getattr(g, "doomed", None)]:
                if b is not None:
                    b.kill()


# -- helpers ------------------------------------------------------------------

def _balancer(name, p1, p2, params=""):
    """balancer://<name>563 of b1 and b2 (members at path /<name>), mapped
    to /<name>/: tests 06 and 06b each have their own (one per h2c/h2), so
    a member a test leaves in error state does not change the others."""
    return f"""<Proxy "balancer://{name}563">
    BalancerMember "http://127.0.0.1:{p1}/{name}" {params}
    BalancerMember "http://127.0.0.1:{p2}/{name}" {params}
    ProxySet lbmethod=byrequests
</Proxy>
ProxyPass "/{name}/" "balancer://{name}563/"
"""


def _json_ok(s, n, tag):
    """The stream got a 200 with the JSON body asked for; returns its backend."""
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert len(s.body) == n, (n, s.body[:200])
    obj = json.loads(s.body)
    assert obj["n"] == n and obj["tag"] == tag, obj
    assert s.header("x-backend") == obj["backend"], (s.header("x-backend"), obj["backend"])
    return obj["backend"]


def _http11(httpd, path, method="GET", timeout=15.0):
    """One HTTP/1.1 request on a fresh connection (Connection: close) to the
    plain port; returns the raw bytes read until the server closed (or the
    timeout)."""
    sock = socket.create_connection(("127.0.0.1", httpd.http_port), timeout=timeout)
    data = b""
    try:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: localhost\r\n"
                     f"Connection: close\r\n\r\n".encode())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except socket.timeout:
                break
            except OSError:
                break
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    return data


def _status11(raw):
    try:
        return int(raw.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None


class _Bg(threading.Thread):
    """Runs fn() in the background; .result after join()."""

    def __init__(self, fn):
        super().__init__(daemon=True)
        self.fn, self.result, self.error = fn, None, None
        self.start()

    def run(self):
        try:
            self.result = self.fn()
        except Exception as e:    # noqa: BLE001 - reported by the test
            self.error = e


def _wait_for(pred, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    return pred()


def _where(g, action, tag, backends):
    """The backend that received request `tag` (exact), or None."""
    for b in backends:
        if any(e[3] == tag for e in b.events("req", action)):
            return b
    return None


# -- tests --------------------------------------------------------------------

@TLS
def test_h2x_563_01_concurrent_streams_balanced(gw, frame_client, tls):
    """60 concurrent streams on one connection through balancer://gw563:
    every JSON body exact (its own size and tag), END_STREAM on each, both
    members used, and the members' own counts match the answers."""
    prefix = f"t01{'s' if tls else 'p'}{time.monotonic_ns()}-"
    c = frame_client(tls=tls)
    asked = {}
    for i in range(60):
        n = 64 + i * 997 % 20000
        tag = f"{prefix}{i}"
        asked[c.request("GET", f"/gw/json?n={n}&tag={tag}")] = (n, tag)
    assert c.wait_all_ended(timeout=20), [r.frames_str() for r in c.unended()]
    seen = {}
    for sid, (n, tag) in asked.items():
        name = _json_ok(c.stream(sid), n, tag)
        seen[name] = seen.get(name, 0) + 1
    assert set(seen) == {"b1", "b2"}, seen
    counts = {b.name: len(b.events("req", "json", prefix)) for b in (gw.b1, gw.b2)}
    assert counts == seen, (counts, seen)
    assert not c.goaways


@TLS
@pytest.mark.parametrize("with_cl", [True, False], ids=["cl", "nocl"])
@pytest.mark.parametrize("size", [0, 65535, 65536, MB + 1])
def test_h2x_563_02_upload_echo(gw, frame_client, tls, with_cl, size):
    """POST /gw/echo: the body comes back byte-exact, with END_STREAM,
    whether the h2 request carried a content-length or not."""
    body = os.urandom(size)
    c = frame_client(tls=tls)
    headers = [("content-type", "application/octet-stream")]
    if with_cl:
        headers.append(("content-length", str(size)))
    sid = c.request("POST", f"/gw/echo?tag=t02-{size}", headers=headers,
                    end_stream=not body)
    if body:
        assert c.send_data(sid, body, end_stream=True, timeout=20), c.stream(sid).frames_str()
    assert c.wait_stream_end(sid, timeout=30), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert len(s.body) == size and s.body == body, (len(s.body), size)
    assert s.header("x-backend") in ("b1", "b2")


@TLS
def test_h2x_563_03_streamed_lines(gw, frame_client, tls):
    """A chunked answer written a line every 0.4 s: the lines arrive as
    they are written (the first long before the last), and the stream ends
    with END_STREAM right after the last line."""
    c = frame_client(tls=tls)
    t0 = time.monotonic()
    sid = c.request("GET", "/gw/stream?count=5&delay=0.4&tag=t03")
    assert c.wait_stream_end(sid, timeout=20), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    arrivals, buf = [], b""
    for f in s.frames:
        if f.type == "DATA" and f.data:
            buf += f.data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                i, written, name = line.split()
                arrivals.append((int(i), f.t, float(written)))
    assert buf == b"" and [a[0] for a in arrivals] == list(range(5)), s.body
    first, last = arrivals[0][1], arrivals[-1][1]
    assert first - t0 < 1.5, f"first line after {first - t0:.2f}s"
    assert last - first > 1.0, f"lines not spread: {last - first:.2f}s apart"
    # Each line arrives soon after the backend wrote it (generous bound).
    assert max(at - written for _, at, written in arrivals) < 0.8, arrivals
    # END_STREAM is on the last frame, close to the last line.
    assert s.frames[-1].end_stream and s.frames[-1].type == "DATA", s.frames_str()
    assert s.end_time - last < 1.0, s.frames_str()


@TLS
# mod_proxy_http: the backend closed before the end of its body.
@pytest.mark.expect_log(r"AH01110: error reading response")
def test_h2x_563_04_backend_dies_mid_body(gw, frame_client, tls):
    """The backend sends headers (Content-Length 2000) and 1000 bytes, then
    closes: each such stream is reset with INTERNAL_ERROR and never gets
    END_STREAM; the JSON streams beside them on the connection complete,
    and the connection serves on."""
    c = frame_client(tls=tls)
    dies = [c.request("GET", f"/gw/die-mid-body?n=1000&tag=t04-{i}") for i in range(4)]
    goods = {c.request("GET", f"/gw/json?n=3000&tag=t04g-{i}"): f"t04g-{i}" for i in range(4)}
    assert c.wait_all_ended(timeout=15), [r.frames_str() for r in c.unended()]
    for sid in dies:
        s = c.stream(sid)
        assert s.status == 200, s.frames_str()
        assert s.ended_by == "RST_STREAM", s.frames_str()
        assert s.rst_code == ErrorCodes.INTERNAL_ERROR, s.frames_str()
        assert not any(f.end_stream for f in s.frames), s.frames_str()
        assert len(s.body) <= 1000 and s.body == b"d" * len(s.body), s.body[-100:]
    for sid, tag in goods.items():
        _json_ok(c.stream(sid), 3000, tag)
    after = c.request("GET", "/gw/json?n=100&tag=t04-after")
    assert c.wait_stream_end(after, timeout=10)
    _json_ok(c.stream(after), 100, "t04-after")
    assert not c.goaways


# mod_proxy: connection refused by the dead member, which is disabled for
# retry=1 s (AH00957, AH00959, AH01114); the requests in flight on it
# (AH01102, and AH00898 for the HTTP/1.1 one's 502).
@pytest.mark.expect_log(r"AH00957", r"AH00959", r"AH01114", r"AH01102", r"AH00898")
def test_h2x_563_05_member_killed_failover(gw, frame_client):
    """balancer://fo563 has b1 and `doomed`. With a slow request of h2 and
    one of HTTP/1.1 in flight on `doomed`, it is killed (SIGKILL): the
    in-flight h2 stream gets what the HTTP/1.1 request gets on the same
    server (502), as a complete response with END_STREAM; the slow
    requests on b1 complete; every later request fails over to b1 (200),
    while the balancer retries the dead member every second."""
    doomed, b1 = gw.doomed, gw.b1
    doomed.start()
    prefix = f"t05-{time.monotonic_ns()}-"
    c = frame_client()
    # Both members serve.
    names = set()
    for i in range(4):
        sid = c.request("GET", f"/fo/json?n=100&tag={prefix}w{i}")
        assert c.wait_stream_end(sid, timeout=10)
        names.add(_json_ok(c.stream(sid), 100, f"{prefix}w{i}"))
    assert names == {"b1", "doomed"}, names

    # A slow request of each protocol lands on `doomed` (byrequests
    # alternates: at most a few tries).
    h2_slow, h1_slow = {}, {}    # tag -> sid / thread
    for proto in ("h2", "h1"):
        for i in range(4):
            tag = f"{prefix}{proto}slow{i}"
            if proto == "h2":
                h2_slow[tag] = c.request("GET", f"/fo/slow?delay=3&tag={tag}")
            else:
                h1_slow[tag] = _Bg(lambda t=tag: _http11(gw.httpd, f"/fo/slow?delay=3&tag={t}"))
            where = _wait_for(lambda t=tag: _where(gw, "slow", t, (b1, doomed)), 5)
            assert where, f"request {tag} reached no backend"
            if where is doomed:
                break
        else:
            pytest.fail(f"no {proto} request went to the doomed member")
    t_kill = time.monotonic()
    doomed.kill()
    on_doomed = {t for t in list(h2_slow) + list(h1_slow)
                 if _where(gw, "slow", t, (doomed,))}

    # Failover: every request is answered by b1.
    for i in range(10):
        sid = c.request("GET", f"/fo/json?n=200&tag={prefix}f{i}")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        assert _json_ok(c.stream(sid), 200, f"{prefix}f{i}") == "b1"
    # The member is retried after retry=1 s and fails over again.
    time.sleep(1.2)
    for i in range(4):
        sid = c.request("GET", f"/fo/json?n=200&tag={prefix}r{i}")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        assert _json_ok(c.stream(sid), 200, f"{prefix}r{i}") == "b1"

    # The slow requests: on b1 complete, on `doomed` what HTTP/1.1 got.
    assert c.wait_all_ended(timeout=10), [r.frames_str() for r in c.unended()]
    h1_dead_status = None
    for tag, th in h1_slow.items():
        th.join(15)
        assert th.error is None, th.error
        if tag in on_doomed:
            h1_dead_status = _status11(th.result)
            assert h1_dead_status == 502, th.result[:300]
        else:
            assert _status11(th.result) == 200 and th.result.endswith(b"slow b1\n"), th.result
    for tag, sid in h2_slow.items():
        s = c.stream(sid)
        if tag in on_doomed:
            assert s.ended_by == "END_STREAM", s.frames_str()
            assert s.status == h1_dead_status, (s.status, h1_dead_status, s.frames_str())
            assert s.end_time - t_kill < 2.5, s.end_time - t_kill
        else:
            assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
            assert s.body == b"slow b1\n"
    # The balancer put the dead member in error state (at least once).
    assert any("AH00959" in ln and f"127.0.0.1:{doomed.port})" in ln
               for ln in gw.httpd.error_log_lines()), "dead member never disabled"
    assert not c.goaways


def _cancel_slow(gw, c, prefix, tag, others=()):
    """Sends /<prefix>/slow?delay=10 (after the requests `others`, a list of
    (path, tag)), resets it with CANCEL once the backend has it; returns
    (backend, time of the reset, time the backend saw the close or None
    within 3.5 s, {tag: sid} of the others)."""
    sids = {t: c.request("GET", path) for path, t in others}
    slow = c.request("GET", f"/{prefix}/slow?delay=10&tag={tag}")
    where = _wait_for(lambda: _where(gw, "slow", tag, (gw.b1, gw.b2)), 5)
    assert where, "the slow request reached no backend"
    c.run(timeout=0.4)
    assert not c.stream(slow).ended, c.stream(slow).frames_str()
    t_reset = time.monotonic()
    c.reset(slow, ErrorCodes.CANCEL)
    closed = None
    deadline = t_reset + 3.5
    while closed is None and time.monotonic() < deadline:
        c.run(timeout=0.05)
        ev = [e for e in where.events("closed", "slow") if e[3] == tag]
        closed = ev[0][0] if ev else None
    # Nothing but what was in flight follows the reset; never END_STREAM.
    assert not any(f.end_stream for f in c.stream(slow).frames), c.stream(slow).frames_str()
    return where, t_reset, closed, sids


@TLS
# mod_proxy_http, when its backend read is cut short by the reset: AH01102,
# and its 502 for a response nobody reads any more (AH00898).
@pytest.mark.expect_log(r"AH01102", r"AH00898")
def test_h2x_563_06_client_cancel_reaches_backend(gw, frame_client, tls):
    """RST_STREAM(CANCEL) on /slow?delay=10 through a balancer, before the
    backend answered: the backend sees the proxy's connection close within
    3 s (the client's reset frees the work, not the 60 s Timeout); a
    streamed answer beside it on the connection goes on to its END_STREAM,
    and new streams are served."""
    prefix = "cxs" if tls else "cxp"
    tag = f"t06{prefix}-{time.monotonic_ns()}"
    c = frame_client(tls=tls)
    where, t_reset, closed, sids = _cancel_slow(
        gw, c, prefix, tag, [(f"/{prefix}/stream?count=8&delay=0.3&tag={tag}-s", "stream")])
    assert closed is not None, "the backend still waits 3.5 s after the client's reset"
    assert closed - t_reset < 3.0, f"backend connection closed {closed - t_reset:.2f}s after reset"
    assert not [e for e in where.events("done", "slow") if e[3] == tag]
    # The other stream carries on.
    stream = sids["stream"]
    assert c.wait_stream_end(stream, timeout=10), c.stream(stream).frames_str()
    s = c.stream(stream)
    assert s.status == 200 and s.ended_by == "END_STREAM", s.frames_str()
    assert s.body.count(b"\n") == 8, s.body
    sid = c.request("GET", f"/{prefix}/json?n=500&tag={tag}-after")
    assert c.wait_stream_end(sid, timeout=10)
    _json_ok(c.stream(sid), 500, f"{tag}-after")
    assert not c.goaways


@TLS
# mod_proxy_http, when its backend read is cut short by the reset: AH01102,
# and its 502 for a response nobody reads any more (AH00898).
@pytest.mark.expect_log(r"AH01102", r"AH00898")
def test_h2x_563_06b_cancel_keeps_member_in_rotation(gw, frame_client, tls):
    """A client's cancel is no backend failure: after RST_STREAM(CANCEL) on
    a request its member had not answered yet (balancer members with
    disablereuse=on, so every backend request has a fresh connection),
    byrequests still spreads the next requests over both members. Over
    HTTP/1.1 a client that goes away does not put a member in error state
    either (mod_proxy_http notices only when the backend answers), and with
    the default retry=60 a member in error state is left out for a minute:
    a gateway whose clients cancel (browsers, gRPC deadlines) would lose its
    backends one by one."""
    prefix = "cbs" if tls else "cbp"
    tag = f"t06b{prefix}-{time.monotonic_ns()}"
    c = frame_client(tls=tls)
    where, t_reset, closed, _ = _cancel_slow(gw, c, prefix, tag)
    time.sleep(0.3)
    names = []
    for i in range(6):
        sid = c.request("GET", f"/{prefix}/json?n=300&tag={tag}-{i}")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        names.append(_json_ok(c.stream(sid), 300, f"{tag}-{i}"))
    assert set(names) == {"b1", "b2"}, (
        f"after the client's cancel of a request on {where.name} (backend saw the close "
        f"{'%.2fs after the reset' % (closed - t_reset) if closed else 'never'}), "
        f"the balancer sent the next 6 requests to {names}: member {where.name} was put "
        f"in error state")
    assert not c.goaways


# mod_proxy_http's read timeout before the status line, and its 502.
@pytest.mark.expect_log(r"AH01102", r"AH00898")
def test_h2x_563_07a_timeout_before_headers(gw, frame_client):
    """The worker's timeout=1 expires before the backend's headers
    (/short/slow?delay=3): a complete error response ending with
    END_STREAM, with the status HTTP/1.1 gets on the same server (httpd
    2.4's mod_proxy_http answers 502 "Error reading from remote server"
    here, not 504)."""
    h1 = _Bg(lambda: _http11(gw.httpd, "/short/slow?delay=3&tag=t07a-h1"))
    c = frame_client()
    sid = c.request("GET", "/short/slow?delay=3&tag=t07a-h2")
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    s = c.stream(sid)
    h1.join(15)
    assert h1.error is None, h1.error
    h1_status = _status11(h1.result)
    assert h1_status in (502, 504), h1.result[:300]
    assert s.status == h1_status and s.ended_by == "END_STREAM", (h1_status, s.frames_str())
    assert s.rst_code is None and b"Proxy Error" in s.body, s.frames_str()
    assert 0.5 < s.end_time - s.start_time < 2.8, s.end_time - s.start_time


# mod_proxy_http's read timeout in the body.
@pytest.mark.expect_log(r"AH01110: error reading response")
def test_h2x_563_07b_timeout_mid_body_reset(gw, frame_client):
    """The backend's chunked answer stalls after its first line, past the
    worker's timeout=1: the stream is reset (INTERNAL_ERROR) with the first
    line delivered, never ended with END_STREAM on the cut body; HTTP/1.1
    on the same server gets the first line and a close without the last
    chunk."""
    h1 = _Bg(lambda: _http11(gw.httpd, "/short/stream?count=3&delay=3&tag=t07b-h1"))
    c = frame_client()
    sid = c.request("GET", "/short/stream?count=3&delay=3&tag=t07b-h2")
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.status == 200, s.frames_str()
    assert s.ended_by == "RST_STREAM" and s.rst_code == ErrorCodes.INTERNAL_ERROR, s.frames_str()
    assert not any(f.end_stream for f in s.frames), s.frames_str()
    assert s.body.startswith(b"0 ") and s.body.count(b"\n") == 1, s.body
    assert s.end_time - s.start_time < 2.8, s.end_time - s.start_time
    h1.join(15)
    assert h1.error is None, h1.error
    raw = h1.result
    assert _status11(raw) == 200 and b" b3\n" in raw, raw[:300]
    assert not raw.endswith(b"0\r\n\r\n"), raw[-100:]


def test_h2x_563_08_sequential_counts(gw, frame_client):
    """200 sequential requests on one h2c connection through the balancer:
    all 200 with END_STREAM, and the backends counted exactly the requests
    the client saw each of them answer (byrequests: an even spread)."""
    prefix = f"t08-{time.monotonic_ns()}-"
    c = frame_client()
    seen = {"b1": 0, "b2": 0}
    for i in range(200):
        tag = f"{prefix}{i}"
        sid = c.request("GET", f"/gw/json?n=128&tag={tag}")
        assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
        seen[_json_ok(c.stream(sid), 128, tag)] += 1
    counts = {b.name: len(b.events("req", "json", prefix)) for b in (gw.b1, gw.b2)}
    assert counts == seen and sum(counts.values()) == 200, (counts, seen)
    assert 90 <= counts["b1"] <= 110, counts
    assert not c.goaways and not c.closed
