"""555: gRPC through mod_h2x with a real gRPC client and backend.

The client is python3-grpcio over h2 (TLS, ALPN) and over h2c (prior
knowledge); httpd passes `/h2x.Test/` to a python3-grpcio backend with
mod_proxy_http2 (h2x/grpc_backend.py), the way gRPC shops put httpd in
front of their services. Asserted is what the gRPC client sees: exact
messages in every call shape (unary, client, server and bidi streaming),
status codes and details, initial and trailing metadata, deadlines,
that a client's cancel reaches the backend at once while the channel
carries on, and that a backend dying mid-stream resets the stream.
"""

import hashlib
import os
import subprocess
import threading
import time

import pytest

from h2x.ports import free_port

grpc = pytest.importorskip(
    "grpc", reason="optional external tool missing: python3-grpcio "
                   "(scripts/install-deps installs it)")

pytestmark = pytest.mark.h2

HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    """The gRPC backend: (port, events file)."""
    events = str(tmp_path_factory.mktemp("grpc") / "events")
    open(events, "w").close()
    port = free_port()
    proc = start_backend(port, events)
    yield port, events
    proc.terminate()
    proc.wait(timeout=10)


def start_backend(port, events):
    proc = subprocess.Popen(["/usr/bin/python3", os.path.join(HERE, "h2x", "grpc_backend.py"),
                             str(port), events],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    line = proc.stdout.readline().decode()
    assert line.strip() == "ready", proc.stderr.read().decode()
    return proc


@pytest.fixture(scope="module")
def doomed_port():
    """The port of a second backend, one that a test kills (doomed())."""
    return free_port()


@pytest.fixture(scope="module")
def grpc_conf(env, backend, doomed_port):
    port, _ = backend
    proxy_http2 = env.apache_module("proxy_http2")
    assert proxy_http2, "Debian's mod_proxy_http2.so is part of apache2"
    return f"""
LoadModule proxy_http2_module {proxy_http2}
ProxyPass "/h2x.Test/" "h2c://127.0.0.1:{port}/h2x.Test/"
ProxyPass "/doomed/h2x.Test/" "h2c://127.0.0.1:{doomed_port}/h2x.Test/"
"""


@pytest.fixture(scope="module")
def grpc_server(httpd, grpc_conf):
    httpd.reconfigure(extra_global=grpc_conf)
    yield httpd
    httpd.reconfigure()


@pytest.fixture
def doomed(doomed_port, tmp_path):
    """A backend of its own for one test, which may kill it."""
    proc = start_backend(doomed_port, str(tmp_path / "events"))
    yield proc
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)


