"""Issue 5, point 5: streams over H2MaxSessionStreams are refused, not lost.

With `H2MaxSessionStreams 5` the server announces
SETTINGS_MAX_CONCURRENT_STREAMS=5.  A client that opens more streams at
once, before it has acknowledged that SETTINGS (when the limit is not yet
in force for it, RFC 9113 §6.5.3) or after, gets RST_STREAM(REFUSED_STREAM)
on the excess streams (RFC 9113 §5.1.2, §8.7: safe to retry), every other
stream completes, and the connection goes on serving new streams: no
GOAWAY, and no stream left without an end (DESIGN.md invariant 1).
"""

import pytest

from h2x.frames import ErrorCodes

LIMIT = 5
EXTRA = 3
SLOW = "/h2x/delay?s=1.5&n=100"      # holds its stream open 1.5 s

pytestmark = [pytest.mark.h2]


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(extra_global=(
        f"H2MaxSessionStreams {LIMIT}\n"
        "<Location /h2x/delay>\n    SetHandler h2x-delay\n</Location>\n"))
    yield


def _max_streams(c):
    return c.peer_settings.get(0x3)


def _check_wave(c, sids):
    """The first LIMIT streams complete, the rest are refused."""
    assert c.wait_all_ended(timeout=15), c.unended()
    done = [s for s in sids if c.stream(s).ended_by == "END_STREAM"]
    refused = [s for s in sids if c.stream(s).rst_code == ErrorCodes.REFUSED_STREAM]
    other = [c.stream(s) for s in sids if s not in done and s not in refused]
    assert not other, other
    assert done == sids[:LIMIT], [c.stream(s) for s in sids]
    assert refused == sids[LIMIT:], [c.stream(s) for s in sids]
    for s in done:
        assert c.stream(s).status == 200 and len(c.stream(s).body) == 100, c.stream(s)
        assert c.shape(s) == "HEADERS DATA[ES]", c.stream(s)
    for s in refused:
        assert c.shape(s) == "RST(REFUSED_STREAM)", c.stream(s)
    assert not c.goaways, c.goaways
    assert not c.closed, c.close_reason


def _assert_serves(c, n=LIMIT):
    sids = [c.request("GET", "/1k.txt") for _ in range(n)]
    assert c.wait_all_ended(timeout=10), c.unended()
    for s in sids:
        assert c.stream(s).ended_by == "END_STREAM" and c.stream(s).status == 200, c.stream(s)
    assert not c.goaways and not c.closed


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_340_01_before_settings_ack(frame_client, tls):
    """All requests go out right after the preface, before the server's
    SETTINGS was even read, and it stays unacknowledged while they run."""
    c = frame_client(tls=tls, auto_ack_settings=False)
    sids = [c.request("GET", SLOW) for _ in range(LIMIT + EXTRA)]
    _check_wave(c, sids)
    assert _max_streams(c) == LIMIT, c.settings
    assert not [f for f in c.sent if f.type == "SETTINGS" and "ACK" in f.flags]
    c.send_settings(ack=True)
    _assert_serves(c)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_340_02_after_settings_ack(frame_client, tls):
    c = frame_client(tls=tls)
    assert c.wait_settings()
    assert _max_streams(c) == LIMIT, c.settings
    assert c.run(lambda c: c.settings_acks >= 1, timeout=5)   # both sides ACKed
    sids = [c.request("GET", SLOW) for _ in range(LIMIT + EXTRA)]
    _check_wave(c, sids)
    _assert_serves(c)


def test_h2x_340_03_repeated_overflow(frame_client):
    """Three waves on one connection, each over the limit."""
    c = frame_client()
    assert c.wait_settings() and c.run(lambda c: c.settings_acks >= 1, timeout=5)
    for _ in range(3):
        sids = [c.request("GET", SLOW) for _ in range(LIMIT + EXTRA)]
        _check_wave(c, sids)
    _assert_serves(c)


def test_h2x_340_04_overflow_while_streams_finish(frame_client):
    """Excess streams while fast ones finish: at most LIMIT are open at any
    time, every stream ends, the refused ones have no HEADERS."""
    c = frame_client()
    assert c.wait_settings() and c.run(lambda c: c.settings_acks >= 1, timeout=5)
    sids = []
    for i in range(40):
        sids.append(c.request("GET", SLOW if i % 4 == 0 else "/1k.txt"))
    assert c.wait_all_ended(timeout=20), c.unended()
    for s in sids:
        r = c.stream(s)
        if r.ended_by == "RST_STREAM":
            assert r.rst_code == ErrorCodes.REFUSED_STREAM and c.shape(s) == "RST(REFUSED_STREAM)", r
        else:
            assert r.ended_by == "END_STREAM" and r.status == 200, r
    assert not c.goaways
    _assert_serves(c)


@pytest.mark.expect_log(r"AH00574", r"AH01220", r"Timeout waiting for output from CGI script",
                        r"AH01246")
def test_h2x_340_05_stalled_streams_free_their_slots(httpd, frame_client):
    """The mint-450 failure (background/): streams that never end use up
    the connection's stream limit.  Here LIMIT CGIs stall mid-body; while
    they hang, one more stream is refused; after their resets the slots are
    free again, three times over, and healthy streams fill them."""
    httpd.reconfigure(extra_global=(
        f"H2MaxSessionStreams {LIMIT}\nTimeout 2\n"
        "<Location /h2x/delay>\n    SetHandler h2x-delay\n</Location>\n"))
    try:
        c = frame_client()
        assert c.wait_settings() and c.run(lambda c: c.settings_acks >= 1, timeout=5)
        for _ in range(3):
            stalled = [c.request("GET", "/cgi-bin/stall.py?n=100&s=8") for _ in range(LIMIT)]
            assert c.run(lambda c: all(c.stream(s).body for s in stalled), timeout=5), \
                [c.stream(s) for s in stalled]
            extra = c.request("GET", "/1k.txt")
            assert c.wait_stream_end(extra, timeout=2)
            assert c.shape(extra) == "RST(REFUSED_STREAM)", c.stream(extra)
            assert c.wait_all_ended(timeout=10), c.unended()
            for s in stalled:
                assert c.stream(s).rst_code == ErrorCodes.INTERNAL_ERROR, c.stream(s)
        _assert_serves(c)
    finally:
        httpd.reconfigure(extra_global=(
            f"H2MaxSessionStreams {LIMIT}\n"
            "<Location /h2x/delay>\n    SetHandler h2x-delay\n</Location>\n"))


def test_h2x_340_06_refused_streams_body_and_trailers_in_flight(frame_client):
    """Requests with bodies over the limit: what the client sent on a
    refused stream before the RST_STREAM(REFUSED_STREAM) reached it - DATA,
    and trailers (HEADERS with END_STREAM) - is ignored (RFC 9113 §5.1,
    closed by RST_STREAM), not a connection error; the allowed streams
    complete and the connection goes on."""
    c = frame_client()
    assert c.wait_settings() and c.run(lambda c: c.settings_acks >= 1, timeout=5)
    sids = [c.request("POST", SLOW, end_stream=False) for _ in range(LIMIT + EXTRA)]
    assert c.run(lambda cl: all(cl.stream(s).rst_code == ErrorCodes.REFUSED_STREAM
                                for s in sids[LIMIT:]), timeout=5), \
        [c.stream(s) for s in sids[LIMIT:]]
    for s in sids:
        c.send_data(s, b"b" * 100, respect_window=False)
        c.send_headers(s, [("x-trailer", "t")], end_stream=True)
    _check_wave(c, sids)
    _assert_serves(c)
