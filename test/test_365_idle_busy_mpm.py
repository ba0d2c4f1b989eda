"""Issue 11, point 3: an idle HTTP/2 connection survives a child whose MPM
threads are all busy.

The event MPM treats connections in its keep-alive queue as expendable:
when one becomes readable and no worker thread is free it is closed, and
when a child ran out of idle workers the whole queue is closed.  For
HTTP/1.1 that costs a reconnect; for an HTTP/2 session it is a GOAWAY that
the client's next request runs into (h2load counts those as failed at 1000
connections, docs/performance.md).  mod_h2x parks an idle session in the
MPM's I/O queue instead (CONN_STATE_ASYNC_WAITIO: the listener waits for a
free thread) and keeps KeepAliveTimeout with a timer of its own
(h2x_idle_watch.h).

The child here has 3 MPM threads.  Three HTTP/1.1 requests to a handler that
sleeps hold all of them; the idle HTTP/2 connection then sends a request.
It must be answered once a thread is free, on the same connection, without
a GOAWAY (_01, _02).  The idle close after KeepAliveTimeout still works
(_03; test_360_idle.py), a graceful restart closes parked connections at
once (_04), requests that race the idle close are answered or refused by
a GOAWAY that allows a retry (_05), and a KeepAliveTimeout longer than
Timeout (the I/O queue's limit) keeps the keep-alive queue (_06).
"""

import socket
import threading
import time

import pytest

from h2x.frames import ErrorCodes

KEEPALIVE = 6
HOLD = 1.5        # seconds each HTTP/1.1 request holds its MPM thread
THREADS = 3

pytestmark = [pytest.mark.h2]


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(extra_global=(
        "ServerLimit 1\nStartServers 1\n"
        f"ThreadsPerChild {THREADS}\nMaxRequestWorkers {THREADS}\n"
        f"MinSpareThreads 1\nMaxSpareThreads {THREADS}\n"
        f"Timeout 30\nKeepAliveTimeout {KEEPALIVE}\n"
        "<Location /h2x/delay>\n    SetHandler h2x-delay\n</Location>\n"),
        )
    yield


@pytest.fixture(autouse=True)
def _expected_log(httpd):
    # Holding every thread is the point here.
    httpd.expect_log(r"AH00484: server reached MaxRequestWorkers")


def _hold_all_threads(httpd, tls):
    """Start THREADS HTTP/1.1 requests that each keep an MPM thread asleep
    for HOLD seconds; returns the threads and their results (status lines).
    """
    results = []

    def one():
        try:
            with socket.create_connection(("127.0.0.1", httpd.http_port), timeout=15) as s:
                s.sendall(f"GET /h2x/delay?s={HOLD}&n=10 HTTP/1.1\r\nHost: localhost\r\n"
                          "Connection: close\r\n\r\n".encode())
                data = b""
                while True:
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                results.append(data.split(b"\r\n", 1)[0])
        except OSError as e:
            results.append(repr(e).encode())

    threads = [threading.Thread(target=one, daemon=True) for _ in range(THREADS)]
    for t in threads:
        t.start()
    return threads, results


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_365_01_request_on_idle_connection_while_threads_busy(httpd, frame_client, tls):
    c = frame_client(tls=tls)
    first = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(first, timeout=5)
    assert c.stream(first).status == 200
    time.sleep(0.3)                 # idle: handed back to the MPM
    threads, results = _hold_all_threads(httpd, tls)
    time.sleep(HOLD / 3)            # all three threads asleep in the handler
    t0 = time.monotonic()
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=HOLD + 10), (c.frames[-5:], c.close_reason)
    took = time.monotonic() - t0
    s = c.stream(sid)
    assert not c.goaways, (c.goaways, f"after {took:.2f}s")
    assert s.status == 200 and len(s.body) == 1024 and s.ended_by == "END_STREAM", s
    for t in threads:
        t.join(timeout=HOLD + 10)
    assert results == [b"HTTP/1.1 200 OK"] * THREADS, results