def _channel(server, env, tls, options=OPTIONS):
    if tls:
        with open(env.cert()[0], "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        ch = grpc.secure_channel(f"localhost:{server.https_port}", creds, options=options)
    else:
        ch = grpc.insecure_channel(f"127.0.0.1:{server.http_port}", options=options)
    grpc.channel_ready_future(ch).result(timeout=10)
    return ch


@pytest.fixture(params=[True, False], ids=["h2", "h2c"])
def channel(request, grpc_server, env):
    ch = _channel(grpc_server, env, request.param)
    yield ch
    ch.close()


def unary(ch, method):
    return ch.unary_unary(f"/h2x.Test/{method}")


def ended(events, method, tag):
    """Monotonic times of the backend's "ended" lines for (method, tag)."""
    with open(events) as f:
        return [float(ln.split()[4]) for ln in f
                if ln.split()[:3] == ["ended", method, tag]]


def lock_step(ch, messages, timeout=60):
    """Sends `messages` on one Chat call, each only after the answer to
    the one before has arrived; returns (answers, call)."""
    answers = []
    cond = threading.Condition()

    def requests():
        for i, m in enumerate(messages):
            with cond:
                cond.wait_for(lambda: len(answers) == i, timeout=10)
            yield m

    call = ch.stream_stream("/h2x.Test/Chat")(requests(), timeout=timeout)
    for reply in call:
        with cond:
            answers.append(reply)
            cond.notify_all()
    return answers, call


@pytest.mark.parametrize("size", [0, 1, 5, 16379, 16384, 100_000, 4 << 20])
def test_h2x_555_01_unary_exact(channel, size):
    """Unary calls of every size come back byte-exact (an empty message is
    a 5-byte gRPC frame with length 0; 16379 bytes + 5 fill one DATA frame
    of the default 16384, one more byte spills into a second)."""
    msg = hashlib.shake_256(b"h2x-555-%d" % size).digest(size) if size else b""
    reply, call = unary(channel, "Echo").with_call(msg, timeout=30)
    assert reply == msg
    assert call.code() == grpc.StatusCode.OK


def test_h2x_555_02_big_reply(channel):
    """A 4 MB answer arrives whole and in time (issue 11 measured 1.2 s
    per 4 MB reply when short DATA frames were held back)."""
    t0 = time.monotonic()
    reply = unary(channel, "Big")(b"%d" % (4 << 20), timeout=30)
    assert reply == b"r" * (4 << 20)
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize("code,details", [("NOT_FOUND", "gone"),
                                          ("PERMISSION_DENIED", "no"),
                                          ("INTERNAL", "boom"),
                                          ("UNAVAILABLE", "later")])
def test_h2x_555_03_status_and_details(channel, code, details):
    """A backend's error status (a trailers-only response) reaches the
    client with its code and details."""
    with pytest.raises(grpc.RpcError) as err:
        unary(channel, "Fail")(f"{code}:{details}".encode(), timeout=10)
    assert err.value.code() == getattr(grpc.StatusCode, code)
    assert err.value.details() == details


def test_h2x_555_04_metadata(channel):
    """Request metadata reaches the backend; its initial and trailing
    metadata reach the client."""
    reply, call = unary(channel, "Meta").with_call(
        b"", metadata=(("x-h2x-ask", "what-was-asked"),), timeout=10)
    assert reply == b"what-was-asked"
    assert ("x-h2x-initial", "hello") in call.initial_metadata()
    assert ("x-h2x-trailer", "bye") in call.trailing_metadata()


def test_h2x_555_05_client_streaming(channel):
    """300 messages of varied sizes (0 to 40,000 bytes) from the client:
    the backend counts and hashes exactly what was sent."""
    msgs = [hashlib.shake_256(b"%d" % i).digest((i * 137) % 40001) for i in range(300)]
    digest = hashlib.sha256(b"".join(msgs)).hexdigest()
    reply = channel.stream_unary("/h2x.Test/Count")(iter(msgs), timeout=60)
    assert reply.decode() == f"300 {sum(map(len, msgs))} {digest}"


@pytest.mark.parametrize("count,size", [(0, 0), (1, 0), (500, 10), (40, 100_000)])
def test_h2x_555_06_server_streaming(channel, count, size):
    """Server streams arrive complete and in order, also one of no
    messages (headers and trailers only) and of empty messages."""
    got = list(channel.unary_stream("/h2x.Test/Split")(b"%d %d" % (count, size), timeout=60))
    assert len(got) == count
    for i, m in enumerate(got):
        assert m == bytes([i % 251]) * size, i


def test_h2x_555_07_stream_then_error(channel):
    """Messages, then an error status in the trailers: the client gets
    the messages and then the status."""
    call = channel.unary_stream("/h2x.Test/Split")(b"3 64 RESOURCE_EXHAUSTED:quota", timeout=10)
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for m in call:
            got.append(m)
    assert got == [bytes([i]) * 64 for i in range(3)]
    assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert err.value.details() == "quota"


def test_h2x_555_08_bidi_lock_step(channel):
    """50 lock-step round trips on one bidi stream: each answer comes
    before the next message is sent (nothing waits for more data)."""
    t0 = time.monotonic()
    outbox, call = lock_step(channel, [b"ping %d" % i for i in range(50)])
    assert outbox == [b"ping %d" % i for i in range(50)]
    assert call.code() == grpc.StatusCode.OK
    # Generous: ~0.1 s here; 50 round trips held 20 ms each took 1 s.
    assert time.monotonic() - t0 < 10


def test_h2x_555_09_many_calls_one_channel(channel):
    """100 concurrent unary calls multiplexed on one connection all
    succeed with their own answers."""
    futures = [unary(channel, "Echo").future(b"call %d" % i, timeout=30) for i in range(100)]
    assert [f.result() for f in futures] == [b"call %d" % i for i in range(100)]


def test_h2x_555_10_deadline(channel, backend):
    """A deadline shorter than the backend's work: the client gets
    DEADLINE_EXCEEDED in time, the backend learns that its caller is gone
    (grpc-timeout is passed on, and the client's RST_STREAM frees the
    proxied stream), and the channel carries on."""
    _, events = backend
    tag = "%d" % (5000 + time.monotonic_ns() // 1000 % 1000)  # ms the backend sleeps
    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        unary(channel, "Sleep")(tag.encode(), timeout=0.5)
    assert err.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - t0 < 3
    # The backend's call ends (callbacks run) long before its 5 s sleep.
    while not ended(events, "Sleep", tag) and time.monotonic() < t0 + 4:
        time.sleep(0.05)
    times = ended(events, "Sleep", tag)
    assert times and times[0] - t0 < 4, (times, t0)
    assert unary(channel, "Echo")(b"still here", timeout=10) == b"still here"


def test_h2x_555_11_cancel_reaches_backend(channel, backend):
    """The client cancels a server stream after two messages: the backend
    sees its call end within a few seconds (not when its 60 s stream would
    run out), and the channel carries on."""
    _, events = backend
    tag = f"cancel-{time.monotonic_ns()}"
    call = channel.unary_stream("/h2x.Test/Drip")(tag.encode(), timeout=120)
    it = iter(call)
    assert next(it) == b"%016d" % 0
    assert next(it) == b"%016d" % 1
    t0 = time.monotonic()
    call.cancel()
    deadline = t0 + 10
    while not ended(events, "Drip", tag) and time.monotonic() < deadline:
        time.sleep(0.05)
    times = ended(events, "Drip", tag)
    assert times, "the backend never saw the cancelled call end"
    assert times[0] - t0 < 3, times[0] - t0
    assert unary(channel, "Echo")(b"after cancel", timeout=10) == b"after cancel"


def test_h2x_555_12_backend_dies_mid_stream(channel, doomed, grpc_server):
    """The backend dies (SIGKILL) in the middle of a server stream: the
    client's call ends within seconds with INTERNAL from our RST_STREAM
    (the response is incomplete: never left open, never ended as if
    complete), and the channel carries on."""
    call = channel.unary_stream("/doomed/h2x.Test/Drip")(b"doomed", timeout=60)
    it = iter(call)
    assert next(it) == b"%016d" % 0
    t0 = time.monotonic()
    doomed.kill()
    got = []
    with pytest.raises(grpc.RpcError) as err:
        for m in it:
            got.append(m)
    assert time.monotonic() - t0 < 10
    # Before 3975549 the stream ended with END_STREAM after httpd's 503
    # page, without grpc-status: the client saw UNKNOWN "Stream removed".
    assert err.value.code() == grpc.StatusCode.INTERNAL, (err.value.code(), err.value.details())
    assert "RST_STREAM" in err.value.details(), err.value.details()
    assert unary(channel, "Echo")(b"after the backend died", timeout=10) \
        == b"after the backend died"


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_555_13_backend_dies_frames(grpc_server, doomed, frame_client, tls):
    """The same, seen frame by frame: a gRPC server stream whose backend
    dies after its first messages ends with RST_STREAM(INTERNAL_ERROR)
    (an incomplete response, DESIGN.md), not with END_STREAM and not
    never; another stream on the connection is answered after it."""
    c = frame_client(tls=tls)
    msg = b"doomed"
    sid = c.request("POST", "/doomed/h2x.Test/Drip",
                    headers=[("content-type", "application/grpc"), ("te", "trailers")],
                    end_stream=False)
    c.send_data(sid, b"\0" + len(msg).to_bytes(4, "big") + msg, end_stream=True)
    assert c.run(until=lambda cl: len(cl.stream(sid).body) >= 2 * 21, timeout=10), \
        c.stream(sid).frames_str()
    assert c.stream(sid).status == 200
    doomed.kill()
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM", (s.frames_str(), s.body[-400:])
    assert s.rst_name == "INTERNAL_ERROR", s.frames_str()
    ok = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(ok, timeout=10) and c.stream(ok).status == 200


def test_h2x_555_14_early_reject_of_a_client_stream(channel):
    """The backend answers with an error after the first of 200 messages
    of 32 KiB while the client is still sending: the client gets that
    status (not a reset, not a hang), and the channel carries on."""
    def messages():
        for i in range(200):
            yield bytes([i % 251]) * 32768

    t0 = time.monotonic()
    with pytest.raises(grpc.RpcError) as err:
        channel.stream_unary("/h2x.Test/Reject")(messages(), timeout=30)
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION, \
        (err.value.code(), err.value.details())
    assert err.value.details() == "enough"
    assert time.monotonic() - t0 < 10
    assert unary(channel, "Echo")(b"after reject", timeout=10) == b"after reject"


def test_h2x_555_15_slow_reader(channel):
    """A server stream of 64 messages of 64 KiB read slowly (20 ms per
    message): flow control holds the backend back through httpd, and
    every message arrives intact and in order."""
    call = channel.unary_stream("/h2x.Test/Split")(b"64 65536", timeout=60)
    n = 0
    for i, m in enumerate(call):
        assert m == bytes([i % 251]) * 65536, i
        n += 1
        time.sleep(0.02)
    assert n == 64


def test_h2x_555_16_parallel_bidi(channel):
    """20 bidi calls at once on one channel, 20 lock-step round trips
    each: every call gets its own answers."""
    errors = []

    def one(k):
        try:
            q, _ = lock_step(channel, [b"%d:%d" % (k, i) for i in range(20)])
            if q != [b"%d:%d" % (k, i) for i in range(20)]:
                errors.append((k, q))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append((k, repr(e)))

    threads = [threading.Thread(target=one, args=(k,)) for k in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]


@pytest.mark.parametrize("tls", [True, False], ids=["h2", "h2c"])
def test_h2x_555_17_keepalive_pings(grpc_server, grpc_conf, env, tls):
    """A client with aggressive gRPC keepalive (asking for a PING every
    200 ms, also without calls in flight, each to be answered within 1 s)
    keeps its connection through a 2 s call and 2 s of idle time: the
    pings are answered (the server's frame trace shows them and their
    acks), not taken for a PING flood."""
    grpc_server.reconfigure(extra_global=grpc_conf, loglevel="warn h2x:trace2")
    options = OPTIONS + [("grpc.keepalive_time_ms", 200),
                         ("grpc.keepalive_timeout_ms", 1000),
                         ("grpc.keepalive_permit_without_calls", 1),
                         ("grpc.http2.max_pings_without_data", 0),
                         ("grpc.http2.min_time_between_pings_ms", 100),
                         ("grpc.http2.min_ping_interval_without_data_ms", 100)]
    ch = _channel(grpc_server, env, tls, options)
    try:
        assert unary(ch, "Sleep")(b"2000", timeout=10) == b"slept"
        time.sleep(2)
        assert unary(ch, "Echo")(b"after idle pings", timeout=10) == b"after idle pings"
    finally:
        ch.close()
        pings = [ln for ln in grpc_server.error_log_lines() if " recv PING " in ln]
        sent = [ln for ln in grpc_server.error_log_lines() if " sent PING " in ln]
        grpc_server.reconfigure(extra_global=grpc_conf)
    assert len(pings) >= 2, len(pings)
    assert len(sent) >= len(pings) - 1, (len(sent), len(pings))


def test_h2x_555_18_graceful_restart(channel, grpc_server):
    """A graceful restart while 10 calls (1.5 s each) and a server stream
    are in flight on the channel: every one completes with OK and all its
    messages (DESIGN.md: accepted streams finish), and the channel's next
    calls are served (gRPC reconnects after the GOAWAY)."""
    sleeps = [unary(channel, "Sleep").future(b"1500", timeout=30) for _ in range(10)]
    stream = channel.unary_stream("/h2x.Test/Split")(b"30 100000", timeout=30)
    it = iter(stream)
    first = next(it)
    time.sleep(0.3)
    grpc_server.graceful()
    assert [f.result() for f in sleeps] == [b"slept"] * 10
    rest = list(it)
    assert [first] + rest == [bytes([i % 251]) * 100000 for i in range(30)]
    assert stream.code() == grpc.StatusCode.OK
    for i in range(5):
        assert unary(channel, "Echo")(b"after graceful %d" % i, timeout=10) \
            == b"after graceful %d" % i


@pytest.mark.parametrize("size", [10, 100_000, 1 << 20])
def test_h2x_555_19_compressed(channel, size):
    """gRPC message compression both ways (grpc-encoding: gzip from the
    client, the backend compressing its answer): the bytes pass through
    httpd untouched (application/grpc is no type mod_deflate handles)."""
    msg = (b"compressible h2x %d " % size * (size // 20 + 1))[:size]
    reply, call = unary(channel, "Zip").with_call(msg, timeout=30,
                                                 compression=grpc.Compression.Gzip)
    assert reply == msg
    assert call.code() == grpc.StatusCode.OK
