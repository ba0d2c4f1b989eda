"""595: gRPC through mod_h2x with a second, independent client: @grpc/grpc-js.

grpc-js is the pure-JavaScript gRPC implementation on Node.js's http2
module (nghttp2 inside Node), what most Node gRPC services use; test_555's
python3-grpcio is the C core.  The server side is test_555's: httpd passes
`/h2x.Test/` to the python3-grpcio backend (h2x/grpc_backend.py) with
mod_proxy_http2.  test/node/grpc_client.js (grpc.Client with identity
serializers: raw Buffers, no .proto) runs one scenario per process over h2
(TLS, the session certificate verified) or h2c (prior knowledge,
grpc.credentials.createInsecure()) and prints one JSON object: statuses,
details, metadata, the messages with their arrival times, and the HTTP/2
sessions and streams grpc-js opened (ALPN, response HEADERS and whether
they ended the stream, trailers, RST_STREAM codes).  Asserted is what
grpc-js saw: byte-exact unary calls on frame edges up to 4 MiB; error
statuses as trailers-only responses; initial and trailing metadata; a
server stream delivered message by message as the backend sends it, and
its cancel reaching the backend at once; exact server streams; a
client-streaming upload and an early reject of one; 50 bidi round trips
in lock step; a deadline expiring mid-stream (DEADLINE_EXCEEDED, the
client's RST_STREAM(CANCEL), the backend's call ending at once); 100
concurrent calls on one connection.

Needs Node.js (`node`) and test/node/node_modules (`npm ci --prefix
test/node`, from test/node/package-lock.json; scripts/install-deps runs it).
"""

import hashlib
import json
import os
import shutil
import subprocess
import time

import pytest

# test_555's server: the grpcio backend behind mod_proxy_http2 (importing
# test_555 also skips this module when python3-grpcio is missing).
from test_555_grpc import backend, doomed_port, ended, grpc_conf, grpc_server  # noqa: F401

pytestmark = pytest.mark.h2

HERE = os.path.dirname(os.path.abspath(__file__))
NODE_DIR = os.path.join(HERE, "node")
CLIENT = os.path.join(NODE_DIR, "grpc_client.js")
INSTALL = "npm ci --prefix test/node"

NGHTTP2_CANCEL = 8
UNARY_SIZES = [0, 1, 5, 16379, 16380, 16384, 16385, 65535, 1 << 20, 4 << 20]


@pytest.fixture(scope="module")
def node():
    """The node binary, with @grpc/grpc-js installed in test/node."""
    path = shutil.which("node")
    if not path:
        pytest.skip("needs Node.js: `node` not found (Debian packages nodejs npm, which "
                    f"scripts/install-deps installs), then `{INSTALL}`")
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "@grpc", "grpc-js")):
        pytest.skip(f"needs @grpc/grpc-js: test/node/node_modules/@grpc/grpc-js is missing "
                    f"(install it with `{INSTALL}`)")
    return path