def test_h2x_365_02_idle_connections_not_purged(httpd, frame_client):
    """A child that ran out of free threads closes its whole keep-alive
    queue; idle HTTP/2 connections are not in it.  Five idle connections,
    all threads held, one new HTTP/1.1 connection waiting for a thread:
    afterwards each idle connection still answers a request."""
    clients = [frame_client() for _ in range(5)]
    for c in clients:
        sid = c.request("GET", "/1k.txt")
        assert c.wait_stream_end(sid, timeout=5)
    time.sleep(0.3)
    threads, results = _hold_all_threads(httpd, False)
    time.sleep(HOLD / 3)
    # A new connection finds no free thread: the listener waits for one,
    # then (workers were busy) the MPM empties its keep-alive queue.
    late = []

    def late_request():
        with socket.create_connection(("127.0.0.1", httpd.http_port), timeout=15) as s:
            s.sendall(b"GET /1k.txt HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            late.append(s.recv(64).split(b"\r\n", 1)[0])

    lt = threading.Thread(target=late_request, daemon=True)
    lt.start()
    for t in threads:
        t.join(timeout=HOLD + 10)
    lt.join(timeout=10)
    assert late == [b"HTTP/1.1 200 OK"], late
    time.sleep(0.5)
    for c in clients:
        sid = c.request("GET", "/1k.txt")
        assert c.wait_stream_end(sid, timeout=5), (c.frames[-5:], c.close_reason)
        assert not c.goaways, c.goaways
        assert c.stream(sid).status == 200


def test_h2x_365_03_idle_close_still_after_keepalive(frame_client):
    """Parked in the I/O queue (whose timeout is Timeout, 30 s here), an
    idle connection still gets GOAWAY(NO_ERROR) after KeepAliveTimeout."""
    c = frame_client(tls=True)
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=5)
    idle_since = c.stream(sid).end_time
    assert c.wait_goaway(timeout=KEEPALIVE + 5), (c.frames[-5:], c.close_reason)
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == sid, g
    took = g.t - idle_since
    assert KEEPALIVE * 0.9 <= took <= KEEPALIVE + 2.5, f"GOAWAY after {took:.2f}s idle"
    assert c.wait_closed(timeout=5)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_365_04_graceful_restart_closes_parked_connection(httpd, frame_client, tls):
    """A graceful restart closes idle connections at once, as the MPM does
    with its keep-alive queue: GOAWAY(NO_ERROR) with the last stream, then
    close, well before KeepAliveTimeout."""
    c = frame_client(tls=tls)
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=5)
    time.sleep(0.3)
    t0 = time.monotonic()
    httpd.graceful()
    assert c.wait_goaway(timeout=KEEPALIVE - 1), (c.frames[-5:], c.close_reason)
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == sid, g
    assert c.wait_closed(timeout=5)
    assert time.monotonic() - t0 < KEEPALIVE - 1
    # The new generation serves.
    c2 = frame_client(tls=tls)
    sid = c2.request("GET", "/1k.txt")
    assert c2.wait_stream_end(sid, timeout=5) and c2.stream(sid).status == 200


def test_h2x_365_05_requests_racing_the_idle_close(httpd, frame_client):
    """Requests sent just as KeepAliveTimeout runs out: each is answered,
    or the GOAWAY that closes the connection names a last stream below it
    (so the client may retry it, RFC 9113 §6.8). No stream is left open,
    no error is logged. 8 connections, 5 rounds each, sending after 0.9 to
    1.1 x KeepAliveTimeout of idleness."""
    import random
    httpd.reconfigure(extra_global=(
        "ServerLimit 1\nStartServers 1\n"
        f"ThreadsPerChild {THREADS}\nMaxRequestWorkers {THREADS}\n"
        f"MinSpareThreads 1\nMaxSpareThreads {THREADS}\n"
        "Timeout 30\nKeepAliveTimeout 1\n"))
    rng = random.Random(365)
    answered = refused = 0
    errors = []

    def one(tls, seed):
        nonlocal answered, refused
        r = random.Random(seed)
        c = frame_client(tls=tls)
        for _ in range(5):
            if c.goaways or c.closed:
                c = frame_client(tls=tls)
            try:
                sid = c.request("GET", "/1k.txt")
            except OSError:
                # Closed under us after the GOAWAY: what a client retries.
                refused += 1
                c = frame_client(tls=tls)
                continue
            if not c.wait_stream_end(sid, timeout=5):
                errors.append((tls, sid, c.frames[-3:], c.close_reason))
                return
            s = c.stream(sid)
            if s.ended_by == "GOAWAY":
                if c.goaway.error_code != ErrorCodes.NO_ERROR or c.goaway.last_stream_id >= sid:
                    errors.append((tls, sid, c.goaway))
                    return
                refused += 1
                continue
            if s.status != 200 or len(s.body) != 1024:
                errors.append((tls, sid, s))
                return
            answered += 1
            time.sleep(r.uniform(0.9, 1.1))

    threads = [threading.Thread(target=one, args=(i % 2 == 1, rng.random()), daemon=True)
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert answered + refused == 40, (answered, refused)
    assert answered >= 10, (answered, refused)
    print(f"answered {answered}, refused by the idle GOAWAY {refused}")


def test_h2x_365_06_keepalive_longer_than_timeout(httpd, frame_client):
    """The MPM's I/O queue closes a connection after Timeout. With a
    KeepAliveTimeout longer than Timeout an idle session stays in the
    keep-alive queue (as before), so KeepAliveTimeout still holds: GOAWAY
    after 6 s idle with Timeout 3, not after 3 s."""
    httpd.reconfigure(extra_global="Timeout 3\nKeepAliveTimeout 6\n")
    c = frame_client()
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=5)
    idle_since = c.stream(sid).end_time
    assert c.wait_goaway(timeout=6 + 5), (c.frames[-5:], c.close_reason)
    g = c.goaway
    assert g.error_code == ErrorCodes.NO_ERROR and g.last_stream_id == sid, g
    took = g.t - idle_since
    assert 6 * 0.9 <= took <= 6 + 2.5, f"GOAWAY after {took:.2f}s idle"
    assert c.wait_closed(timeout=5)