class GrpcJs:
    """Runs test/node/grpc_client.js against the module's server."""

    def __init__(self, node, server, env, tmp_dir):
        self.node = node
        self.server = server
        self.env = env
        self.tmp_dir = tmp_dir
        # A clean environment: no proxy variables (grpc-js honours
        # https_proxy, grpc_proxy), no extra CAs, no NODE_OPTIONS.
        self.proc_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}

    def plan(self, tls, scenario, **kw):
        if tls:
            target, ca = f"localhost:{self.server.https_port}", self.env.cert()[0]
        else:
            target, ca = f"127.0.0.1:{self.server.http_port}", None
        return dict(target=target, ca=ca, scenario=scenario, **kw)

    def payload_file(self, messages):
        path = os.path.join(self.tmp_dir, f"payload-{time.monotonic_ns()}")
        with open(path, "wb") as f:
            f.write(b"".join(messages))
        return path

    def run(self, tls, scenario, timeout=60, **kw):
        """One scenario (see grpc_client.js); its JSON output."""
        proc = subprocess.run([self.node, CLIENT, json.dumps(self.plan(tls, scenario, **kw))],
                              capture_output=True, text=True, timeout=timeout,
                              env=self.proc_env)
        assert proc.returncode == 0, \
            f"grpc_client.js {scenario} exited {proc.returncode}:\n{proc.stderr}"
        return json.loads(proc.stdout)

    def run_paused(self, tls, scenario, meanwhile, timeout=60, **kw):
        """A scenario with pause: `meanwhile()` runs when the client's call
        is over and its channel still open; then the client goes on
        (`then` calls).  Returns (output, what meanwhile returned)."""
        proc = subprocess.Popen(
            [self.node, CLIENT, json.dumps(self.plan(tls, scenario, pause=True, **kw))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=self.proc_env)
        try:
            errors = []
            while True:
                line = proc.stderr.readline()
                if not line or line.strip() == "paused":
                    break
                errors.append(line)
            assert line, f"grpc_client.js ended before its pause:\n{''.join(errors)}" \
                         f"{proc.stderr.read()}"
            seen = meanwhile()
            out, err = proc.communicate("go\n", timeout=timeout)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
        assert proc.returncode == 0, \
            f"grpc_client.js {scenario} exited {proc.returncode}:\n{''.join(errors)}{err}"
        return json.loads(out), seen


@pytest.fixture(scope="module")
def grpcjs(node, grpc_server, env, tmp_path_factory):
    return GrpcJs(node, grpc_server, env, str(tmp_path_factory.mktemp("grpcjs")))


@pytest.fixture(params=[True, False], ids=["h2", "h2c"])
def tls(request):
    return request.param


def brief(call):
    """A call without its message list, for assertion messages."""
    return {k: v for k, v in call.items() if k != "messages"}


def assert_one_connection(out, tls):
    """grpc-js did everything on one HTTP/2 session of the expected
    protocol, and no GOAWAY came."""
    sessions = out["sessions"]
    assert len(sessions) == 1, sessions
    assert sessions[0]["alpn"] == ("h2" if tls else "h2c"), sessions
    assert sessions[0]["goaway"] is None, sessions
    assert {s["session"] for s in out["streams"]} == {0}, out["streams"]


def assert_ok(call, messages=None):
    assert call["code_name"] == "OK", brief(call)
    if messages is not None:
        got = [(m["len"], m["sha256"]) for m in call["messages"]]
        assert got == [(len(m), hashlib.sha256(m).hexdigest()) for m in messages], brief(call)


def payload(tag, size):
    return hashlib.shake_256(b"h2x-595-%s-%d" % (tag.encode(), size)).digest(size) \
        if size else b""


def wait_ended(events, method, tag, timeout):
    deadline = time.monotonic() + timeout
    while not ended(events, method, tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    return ended(events, method, tag)


def test_h2x_595_01_unary_exact(grpcjs, tls):
    """Echo calls of 0 and 1 bytes, on the 16 KiB DATA frame edges (16379
    bytes + the 5-byte gRPC prefix fill one frame of 16384), the 64 KiB
    window edge, 1 MiB and 4 MiB, one after the other on one channel:
    each comes back byte-exact with OK."""
    msgs = [payload("unary", size) for size in UNARY_SIZES]
    out = grpcjs.run(tls, "unary", method="/h2x.Test/Echo",
                     payload_file=grpcjs.payload_file(msgs),
                     calls=[{"size": len(m)} for m in msgs])
    assert len(out["calls"]) == len(msgs)
    for msg, call in zip(msgs, out["calls"]):
        assert call["sent"]["bytes"] == len(msg), brief(call)
        assert_ok(call, [msg])
    assert_one_connection(out, tls)


@pytest.mark.parametrize("code,details", [("NOT_FOUND", "gone"),
                                          ("PERMISSION_DENIED", "no"),
                                          ("INTERNAL", "boom"),
                                          ("UNAVAILABLE", "later")])
def test_h2x_595_02_error_status_trailers_only(grpcjs, tls, code, details):
    """The backend aborts the call: grpc-js gets the code and details, in
    a trailers-only response (one HEADERS frame with END_STREAM carrying
    :status 200 and grpc-status; no DATA, no second HEADERS)."""
    out = grpcjs.run(tls, "unary", method="/h2x.Test/Fail",
                     calls=[{"text": f"{code}:{details}"}])
    call = out["calls"][0]
    assert (call["code_name"], call["details"]) == (code, details), brief(call)
    assert call["messages"] == [], call
    (stream,) = out["streams"]
    assert stream["path"] == "/h2x.Test/Fail", stream
    assert stream["response"][":status"] == "200", stream
    assert stream["response"].get("grpc-status") == str(call["code"]), stream
    assert stream["headers_end_stream"] is True, stream
    assert stream["trailers"] is None, stream
    assert_one_connection(out, tls)


def test_h2x_595_03_metadata(grpcjs, tls):
    """Request metadata reaches the backend; its initial metadata (in the
    response HEADERS) and trailing metadata (in the trailers, beside
    grpc-status) reach grpc-js."""
    out = grpcjs.run(tls, "unary", method="/h2x.Test/Meta", calls=[{"text": ""}],
                     metadata={"x-h2x-ask": "what-was-asked"})
    call = out["calls"][0]
    assert_ok(call, [b"what-was-asked"])
    assert call["metadata"].get("x-h2x-initial") == "hello", brief(call)
    assert call["trailers"].get("x-h2x-trailer") == "bye", brief(call)
    (stream,) = out["streams"]
    assert stream["headers_end_stream"] is False, stream
    assert stream["trailers"].get("grpc-status") == "0", stream
    assert stream["trailers"].get("x-h2x-trailer") == "bye", stream


def test_h2x_595_04_server_stream_as_sent(grpcjs, backend, tls):
    """Drip sends a 16-byte message every 50 ms: grpc-js gets them one by
    one as they are sent (not held back and delivered in bursts), in
    order; it cancels after 20: the backend's call ends within a few
    seconds (not when its 60 s stream would run out), and the channel
    carries on."""
    _, events = backend
    tag = f"js-paced-{'h2' if tls else 'h2c'}-{time.monotonic_ns()}"

    def meanwhile():
        t_cancelled = time.monotonic()
        return t_cancelled, wait_ended(events, "Drip", tag, 5)

    out, (t_cancelled, times) = grpcjs.run_paused(
        tls, "server", meanwhile, method="/h2x.Test/Drip", text=tag, cancel_after=20,
        then=["after cancel"])
    call = out["calls"][0]
    assert call["code_name"] == "CANCELLED", brief(call)
    got = call["messages"]
    assert [m["text"] for m in got] == ["%016d" % i for i in range(20)], brief(call)
    t = [m["t_ms"] for m in got]
    gaps = [b - a for a, b in zip(t, t[1:])]
    # 19 gaps of 50 ms at the backend; generous bounds for a busy machine.
    assert t[-1] - t[0] > 500, t
    assert max(gaps) < 1000, gaps
    assert sum(g >= 20 for g in gaps) >= 12, gaps
    assert times, "the backend never saw the cancelled call end"
    assert times[0] - t_cancelled < 3, times[0] - t_cancelled
    drip = [s for s in out["streams"] if s["path"] == "/h2x.Test/Drip"]
    assert [s["rst_code"] for s in drip] == [NGHTTP2_CANCEL], drip
    assert_ok(out["then"][0], [b"after cancel"])
    assert_one_connection(out, tls)


@pytest.mark.parametrize("count,size", [(0, 0), (500, 10), (40, 100_000)])
def test_h2x_595_05_server_stream_exact(grpcjs, tls, count, size):
    """Server streams arrive complete and in order, also one of no
    messages (headers and trailers only)."""
    out = grpcjs.run(tls, "server", method="/h2x.Test/Split", text=f"{count} {size}")
    call = out["calls"][0]
    assert_ok(call, [bytes([i % 251]) * size for i in range(count)])


def test_h2x_595_06_stream_then_error(grpcjs, tls):
    """Messages, then an error status in the trailers: grpc-js gets the
    messages and then the status."""
    out = grpcjs.run(tls, "server", method="/h2x.Test/Split",
                     text="3 64 RESOURCE_EXHAUSTED:quota")
    call = out["calls"][0]
    assert (call["code_name"], call["details"]) == ("RESOURCE_EXHAUSTED", "quota"), brief(call)
    assert [m["text"] for m in call["messages"]] == [chr(i) * 64 for i in range(3)]


def test_h2x_595_07_client_streaming_upload(grpcjs, tls):
    """300 messages of 0 to 40,000 bytes (5.8 MB) from grpc-js, written
    with its flow control (write()/drain): the backend counts and hashes
    exactly what the test made."""
    msgs = [payload("up%d" % i, (i * 137) % 40001) for i in range(300)]
    digest = hashlib.sha256(b"".join(msgs)).hexdigest()
    out = grpcjs.run(tls, "client", method="/h2x.Test/Count",
                     payload_file=grpcjs.payload_file(msgs), sizes=[len(m) for m in msgs])
    call = out["calls"][0]
    assert call["sent"] == {"count": 300, "bytes": sum(map(len, msgs)), "sha256": digest}
    expect = f"300 {sum(map(len, msgs))} {digest}".encode()
    assert_ok(call, [expect])
    assert call["messages"][0]["text"] == expect.decode()


def test_h2x_595_08_early_reject_of_an_upload(grpcjs, tls):
    """The backend answers FAILED_PRECONDITION after the first of 200
    messages of 32 KiB while grpc-js is still sending: grpc-js gets that
    status (not a reset, not a hang) and the channel carries on."""
    msgs = [bytes([i % 251]) * 32768 for i in range(200)]
    out = grpcjs.run(tls, "client", method="/h2x.Test/Reject",
                     payload_file=grpcjs.payload_file(msgs), sizes=[len(m) for m in msgs],
                     then=["after reject"])
    call = out["calls"][0]
    assert (call["code_name"], call["details"]) == ("FAILED_PRECONDITION", "enough"), \
        brief(call)
    assert call["end_ms"] - call["start_ms"] < 10_000, brief(call)
    assert_ok(out["then"][0], [b"after reject"])
    assert_one_connection(out, tls)


def test_h2x_595_09_bidi_lock_step(grpcjs, tls):
    """50 lock-step round trips on one Chat call (on a channel a unary
    call has connected): "ping <i>" is sent when the answer to
    "ping <i-1>" has arrived; all 50 come back in order and the call ends
    OK.  The duration is printed (pytest -s or -rP), not asserted tightly
    (~0.1 s here; 50 round trips held 20 ms each would take 1 s)."""
    out = grpcjs.run(tls, "bidi", method="/h2x.Test/Chat", rounds=50, before=["warm up"])
    assert_ok(out["before"][0], [b"warm up"])
    call = out["calls"][0]
    assert_ok(call)
    assert [m["text"] for m in call["messages"]] == ["ping %d" % i for i in range(50)]
    rounds_ms = call["last_answer_ms"] - call["start_ms"]
    print(f"\n595 bidi lock step, 50 round trips ({'h2' if tls else 'h2c'}): "
          f"{rounds_ms:.1f} ms to the last answer, call {call['end_ms'] - call['start_ms']:.1f} ms")
    assert rounds_ms < 10_000, rounds_ms
    assert_one_connection(out, tls)


def test_h2x_595_10_deadline_mid_stream(grpcjs, backend, tls):
    """A 1 s deadline on a Drip stream: messages arrive, then grpc-js
    ends the call with DEADLINE_EXCEEDED on time and resets the stream
    (RST_STREAM(CANCEL)); the backend's call ends within a few seconds
    (not after its 60 s), and the channel carries on."""
    _, events = backend
    tag = f"js-deadline-{'h2' if tls else 'h2c'}-{time.monotonic_ns()}"

    def meanwhile():
        t_expired = time.monotonic()
        return t_expired, wait_ended(events, "Drip", tag, 5)

    out, (t_expired, times) = grpcjs.run_paused(
        tls, "server", meanwhile, method="/h2x.Test/Drip", text=tag, deadline_ms=1000,
        then=["after deadline"])
    call = out["calls"][0]
    assert call["code_name"] == "DEADLINE_EXCEEDED", brief(call)
    took = call["end_ms"] - call["start_ms"]
    assert 900 < took < 3000, took
    assert len(call["messages"]) >= 5, brief(call)
    assert [m["text"] for m in call["messages"]] == \
        ["%016d" % i for i in range(len(call["messages"]))]
    drip = [s for s in out["streams"] if s["path"] == "/h2x.Test/Drip"]
    assert [s["rst_code"] for s in drip] == [NGHTTP2_CANCEL], drip
    assert times, "the backend never saw the call end"
    assert times[0] - t_expired < 3, times[0] - t_expired
    assert_ok(out["then"][0], [b"after deadline"])
    assert_one_connection(out, tls)


def test_h2x_595_11_many_calls_one_channel(grpcjs, tls):
    """100 unary calls started at once on one channel: all multiplexed on
    one HTTP/2 connection, all in flight together, each with its own
    answer."""
    out = grpcjs.run(tls, "unary", method="/h2x.Test/Echo", concurrent=True,
                     calls=[{"text": "call %d" % i} for i in range(100)])
    calls = out["calls"]
    assert len(calls) == 100
    for i, call in enumerate(calls):
        assert_ok(call, [b"call %d" % i])
    first_end = min(c["end_ms"] for c in calls)
    assert sum(c["start_ms"] < first_end for c in calls) > 50
    assert len(out["streams"]) == 100
    assert_one_connection(out, tls)
