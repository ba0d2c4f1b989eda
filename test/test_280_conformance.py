"""Protocol conformance, RFC 9113 and RFC 7541, one MUST at a time.

Each case sends what a section forbids (or what it says must be accepted)
on a raw connection and checks what the client saw:

- connection error (§5.4.1): a GOAWAY with the section's error code and
  the right last-stream-id (a request on stream 1 completed first, so 1
  is meaningful; a request a case opened itself counts where it was
  complete), then the server closes the TCP connection; a new connection
  is served.
- stream error (§5.4.2): RST_STREAM with the section's code on that
  stream, nothing after it there, and the connection carries on (the next
  request on it gets its 200 with END_STREAM).  §5.4.1 lets an endpoint
  treat any stream error as a connection error, so a GOAWAY with the same
  code (and a closed connection, and a server that serves a new one) is
  accepted too; which of the two was seen is printed ("[280] ...", pytest
  -s).  Malformed requests (§8.1.1) are stricter: RST_STREAM(PROTOCOL_ERROR)
  without a response, or a 400 (§8.1.1 lets a server answer before it
  resets), and the connection must carry on.
- accepted: what the RFC says to ignore or to allow does not end the
  stream or the connection, and the request is served.

Cases the other tests already cover are left out: test_200 (malformed
header fields and pseudo-headers, content-length mismatch, pseudo-headers
in trailers, DATA on a stream the client closed), test_340 (streams over
H2MaxSessionStreams), test_600 (decreasing stream id, a stream window
overflowed by one WINDOW_UPDATE), test_605 (floods, stream id reuse and
exhaustion), test_105 (split and late prefaces).

Frames are built byte by byte here; request header blocks are HPACK
literals without indexing (they leave the dynamic tables alone, so the
client's encoder stays in step with the server's decoder whatever the
case did).  Runs over h2c; the preface cases and a sample of the others
over TLS too.
"""

import os
import time
from typing import Callable, Dict, Iterable, Optional, Sequence, Tuple, Union

import pytest

from core_helpers import TEST_HANDLER_CONF, header_lines, parse_env_body, pattern_body
from h2x.frames import PREFACE, ErrorCodes, FrameClient, error_name
from h2x.fuzz import hp_int

pytestmark = pytest.mark.h2

# Frame types and flags (RFC 9113 §6).
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
UNKNOWN_TYPE = 0xFA
END_STREAM = ACK = 0x1
END_HEADERS = 0x4
PADDED = 0x8
PRIORITY_FLAG = 0x20

# SETTINGS identifiers (RFC 9113 §6.5.2).
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, \
    MAX_FRAME_SIZE, MAX_HEADER_LIST_SIZE = range(1, 7)

MAX_WINDOW = 2 ** 31 - 1
DEFAULT_WINDOW = 65535

WAIT = 3.0          # for an answer that must come
QUIET = 0.25        # for "nothing (more) comes"
SLOW = "/h2x/delay?s=0.3&n=10"     # keeps its stream open (half-closed remote) 0.3 s
GOOD = "/1k.txt"

PC = ErrorCodes.PROTOCOL_ERROR
FSE = ErrorCodes.FRAME_SIZE_ERROR
FCE = ErrorCodes.FLOW_CONTROL_ERROR
CE = ErrorCodes.COMPRESSION_ERROR
SC = ErrorCodes.STREAM_CLOSED
RS = ErrorCodes.REFUSED_STREAM


@pytest.fixture(scope="module", autouse=True)
def _config(httpd):
    httpd.reconfigure(extra_global=TEST_HANDLER_CONF)


# -- bytes on the wire ------------------------------------------------------------------

def frame(ftype: int, flags: int = 0, sid: int = 0, payload: bytes = b"") -> bytes:
    """One frame exactly as given: any type, flags, stream id (R bit too), length."""
    return (len(payload).to_bytes(3, "big") + bytes([ftype, flags])
            + (sid & 0xFFFFFFFF).to_bytes(4, "big") + payload)


def u32(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "big")


def setting(ident: int, value: int) -> bytes:
    return ident.to_bytes(2, "big") + u32(value)


def prio(depends_on: int = 0, weight: int = 16, exclusive: bool = False) -> bytes:
    """The 5-byte priority block of PRIORITY (and HEADERS with PRIORITY)."""
    return u32(depends_on | (0x80000000 if exclusive else 0)) + bytes([weight - 1])


def _b(s: Union[str, bytes]) -> bytes:
    return s if isinstance(s, bytes) else s.encode("latin-1")


def hp_str(s: Union[str, bytes]) -> bytes:
    """RFC 7541 §5.2 string literal, not Huffman-coded."""
    s = _b(s)
    return hp_int(len(s), 7) + s


def hp_literal(name: Union[str, bytes], value: Union[str, bytes]) -> bytes:
    """Literal field without indexing, new name (§6.2.2): no table changes."""
    return b"\x00" + hp_str(name) + hp_str(value)


Fields = Sequence[Tuple[Union[str, bytes], Union[str, bytes]]]


def block(fields: Fields) -> bytes:
    return b"".join(hp_literal(n, v) for n, v in fields)


def std(c: FrameClient, path: str = GOOD, method: str = "GET") -> list:
    return [(":method", method), (":scheme", c.scheme), (":authority", c.authority),
            (":path", path)]


def req(c: FrameClient, path: str = GOOD, method: str = "GET", extra: Fields = ()) -> bytes:
    """A request header block of literals (leaves both HPACK tables alone)."""
    return block(std(c, path, method) + list(extra))


def send(c: FrameClient, *frames: bytes):
    c.send_raw(b"".join(frames))


def take_sid(c: FrameClient) -> int:
    """The next client stream id, marked as a request the client opened
    (the fixture then checks it ends)."""
    sid = c._next_sid
    c._next_sid += 2
    c._stream(sid).start_time = time.monotonic()
    return sid


def raw_request(c: FrameClient, fields_block: bytes, flags: int = END_STREAM | END_HEADERS,
                sid: Optional[int] = None) -> int:
    sid = take_sid(c) if sid is None else sid
    send(c, frame(HEADERS, flags, sid, fields_block))
    return sid


def open_post(c: FrameClient, path: str = "/h2x/echo") -> int:
    """A POST whose body has not started: the stream is open both ways."""
    return raw_request(c, req(c, path, "POST"), flags=END_HEADERS)


def slow_get(c: FrameClient) -> int:
    """A GET with END_STREAM whose answer takes 0.3 s: half-closed (remote)."""
    return c.request("GET", SLOW)


# -- what the client saw ----------------------------------------------------------------

def seen(c: FrameClient) -> str:
    frames = " ".join(f"{f}@{f.stream_id}" for f in c.frames[-16:])
    more = f" errors={c.errors}" if c.errors else ""
    return (f"frames [{frames}], goaways "
            f"{[(g.error_name, g.last_stream_id) for g in c.goaways]}, "
            f"closed={c.closed} ({c.close_reason}){more}")


def ping_barrier(c: FrameClient, timeout: float = WAIT) -> bool:
    """Send a PING and read until its ACK: the server has processed every
    frame sent before it (frames are processed in order)."""
    opaque = os.urandom(8)
    c.send_raw(frame(PING, 0, 0, opaque))
    return c.run(lambda cl: cl.goaways or cl.closed or any(
        "ACK" in p.flags and p.data == opaque for p in cl.pings), timeout)


def warm(c: FrameClient) -> int:
    """Complete one request (stream 1) so that a GOAWAY's last-stream-id
    says something; also reads the server's SETTINGS."""
    sid = c.request("GET", GOOD)
    assert c.wait_stream_end(sid, timeout=WAIT), seen(c)
    assert c.stream(sid).status == 200, c.stream(sid)
    return sid


def carries_on(c: FrameClient):
    """The same connection serves a new request completely."""
    sid = c.request("GET", GOOD)
    assert c.wait_stream_end(sid, timeout=WAIT), f"next request: {seen(c)}"
    s = c.stream(sid)
    assert s.status == 200 and len(s.body) == 1024, s
    assert c.shape(sid) == "HEADERS DATA[ES]", s.frames_str()
    assert not c.goaways, seen(c)


def server_up(frame_client, tls: bool = False):
    """A new connection is served."""
    c = frame_client(tls=tls)
    carries_on(c)


def expect_connection_error(c: FrameClient, code: int, last: Optional[Iterable[int]]):
    """§5.4.1: GOAWAY(code) with last-stream-id in `last` (None: any), then
    the TCP connection closes."""
    c.run(lambda cl: cl.goaways or cl.closed, WAIT)
    assert c.goaways, f"expected GOAWAY({error_name(code)}), saw {seen(c)}"
    g = c.goaway
    assert g.error_code == code, f"expected GOAWAY({error_name(code)}), saw {seen(c)}"
    if last is not None:
        assert g.last_stream_id in tuple(last), \
            f"GOAWAY last-stream-id {g.last_stream_id}, expected one of {tuple(last)}: {seen(c)}"
    assert c.wait_closed(timeout=WAIT), \
        f"§5.4.1: the connection stays open after GOAWAY({g.error_name}): {seen(c)}"
    c.expect_open()


def _rsts(c: FrameClient, sid: int):
    return [f for f in c.stream(sid).frames if f.type == "RST_STREAM"]


def expect_stream_error(c: FrameClient, sid: int, codes: Sequence[int], frame_client,
                        tls: bool = False, what: str = "") -> str:
    """§5.4.2: RST_STREAM(code) on sid and the connection carries on; or,
    as §5.4.1 allows, the stream error taken as a connection error:
    GOAWAY(code) and a closed connection.  Returns "stream" or "connection"."""
    names = "/".join(error_name(x) for x in codes)
    c.run(lambda cl: _rsts(cl, sid) or cl.goaways or cl.closed, WAIT)
    rst = _rsts(c, sid)
    if rst:
        assert rst[0].error_code in codes, \
            f"expected RST_STREAM({names}) on stream {sid}, saw {seen(c)}"
        carries_on(c)
        s = c.stream(sid)
        after = s.frames[s.frames.index(rst[0]) + 1:]
        assert not after, f"§5.4.2: frames after RST_STREAM on stream {sid}: {s.frames_str()}"
        how = "stream"
    else:
        assert c.goaways, f"expected RST_STREAM({names}) on stream {sid}, saw {seen(c)}"
        assert c.goaway.error_code in codes, \
            f"expected RST_STREAM or GOAWAY ({names}), saw {seen(c)}"
        assert c.wait_closed(timeout=WAIT), \
            f"§5.4.1: the connection stays open after GOAWAY: {seen(c)}"
        c.expect_open()
        server_up(frame_client, tls)
        how = "connection"
    code = c.goaway.error_name if how == "connection" else rst[0].error_name
    print(f"[280] {what or sid}: {how} error {code}")
    return how


def expect_malformed(c: FrameClient, sid: int):
    """§8.1.1: a malformed request is a stream error PROTOCOL_ERROR; the
    server may send a 400 first.  Never a 2xx, never a connection error."""
    c.run(lambda cl: cl.stream(sid).ended or cl.goaways or cl.closed, WAIT)
    s = c.stream(sid)
    assert not c.goaways and not c.closed, \
        f"§8.1.1: a malformed request is a stream error, saw {seen(c)}"
    assert s.ended, f"stream {sid} neither reset nor answered: {seen(c)}"
    rst = _rsts(c, sid)
    if s.status is None:
        assert rst and rst[0].error_code == PC, \
            f"expected RST_STREAM(PROTOCOL_ERROR) or a 400 on stream {sid}: {s.frames_str()}"
    else:
        assert s.status == 400, f"malformed request answered {s.status}: {s.frames_str()}"
        assert all(f.error_code in (PC, ErrorCodes.NO_ERROR) for f in rst), s.frames_str()
    carries_on(c)


def expect_accepted(c: FrameClient):
    """Nothing was an error: no GOAWAY, no RST_STREAM, the connection serves."""
    assert ping_barrier(c), seen(c)
    assert not c.goaways and not c.closed, seen(c)
    rst = [f for f in c.frames if f.type == "RST_STREAM"]
    assert not rst, f"unexpected RST_STREAM: {seen(c)}"
    carries_on(c)


# == the connection preface (§3.4) =====================================================

PREFACE_CASES = ["server-preface-and-ack", "ping-before-settings",
                 "headers-before-settings", "bad-magic"]


def _preface_params():
    for case in PREFACE_CASES:
        for tls in (False, True):
            if case == "bad-magic" and not tls:
                # Over cleartext only the preface makes a connection h2c;
                # anything else is HTTP/1.1 and not §3.4's business.
                continue
            if case == "headers-before-settings" and tls:
                continue
            yield pytest.param(case, tls, id=f"3.4-{case}-{'h2' if tls else 'h2c'}")


@pytest.mark.parametrize("case,tls", list(_preface_params()))
def test_h2x_280_01_preface(frame_client, case, tls):
    """§3.4: the server's preface is a SETTINGS frame, the client's SETTINGS
    is ACKed (§6.5.3); a client preface whose first frame is not SETTINGS,
    or whose magic is wrong, is a connection error PROTOCOL_ERROR (the
    GOAWAY may be omitted): no request is served on it."""
    c = frame_client(tls=tls, connect=False)
    c.connect(preface=False)
    if case == "server-preface-and-ack":
        c.send_preface()
        assert c.run(lambda cl: cl.settings and cl.settings_acks, WAIT), seen(c)
        first = c.frames[0]
        assert first.type == "SETTINGS" and "ACK" not in first.flags, seen(c)
        s = c.settings[0]
        # §6.5.2: a server's ENABLE_PUSH, if sent, is 0; values in range.
        assert s.get(ENABLE_PUSH, 0) == 0, s
        assert s.get(INITIAL_WINDOW_SIZE, 0) <= MAX_WINDOW, s
        assert 16384 <= s.get(MAX_FRAME_SIZE, 16384) <= 2 ** 24 - 1, s
        carries_on(c)
        return
    if case == "ping-before-settings":
        c.send_raw(PREFACE + frame(PING, 0, 0, b"12345678"))
    elif case == "headers-before-settings":
        c._stream(1).start_time = time.monotonic()
        c._next_sid = 3
        c.send_raw(PREFACE + frame(HEADERS, END_STREAM | END_HEADERS, 1, req(c)))
    else:
        c.send_raw(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + frame(SETTINGS))
        c._stream(1).start_time = time.monotonic()
        c._next_sid = 3
        c.send_raw(frame(HEADERS, END_STREAM | END_HEADERS, 1, req(c)))
    c.expect_open()
    assert c.wait_closed(timeout=WAIT), f"connection still open: {seen(c)}"
    kinds = {f.type for f in c.frames}
    assert kinds <= {"SETTINGS", "GOAWAY", "WINDOW_UPDATE"}, seen(c)
    assert not any(f.stream_id for f in c.frames), seen(c)
    if c.goaways:
        assert c.goaway.error_code == PC and c.goaway.last_stream_id == 0, seen(c)
    server_up(frame_client, tls)


# == connection errors ==================================================================

# case id -> (code, allowed last-stream-ids or None, builder)
CONN: Dict[str, Tuple[int, Optional[Tuple[int, ...]], Callable]] = {}


def conn_case(cid: str, code: int, last: Optional[Tuple[int, ...]] = (1,)):
    def deco(fn):
        CONN[cid] = (code, last, fn)
        return fn
    return deco


NEW = (1, 3)    # an error in stream 3's own HEADERS: 3 may or may not count


# -- §4.2 frame size

def _max_frame(c: FrameClient) -> int:
    return c.peer_settings.get(MAX_FRAME_SIZE, 16384)


@conn_case("4.2-headers-over-max-frame-size", FSE, NEW)
def _c_headers_big(c):
    """§4.2: a HEADERS frame larger than SETTINGS_MAX_FRAME_SIZE (a frame
    carrying a field block) is a connection error FRAME_SIZE_ERROR."""
    blk = req(c, extra=[("x-pad", "p" * (_max_frame(c) + 10))])
    raw_request(c, blk)


@conn_case("4.2-continuation-over-max-frame-size", FSE, NEW)
def _c_continuation_big(c):
    """§4.2: the same for a CONTINUATION frame."""
    blk = req(c, extra=[("x-pad", "p" * (_max_frame(c) + 10))])
    sid = take_sid(c)
    send(c, frame(HEADERS, END_STREAM, sid, blk[:50]),
         frame(CONTINUATION, END_HEADERS, sid, blk[50:]))


@conn_case("4.2-settings-over-max-frame-size", FSE)
def _c_settings_big(c):
    """§4.2: a SETTINGS frame (stream 0) larger than the maximum: 2731
    harmless entries, 16386 bytes."""
    n = _max_frame(c) // 6 + 1
    send(c, frame(SETTINGS, 0, 0, setting(HEADER_TABLE_SIZE, 4096) * n))


# -- §4.3, §6.10: a field block is one contiguous sequence of frames

def _open_block(c) -> Tuple[int, bytes]:
    """HEADERS without END_HEADERS, the rest of the block held back."""
    sid = take_sid(c)
    blk = req(c)
    c.send_raw(frame(HEADERS, END_STREAM, sid, blk[:10]))
    return sid, blk


@conn_case("4.3-headers-then-headers-other-stream", PC, NEW)
def _c_interleave_headers(c):
    """§4.3: a field block must not be interleaved with frames of another
    stream: HEADERS on stream 5 while stream 3's block is open."""
    sid, blk = _open_block(c)
    send(c, frame(HEADERS, END_STREAM | END_HEADERS, sid + 2, req(c)))


@conn_case("4.3-headers-then-data", PC, NEW)
def _c_interleave_data(c):
    """§4.3: DATA on the same stream inside an open field block."""
    sid, blk = _open_block(c)
    send(c, frame(DATA, END_STREAM, sid, b"x"))


@conn_case("4.3-headers-then-ping", PC, NEW)
def _c_interleave_ping(c):
    """§4.3: a PING (stream 0) inside an open field block."""
    _open_block(c)
    send(c, frame(PING, 0, 0, b"12345678"))


@conn_case("4.3-headers-then-priority", PC, NEW)
def _c_interleave_priority(c):
    """§4.3: PRIORITY on the same stream inside an open field block."""
    sid, _ = _open_block(c)
    send(c, frame(PRIORITY, 0, sid, prio(0, 16)))


@conn_case("5.5-headers-then-unknown-frame", PC, NEW)
def _c_interleave_unknown(c):
    """§5.5: an extension frame in the middle of a field block is a
    connection error PROTOCOL_ERROR (unknown frames are ignored elsewhere)."""
    sid, _ = _open_block(c)
    send(c, frame(UNKNOWN_TYPE, 0, sid, b"ext"))


@conn_case("6.10-continuation-other-stream", PC, NEW)
def _c_cont_other(c):
    """§6.10: CONTINUATION on another stream than the open field block's."""
    sid, blk = _open_block(c)
    send(c, frame(CONTINUATION, END_HEADERS, sid + 2, blk[10:]))


@conn_case("6.10-continuation-stream-0", PC)
def _c_cont_zero(c):
    """§6.10: CONTINUATION on stream 0 (no field block open)."""
    send(c, frame(CONTINUATION, END_HEADERS, 0, hp_literal("x-a", "1")))


@conn_case("6.10-continuation-idle-stream", PC)
def _c_cont_idle(c):
    """§6.10, §5.1: CONTINUATION with no HEADERS before it, on an idle stream."""
    sid = c._next_sid
    send(c, frame(CONTINUATION, END_HEADERS, sid, req(c)))


@conn_case("6.10-continuation-after-end-headers", PC, (3,))
def _c_cont_after_eh(c):
    """§6.10: CONTINUATION after a HEADERS that carried END_HEADERS (stream
    3 is an open POST, so 3 is the last stream)."""
    sid = open_post(c)
    ping_barrier(c)
    send(c, frame(CONTINUATION, END_HEADERS, sid, hp_literal("x-late", "1")))


# -- RFC 7541 via §4.3: decoding errors are connection errors COMPRESSION_ERROR

def _hpack_case(cid: str, bad: bytes, why: str, where: str = "front"):
    """Register a case whose header block holds `bad` (RFC 7541 says why):
    at the front of a request block, after its first field, in a
    CONTINUATION fragment, or as the request's trailers."""
    def build(c):
        if where == "front":
            raw_request(c, bad + req(c))
        elif where == "after-field":
            raw_request(c, hp_literal(":method", "GET") + bad + block(std(c)[1:]))
        elif where == "continuation":
            sid = take_sid(c)
            send(c, frame(HEADERS, END_STREAM, sid, req(c)),
                 frame(CONTINUATION, END_HEADERS, sid, bad))
        elif where == "trailers":
            sid = open_post(c)
            send(c, frame(DATA, 0, sid, b"hello"),
                 frame(HEADERS, END_STREAM | END_HEADERS, sid, bad))
    build.__doc__ = (f"{why}: a decoding error, connection error COMPRESSION_ERROR "
                     "(RFC 9113 §4.3).")
    conn_case(cid, CE, (3,) if where == "trailers" else NEW)(build)


_hpack_case("7541-indexed-0", b"\x80", "RFC 7541 §6.1: index 0 is not used")
_hpack_case("7541-index-out-of-range", hp_int(1000, 7, 0x80),
            "RFC 7541 §2.3.3: an index past the static and dynamic tables")
_hpack_case("7541-name-index-out-of-range", hp_int(1000, 6, 0x40) + hp_str("v"),
            "RFC 7541 §2.3.3: a literal whose name index is past both tables")
_hpack_case("7541-huffman-eos", b"\x00" + hp_str("x-h") + b"\x84\xff\xff\xff\xff",
            "RFC 7541 §5.2: a Huffman string containing EOS (30 one-bits)")
_hpack_case("7541-huffman-padding-over-7-bits", b"\x00" + hp_str("x-h") + b"\x82\x1f\xff",
            "RFC 7541 §5.2: Huffman padding longer than 7 bits ('a' = 00011, then 11 ones)")
_hpack_case("7541-huffman-padding-zeros", b"\x00" + hp_str("x-h") + b"\x81\x18",
            "RFC 7541 §5.2: Huffman padding that is not a prefix of EOS ('a', then 000)")
_hpack_case("7541-integer-overflow", b"\xff" + b"\xff" * 10 + b"\x01",
            "RFC 7541 §5.1: an integer (an index) far beyond any implementation limit")
_hpack_case("7541-string-past-end-of-block", b"\x00" + hp_str("x-h") + b"\x64abc",
            "RFC 7541 §5.2: a string literal of 100 bytes with 3 left in the block")
_hpack_case("7541-size-update-after-field", hp_int(0, 5, 0x20),
            "RFC 7541 §4.2: a dynamic table size update after a field of the block",
            where="after-field")
_hpack_case("7541-index-out-of-range-in-continuation", hp_int(1000, 7, 0x80),
            "RFC 7541 §2.3.3, in a CONTINUATION fragment", where="continuation")
_hpack_case("7541-indexed-0-in-trailers", b"\x80",
            "RFC 7541 §6.1, in the request's trailers", where="trailers")


@conn_case("7541-size-update-over-settings", CE, NEW)
def _c_size_update_big(c):
    """RFC 7541 §6.3: a dynamic table size update above the decoder's
    SETTINGS_HEADER_TABLE_SIZE is a decoding error."""
    limit = c.peer_settings.get(HEADER_TABLE_SIZE, 4096)
    raw_request(c, hp_int(limit + 1, 5, 0x20) + req(c))


# -- §5.1 idle streams: only HEADERS and PRIORITY

@conn_case("5.1-idle-data", PC)
def _c_idle_data(c):
    """§5.1: DATA on an idle stream is a connection error PROTOCOL_ERROR."""
    send(c, frame(DATA, END_STREAM, c._next_sid, b"x"))


@conn_case("5.1-idle-rst-stream", PC)
def _c_idle_rst(c):
    """§5.1, §6.4: RST_STREAM on an idle stream."""
    send(c, frame(RST_STREAM, 0, c._next_sid, u32(ErrorCodes.CANCEL)))


@conn_case("5.1-idle-window-update", PC)
def _c_idle_wu(c):
    """§5.1: WINDOW_UPDATE on an idle stream."""
    send(c, frame(WINDOW_UPDATE, 0, c._next_sid, u32(1000)))


# -- §5.1.1 stream identifiers

@conn_case("5.1.1-even-stream-id", PC)
def _c_even(c):
    """§5.1.1: a client-initiated stream with an even id."""
    send(c, frame(HEADERS, END_STREAM | END_HEADERS, c._next_sid + 1, req(c)))


# -- §6.1 DATA

@conn_case("6.1-data-stream-0", PC)
def _c_data_zero(c):
    """§6.1: DATA on stream 0."""
    send(c, frame(DATA, 0, 0, b"hello"))


@conn_case("6.1-data-pad-length-equals-payload", PC, (3,))
def _c_data_pad(c):
    """§6.1: a Pad Length equal to the frame's payload length (no room
    left for it): connection error PROTOCOL_ERROR."""
    sid = open_post(c)
    send(c, frame(DATA, PADDED, sid, bytes([5]) + b"abcd"))


# -- §6.2 HEADERS

@conn_case("6.2-headers-stream-0", PC)
def _c_headers_zero(c):
    """§6.2: HEADERS on stream 0."""
    send(c, frame(HEADERS, END_STREAM | END_HEADERS, 0, req(c)))


@conn_case("6.2-headers-pad-length-too-large", PC, NEW)
def _c_headers_pad(c):
    """§6.2: padding longer than what is left for the field block."""
    blk = req(c)
    raw_request(c, bytes([len(blk) + 1]) + blk, flags=END_STREAM | END_HEADERS | PADDED)


@conn_case("6.2-headers-priority-flag-too-short", FSE, NEW)
def _c_headers_prio_short(c):
    """§4.2, §6.2: the PRIORITY flag with a 3-byte payload (the priority
    fields alone are 5 bytes): FRAME_SIZE_ERROR, a connection error on a
    frame that carries a field block."""
    raw_request(c, b"\x00\x00\x00", flags=END_STREAM | END_HEADERS | PRIORITY_FLAG)


# -- §6.3 PRIORITY, §6.4 RST_STREAM

@conn_case("6.3-priority-stream-0", PC)
def _c_prio_zero(c):
    """§6.3: PRIORITY on stream 0."""
    send(c, frame(PRIORITY, 0, 0, prio(1, 16)))


@conn_case("6.4-rst-stream-stream-0", PC)
def _c_rst_zero(c):
    """§6.4: RST_STREAM on stream 0."""
    send(c, frame(RST_STREAM, 0, 0, u32(ErrorCodes.CANCEL)))


@conn_case("6.4-rst-stream-length-3", FSE, (3,))
def _c_rst_len3(c):
    """§6.4: RST_STREAM with a length other than 4 (here 3, on an open
    stream): connection error FRAME_SIZE_ERROR."""
    sid = slow_get(c)
    send(c, frame(RST_STREAM, 0, sid, b"\x00\x00\x08"))


# -- §6.5 SETTINGS

@conn_case("6.5-settings-ack-with-payload", FSE)
def _c_settings_ack_payload(c):
    """§6.5: SETTINGS with ACK and a non-empty payload."""
    send(c, frame(SETTINGS, ACK, 0, setting(HEADER_TABLE_SIZE, 4096)))


@conn_case("6.5-settings-on-stream", PC)
def _c_settings_stream(c):
    """§6.5: SETTINGS on a stream other than 0."""
    send(c, frame(SETTINGS, 0, 1, setting(HEADER_TABLE_SIZE, 4096)))


@conn_case("6.5-settings-length-not-multiple-of-6", FSE)
def _c_settings_len(c):
    """§6.5: a SETTINGS length that is not a multiple of 6 (here 7)."""
    send(c, frame(SETTINGS, 0, 0, setting(HEADER_TABLE_SIZE, 4096) + b"\x00"))


@conn_case("6.5.2-enable-push-2", PC)
def _c_push_2(c):
    """§6.5.2: SETTINGS_ENABLE_PUSH other than 0 or 1."""
    send(c, frame(SETTINGS, 0, 0, setting(ENABLE_PUSH, 2)))


@conn_case("6.5.2-initial-window-size-2^31", FCE)
def _c_iws_big(c):
    """§6.5.2: SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1: FLOW_CONTROL_ERROR."""
    send(c, frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 2 ** 31)))


@conn_case("6.5.2-max-frame-size-16383", PC)
def _c_mfs_small(c):
    """§6.5.2: SETTINGS_MAX_FRAME_SIZE below 2^14."""
    send(c, frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 16383)))


@conn_case("6.5.2-max-frame-size-2^24", PC)
def _c_mfs_big(c):
    """§6.5.2: SETTINGS_MAX_FRAME_SIZE above 2^24-1."""
    send(c, frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 2 ** 24)))


@conn_case("6.9.2-initial-window-size-overflows-stream", FCE, (3,))
def _c_iws_overflow(c):
    """§6.9.2: a SETTINGS_INITIAL_WINDOW_SIZE change that takes an open
    stream's window past 2^31-1 is a connection error FLOW_CONTROL_ERROR
    (stream 3's window is first raised to exactly 2^31-1, then the
    initial size grows by 1)."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(MAX_WINDOW - DEFAULT_WINDOW)),
         frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW + 1)))


# -- §6.6 PUSH_PROMISE, §6.7 PING, §6.8 GOAWAY

@conn_case("6.6-push-promise-from-client", PC, (3,))
def _c_push_promise(c):
    """§6.6, §8.4: a server receiving PUSH_PROMISE (on an open stream):
    connection error PROTOCOL_ERROR."""
    sid = slow_get(c)
    send(c, frame(PUSH_PROMISE, END_HEADERS, sid, u32(2) + req(c)))


@conn_case("6.7-ping-length-7", FSE)
def _c_ping_7(c):
    """§6.7: a PING payload other than 8 bytes (7)."""
    send(c, frame(PING, 0, 0, b"1234567"))


@conn_case("6.7-ping-on-stream", PC)
def _c_ping_stream(c):
    """§6.7: PING on a stream other than 0."""
    send(c, frame(PING, 0, 1, b"12345678"))


@conn_case("6.8-goaway-on-stream", PC)
def _c_goaway_stream(c):
    """§6.8: GOAWAY on a stream other than 0."""
    send(c, frame(GOAWAY, 0, 1, u32(0) + u32(0)))


@conn_case("6.8-goaway-too-short", FSE)
def _c_goaway_short(c):
    """§4.2: a GOAWAY too short for its mandatory fields (4 of 8 bytes):
    FRAME_SIZE_ERROR, a connection error (stream 0)."""
    send(c, frame(GOAWAY, 0, 0, u32(0)))


# -- §6.9 WINDOW_UPDATE

@conn_case("6.9-window-update-length-3", FSE)
def _c_wu_len3(c):
    """§6.9: WINDOW_UPDATE with a length other than 4 (3, stream 0)."""
    send(c, frame(WINDOW_UPDATE, 0, 0, b"\x00\x00\x01"))


@conn_case("6.9-window-update-length-5-on-stream", FSE, (3,))
def _c_wu_len5(c):
    """§6.9: a 5-byte WINDOW_UPDATE on an open stream: still a connection
    error FRAME_SIZE_ERROR."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(1000) + b"\x00"))


@conn_case("6.9-window-update-0-on-connection", PC, (3,))
def _c_wu_zero_conn(c):
    """§6.9: a 0 increment on the connection window, while stream 3 is in
    flight: connection error PROTOCOL_ERROR naming stream 3."""
    slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, 0, u32(0)))


@conn_case("6.9.1-connection-window-overflow", FCE)
def _c_wu_overflow_conn(c):
    """§6.9.1: WINDOW_UPDATE taking the connection window past 2^31-1."""
    send(c, frame(WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW)))


@pytest.mark.parametrize("case", list(CONN))
def test_h2x_280_10_connection_error(frame_client, case):
    """A connection error: GOAWAY(code) with the right last-stream-id, the
    connection closed, the server serving a new connection (§5.4.1)."""
    code, last, build = CONN[case]
    c = frame_client()
    warm(c)
    build(c)
    expect_connection_error(c, code, last)
    server_up(frame_client)


# == stream errors =====================================================================

# case id -> (codes, builder returning the stream id that must be reset)
STREAM: Dict[str, Tuple[Tuple[int, ...], Callable]] = {}


def stream_case(cid: str, *codes: int):
    def deco(fn):
        STREAM[cid] = (codes, fn)
        return fn
    return deco


@stream_case("4.2-data-over-max-frame-size", FSE)
def _s_data_big(c):
    """§4.2: a DATA frame over SETTINGS_MAX_FRAME_SIZE: FRAME_SIZE_ERROR
    (a stream or a connection error for a frame that changes one stream)."""
    sid = open_post(c)
    send(c, frame(DATA, END_STREAM, sid, b"d" * (_max_frame(c) + 1)))
    return sid


@stream_case("4.2-data-padded-no-pad-length", FSE)
def _s_data_padded_empty(c):
    """§4.2, §6.1: a PADDED DATA frame of length 0, too short for its Pad
    Length field: FRAME_SIZE_ERROR."""
    sid = open_post(c)
    send(c, frame(DATA, PADDED, sid, b""))
    return sid


@stream_case("5.1-half-closed-remote-data", SC)
def _s_hcr_data(c):
    """§5.1: DATA on a half-closed (remote) stream (its request ended with
    END_STREAM): STREAM_CLOSED."""
    sid = slow_get(c)
    send(c, frame(DATA, END_STREAM, sid, b"late"))
    return sid


@stream_case("5.1-half-closed-remote-headers", SC)
def _s_hcr_headers(c):
    """§5.1: HEADERS (trailers) on a half-closed (remote) stream: STREAM_CLOSED."""
    sid = slow_get(c)
    send(c, frame(HEADERS, END_STREAM | END_HEADERS, sid, hp_literal("x-late", "1")))
    return sid


@stream_case("5.3.1-headers-depends-on-itself", PC)
def _s_headers_self(c):
    """§5.3.1: a stream cannot depend on itself (HEADERS with PRIORITY):
    stream error PROTOCOL_ERROR."""
    sid = take_sid(c)
    send(c, frame(HEADERS, END_STREAM | END_HEADERS | PRIORITY_FLAG, sid,
                  prio(sid, 16) + req(c)))
    return sid


@stream_case("5.3.1-priority-depends-on-itself", PC)
def _s_priority_self(c):
    """§5.3.1: PRIORITY making an open stream depend on itself."""
    sid = slow_get(c)
    send(c, frame(PRIORITY, 0, sid, prio(sid, 16)))
    return sid


@stream_case("6.3-priority-length-4", FSE)
def _s_priority_len(c):
    """§6.3: a PRIORITY frame of a length other than 5 (4) is a stream
    error FRAME_SIZE_ERROR."""
    sid = slow_get(c)
    send(c, frame(PRIORITY, 0, sid, prio(0, 16)[:4]))
    return sid


@stream_case("6.9-window-update-0-on-stream", PC)
def _s_wu_zero(c):
    """§6.9: a 0 increment on a stream's window: stream error PROTOCOL_ERROR."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(0)))
    return sid


@stream_case("6.9.1-stream-window-overflow-accumulated", FCE)
def _s_wu_overflow(c):
    """§6.9.1: two WINDOW_UPDATEs on a stream, each valid, that together
    take its window past 2^31-1: RST_STREAM(FLOW_CONTROL_ERROR)."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(2 ** 30)),
         frame(WINDOW_UPDATE, 0, sid, u32(2 ** 30)))
    return sid


@pytest.mark.parametrize("case", list(STREAM))
def test_h2x_280_20_stream_error(frame_client, case):
    """A stream error: RST_STREAM(code), nothing more on that stream, the
    connection carries on (or, §5.4.1, GOAWAY with the same code)."""
    codes, build = STREAM[case]
    c = frame_client()
    warm(c)
    sid = build(c)
    expect_stream_error(c, sid, codes, frame_client, what=case)


# == malformed requests (§8) ===========================================================

MALFORMED: Dict[str, Callable] = {}


def malformed_case(cid: str):
    def deco(fn):
        MALFORMED[cid] = fn
        return fn
    return deco


def _post_with_trailers(c, trailers: Fields, data: bytes = b"hello",
                        extra: Fields = (), trailer_flags: int = END_STREAM | END_HEADERS) -> int:
    sid = raw_request(c, req(c, "/h2x/echo", "POST", extra), flags=END_HEADERS)
    send(c, frame(DATA, 0, sid, data), frame(HEADERS, trailer_flags, sid, block(trailers)))
    return sid


@malformed_case("8.1-trailers-without-end-stream")
def _m_trailers_no_es(c):
    """§8.1: a second HEADERS frame without END_STREAM (trailers must end
    the stream)."""
    sid = _post_with_trailers(c, [("x-t", "1")], trailer_flags=END_HEADERS)
    return sid


@malformed_case("8.1.1-content-length-with-no-data")
def _m_cl_no_data(c):
    """§8.1.1: content-length 5 and END_STREAM on the HEADERS (0 bytes)."""
    return raw_request(c, req(c, "/h2x/echo", "POST", [("content-length", "5")]))


@malformed_case("8.1.1-content-length-then-trailers-short")
def _m_cl_trailers(c):
    """§8.1.1: content-length 10, 5 bytes of DATA, then trailers end the
    stream."""
    return _post_with_trailers(c, [("x-t", "1")], extra=[("content-length", "10")])


@malformed_case("8.1.1-content-length-not-a-number")
def _m_cl_nan(c):
    """§8.1.1, RFC 9110 §8.6: a content-length that is not a number."""
    return raw_request(c, req(c, GOOD, "GET", [("content-length", "abc")]))


@malformed_case("8.1.1-content-length-conflicting")
def _m_cl_two(c):
    """§8.1.1: two content-length fields with different values (one of
    them matching the DATA sent)."""
    sid = raw_request(c, req(c, "/h2x/echo", "POST", [("content-length", "5"),
                                                      ("content-length", "6")]),
                      flags=END_HEADERS)
    send(c, frame(DATA, END_STREAM, sid, b"hello"))
    return sid


@malformed_case("8.2.1-field-name-del")
def _m_name_del(c):
    """§8.2.1: a field name with a character in 0x7f-0xff (DEL)."""
    return raw_request(c, req(c, extra=[(b"x-\x7fdel", "1")]))


@malformed_case("8.2.1-field-name-non-ascii")
def _m_name_high(c):
    """§8.2.1: a field name with a non-ASCII byte (0xe9)."""
    return raw_request(c, req(c, extra=[(b"x-caf\xe9", "1")]))


@malformed_case("8.2.1-uppercase-field-name-in-trailers")
def _m_trailer_upper(c):
    """§8.2.1: uppercase characters in a trailer field name."""
    return _post_with_trailers(c, [("X-Trailer", "1")])


@malformed_case("8.2.2-connection-field-in-trailers")
def _m_trailer_conn(c):
    """§8.2.2: a connection-specific field (connection) in trailers."""
    return _post_with_trailers(c, [("connection", "close")])


@malformed_case("8.2.2-te-trailers-and-gzip")
def _m_te_list(c):
    """§8.2.2: TE containing a value other than "trailers" (alongside it)."""
    return raw_request(c, req(c, extra=[("te", "trailers, gzip")]))


@malformed_case("8.3.1-empty-method")
def _m_empty_method(c):
    """§8.3.1: an empty :method is not a valid value."""
    return raw_request(c, block([(":method", "")] + std(c)[1:]))


@malformed_case("8.3.1-method-not-a-token")
def _m_method_space(c):
    """§8.3.1, RFC 9110 §9.1: a :method that is not a token (a space)."""
    return raw_request(c, block([(":method", "GE T")] + std(c)[1:]))


@malformed_case("8.3.1-path-asterisk-for-get")
def _m_path_star(c):
    """§8.3.1: ":path *" is for OPTIONS only."""
    return raw_request(c, req(c, "*", "GET"))


@malformed_case("8.5-connect-with-scheme")
def _m_connect_scheme(c):
    """§8.5: CONNECT (without an extended-CONNECT :protocol) must omit
    :scheme."""
    return raw_request(c, block([(":method", "CONNECT"), (":scheme", c.scheme),
                                 (":authority", "example.org:443")]), flags=END_HEADERS)


@malformed_case("8.5-connect-with-path")
def _m_connect_path(c):
    """§8.5: CONNECT with :path."""
    return raw_request(c, block([(":method", "CONNECT"), (":authority", "example.org:443"),
                                 (":path", "/")]), flags=END_HEADERS)


@malformed_case("8.5-connect-without-authority")
def _m_connect_noauth(c):
    """§8.5: CONNECT without :authority."""
    return raw_request(c, block([(":method", "CONNECT")]), flags=END_HEADERS)


@pytest.mark.parametrize("case", list(MALFORMED))
def test_h2x_280_30_malformed_request(frame_client, case):
    """A malformed request (§8.1.1): RST_STREAM(PROTOCOL_ERROR) or a 400,
    and the connection carries on."""
    c = frame_client()
    warm(c)
    sid = MALFORMED[case](c)
    expect_malformed(c, sid)


# == what must be accepted or ignored ==================================================

ACCEPTED: Dict[str, Callable] = {}


def accepted_case(cid: str):
    def deco(fn):
        ACCEPTED[cid] = fn
        return fn
    return deco


def _served(c, sid, body: Optional[bytes] = None, status: int = 200):
    assert c.wait_stream_end(sid, timeout=WAIT), seen(c)
    s = c.stream(sid)
    assert s.ended_by == "END_STREAM" and s.status == status, s
    if body is not None:
        assert s.body == body, s


@accepted_case("4.1-undefined-flags-on-headers")
def _a_flags_headers(c):
    """§4.1: flags a frame type does not define are ignored (HEADERS with
    0x02, 0x10, 0x40, 0x80 set)."""
    sid = raw_request(c, req(c), flags=END_STREAM | END_HEADERS | 0xD2)
    _served(c, sid, status=200)


@accepted_case("4.1-undefined-flags-on-data")
def _a_flags_data(c):
    """§4.1: DATA with every undefined flag set."""
    sid = open_post(c)
    send(c, frame(DATA, 0xF6, sid, b"hel"), frame(DATA, END_STREAM | 0xF6, sid, b"lo"))
    _served(c, sid, b"hello")


@accepted_case("4.1-undefined-flags-on-ping-and-settings")
def _a_flags_ping(c):
    """§4.1: PING and SETTINGS with every flag but ACK set: answered with
    their ACKs as usual."""
    acks = c.settings_acks
    send(c, frame(SETTINGS, 0xFE, 0, setting(HEADER_TABLE_SIZE, 4096)),
         frame(PING, 0xFE, 0, b"flagsxyz"))
    assert c.run(lambda cl: any(p.data == b"flagsxyz" and "ACK" in p.flags for p in cl.pings)
                 and cl.settings_acks > acks, WAIT), seen(c)


@accepted_case("4.1-reserved-bit-in-stream-id")
def _a_rbit(c):
    """§4.1: the reserved bit of the stream id is ignored on receipt."""
    sid = take_sid(c)
    send(c, frame(HEADERS, END_STREAM | END_HEADERS, sid | 0x80000000, req(c)))
    _served(c, sid, status=200)


@accepted_case("6.9-reserved-bit-in-window-increment")
def _a_rbit_wu(c):
    """§6.9: the reserved bit of a WINDOW_UPDATE increment is ignored (the
    increment is 1000, not 2^31+1000, which would overflow)."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, 0, u32(0x80000000 | 1000)),
         frame(WINDOW_UPDATE, 0, sid, u32(0x80000000 | 1000)))
    _served(c, sid, pattern_body(10))


@accepted_case("4.3-field-block-in-many-continuations")
def _a_continuations(c):
    """§4.3, §6.10: a request block in HEADERS (END_STREAM, no END_HEADERS)
    and three CONTINUATIONs, split inside literals, one of them empty (the
    servers allow 8 CONTINUATIONs per block, against floods)."""
    sid = take_sid(c)
    blk = req(c, extra=[("x-split", "s" * 40)])
    cut = len(blk) // 2
    send(c, frame(HEADERS, END_STREAM, sid, blk[:7]), frame(CONTINUATION, 0, sid, b""),
         frame(CONTINUATION, 0, sid, blk[7:cut]), frame(CONTINUATION, END_HEADERS, sid, blk[cut:]))
    _served(c, sid, status=200)


@accepted_case("5.1-idle-priority")
def _a_idle_priority(c):
    """§5.1, §6.3: PRIORITY on an idle stream is allowed and does not open
    it: a lower stream id is still usable afterwards, then the idle one."""
    low, high = c._next_sid, c._next_sid + 4
    send(c, frame(PRIORITY, 0, high, prio(0, 200)))
    a = c.request("GET", GOOD, sid=low)
    _served(c, a)
    b = c.request("GET", GOOD, sid=high)
    _served(c, b)


@accepted_case("5.1-half-closed-remote-window-update-priority")
def _a_hcr_ok(c):
    """§5.1: WINDOW_UPDATE and PRIORITY on a half-closed (remote) stream
    are allowed."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(1000)), frame(PRIORITY, 0, sid, prio(0, 32)))
    _served(c, sid, pattern_body(10))


@accepted_case("5.1-closed-window-update-priority-rst")
def _a_closed_ok(c):
    """§5.1: WINDOW_UPDATE, PRIORITY and RST_STREAM on a stream the server
    just closed with END_STREAM are ignored (the peer may not have seen
    the END_STREAM yet)."""
    sid = c.request("GET", GOOD)
    _served(c, sid)
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(1000)), frame(PRIORITY, 0, sid, prio(0, 8)),
         frame(RST_STREAM, 0, sid, u32(ErrorCodes.CANCEL)))


@accepted_case("5.5-unknown-frame-types")
def _a_unknown_frames(c):
    """§5.5, §4.1: frames of an unknown type are ignored: on stream 0, on
    an idle stream, and between the DATA frames of an upload."""
    send(c, frame(UNKNOWN_TYPE, 0xFF, 0, b"x" * 20), frame(0xFF, 0, c._next_sid + 10, b"y"))
    sid = open_post(c)
    send(c, frame(DATA, 0, sid, b"hel"), frame(UNKNOWN_TYPE, 0, sid, b"zz"),
         frame(DATA, END_STREAM, sid, b"lo"))
    _served(c, sid, b"hello")


@accepted_case("5.5-unknown-settings")
def _a_unknown_settings(c):
    """§6.5.2: unknown SETTINGS identifiers are ignored (and ACKed)."""
    acks = c.settings_acks
    send(c, frame(SETTINGS, 0, 0, setting(0x00F0, 0xFFFFFFFF) + setting(0x4242, 1)
                  + setting(0, 7)))
    assert c.run(lambda cl: cl.settings_acks > acks, WAIT), seen(c)


@accepted_case("6.1-padded-data")
def _a_padded_data(c):
    """§6.1: padded DATA, including a frame that is all padding (Pad
    Length = payload length - 1) and one with a Pad Length of 0."""
    sid = open_post(c)
    send(c, frame(DATA, PADDED, sid, bytes([10]) + b"hello" + b"\0" * 10),
         frame(DATA, PADDED, sid, bytes([3]) + b"\0" * 3),
         frame(DATA, PADDED | END_STREAM, sid, bytes([0]) + b"!"))
    _served(c, sid, b"hello!")


@accepted_case("6.2-padded-headers-with-priority")
def _a_padded_headers(c):
    """§6.2: HEADERS with PADDED and PRIORITY (on a stream that depends on
    an idle one)."""
    sid = take_sid(c)
    pad = 17
    payload = bytes([pad]) + prio(sid + 40, 100, exclusive=True) + req(c) + b"\0" * pad
    send(c, frame(HEADERS, END_STREAM | END_HEADERS | PADDED | PRIORITY_FLAG, sid, payload))
    _served(c, sid)


@accepted_case("6.5.2-max-frame-size-limits")
def _a_mfs_bounds(c):
    """§6.5.2: SETTINGS_MAX_FRAME_SIZE 2^14 and 2^24-1 are both valid."""
    acks = c.settings_acks
    send(c, frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 16384)),
         frame(SETTINGS, 0, 0, setting(MAX_FRAME_SIZE, 2 ** 24 - 1)))
    assert c.run(lambda cl: cl.settings_acks >= acks + 2, WAIT), seen(c)


@accepted_case("6.5.2-enable-push-0-and-1")
def _a_push_values(c):
    """§6.5.2: SETTINGS_ENABLE_PUSH 1 and 0 from a client are valid."""
    acks = c.settings_acks
    send(c, frame(SETTINGS, 0, 0, setting(ENABLE_PUSH, 1)),
         frame(SETTINGS, 0, 0, setting(ENABLE_PUSH, 0)))
    assert c.run(lambda cl: cl.settings_acks >= acks + 2, WAIT), seen(c)


@accepted_case("6.5.3-every-settings-acked-in-order")
def _a_settings_acks(c):
    """§6.5.3: each SETTINGS frame gets its own ACK (three, one of them
    empty)."""
    acks = c.settings_acks
    send(c, frame(SETTINGS, 0, 0, b""), frame(SETTINGS, 0, 0, setting(HEADER_TABLE_SIZE, 4096)),
         frame(SETTINGS, 0, 0, setting(MAX_HEADER_LIST_SIZE, 1 << 20)))
    assert c.run(lambda cl: cl.settings_acks >= acks + 3, WAIT), seen(c)
    c.run(timeout=0.05)
    assert c.settings_acks == acks + 3, seen(c)


@accepted_case("6.7-ping-ack-not-answered")
def _a_ping_ack(c):
    """§6.7: a PING with ACK must not be answered."""
    data = b"ackack!!"
    send(c, frame(PING, ACK, 0, data))
    ping_barrier(c)
    c.run(timeout=0.05)
    assert not [p for p in c.pings if p.data == data], seen(c)


@accepted_case("6.9.1-windows-up-to-2^31-1")
def _a_window_max(c):
    """§6.9.1: windows raised to exactly 2^31-1 (connection and stream)
    are valid."""
    sid = slow_get(c)
    send(c, frame(WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW - DEFAULT_WINDOW)),
         frame(WINDOW_UPDATE, 0, sid, u32(MAX_WINDOW - DEFAULT_WINDOW)))
    _served(c, sid, pattern_body(10))


@accepted_case("7-unknown-error-code-in-rst-stream")
def _a_unknown_code(c):
    """§7: an unknown error code triggers nothing special: RST_STREAM
    (0xdeadbeef) ends the stream like CANCEL, and the server sends nothing
    more on it."""
    sid = slow_get(c)
    c.run(timeout=0.05)
    c.reset(sid, 0xDEADBEEF)
    c.run(timeout=0.45)     # past the handler's 0.3 s
    assert not c.stream(sid).frames, c.stream(sid).frames_str()


@pytest.mark.parametrize("case", list(ACCEPTED))
def test_h2x_280_40_accepted(frame_client, case):
    """What the RFC says to ignore or allow is neither a stream nor a
    connection error; the connection carries on."""
    c = frame_client()
    warm(c)
    ACCEPTED[case](c)
    expect_accepted(c)


# == single cases that need more than one exchange =====================================

def test_h2x_280_50_max_concurrent_streams(frame_client):
    """§5.1.2: a HEADERS past the advertised SETTINGS_MAX_CONCURRENT_STREAMS
    (the default 100 here; every stream held open by an upload that has
    not started) is a stream error REFUSED_STREAM or PROTOCOL_ERROR (or,
    §5.4.1, GOAWAY(PROTOCOL_ERROR) naming the last open stream).  The
    refused request's header block still updates the server's HPACK
    decoder (§4.3): the next request refers to the entries it added."""
    c = frame_client()
    warm(c)
    limit = c.peer_settings.get(MAX_CONCURRENT_STREAMS)
    assert limit and limit <= 200, f"server announced MAX_CONCURRENT_STREAMS {limit}"
    held = [open_post(c) for _ in range(limit)]
    assert ping_barrier(c), seen(c)
    assert not c.goaways and not _rsts(c, held[-1]), seen(c)
    marker = [("x-h2x-refused", "r" * 30), ("x-h2x-second", "two")]
    extra = c.request("GET", "/h2x/env", headers=marker)     # indexes the marker fields
    c.run(lambda cl: _rsts(cl, extra) or cl.goaways or cl.closed, WAIT)
    rst = _rsts(c, extra)
    if rst:
        assert rst[0].error_code in (RS, PC), seen(c)
        assert c.stream(extra).status is None, c.stream(extra)
        assert not c.goaways, seen(c)
        how = f"stream error {rst[0].error_name}"
        for sid in held:
            c.reset(sid, ErrorCodes.CANCEL)
        again = c.request("GET", "/h2x/env", headers=marker)
        _served(c, again)
        hdrs = dict((k.lower(), v) for k, v in header_lines(c.stream(again).body))
        assert hdrs.get("x-h2x-refused") == "r" * 30 and hdrs.get("x-h2x-second") == "two", hdrs
        carries_on(c)
    else:
        assert c.goaways and c.goaway.error_code == PC, seen(c)
        assert c.goaway.last_stream_id == held[-1], seen(c)
        assert c.wait_closed(WAIT), seen(c)
        c.expect_open()
        how = "connection error PROTOCOL_ERROR"
        server_up(frame_client)
    print(f"[280] 5.1.2-over-max-concurrent-streams: {how}")


def test_h2x_280_51_decoder_state_after_reset_stream(frame_client):
    """§4.3: a field block on a stream the server resets (a malformed
    request, §8.2.1) is still decoded: the entries it added to the dynamic
    table are there for the next request, which refers to them by index."""
    c = frame_client()
    warm(c)
    marker = [("x-h2x-idx", "i" * 40), ("x-h2x-idx2", "second")]
    sid = c._next_sid
    c._next_sid += 2
    c.send_headers(sid, std(c, "/h2x/env") + marker + [("X-Upper", "1")], end_stream=True)
    expect_malformed(c, sid)
    again = c.request("GET", "/h2x/env", headers=marker)
    _served(c, again)
    hdrs = dict((k.lower(), v) for k, v in header_lines(c.stream(again).body))
    assert hdrs.get("x-h2x-idx") == "i" * 40 and hdrs.get("x-h2x-idx2") == "second", hdrs
    env = parse_env_body(c.stream(again).body)
    assert env["request.uri"] == "/h2x/env"


def test_h2x_280_52_negative_stream_window(frame_client):
    """§6.9.2: a smaller SETTINGS_INITIAL_WINDOW_SIZE can make a stream's
    window negative; the server must send no DATA until WINDOW_UPDATEs make
    it positive again, then exactly what it allows."""
    c = frame_client(window=100, auto_window_update=False)
    sid = c.request("GET", "/h2x/status?n=1000")
    s = c.stream(sid)
    assert c.run(lambda cl: len(s.body) >= 100 or s.ended, WAIT), seen(c)
    c.run(timeout=QUIET)
    assert len(s.body) == 100, f"more than the 100-byte window: {s.frames_str()}"
    # window 0 -> -60 (initial size 100 -> 40) -> -10 (+50): still nothing
    send(c, frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, 40)),
         frame(WINDOW_UPDATE, 0, sid, u32(50)))
    c.run(timeout=QUIET)
    assert len(s.body) == 100, f"DATA sent on a negative window: {s.frames_str()}"
    # -10 -> +20: exactly 20 bytes
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(30)))
    assert c.run(lambda cl: len(s.body) >= 120, WAIT), s.frames_str()
    c.run(timeout=QUIET)
    assert len(s.body) == 120, f"more than the window allowed: {s.frames_str()}"
    send(c, frame(WINDOW_UPDATE, 0, sid, u32(880)))
    assert c.wait_stream_end(sid, WAIT), s.frames_str()
    assert s.body == pattern_body(1000) and c.shape(sid) == "HEADERS DATA[ES]", s.frames_str()
    assert not c.goaways
    c.window_update(0, 1000)
    send(c, frame(SETTINGS, 0, 0, setting(INITIAL_WINDOW_SIZE, DEFAULT_WINDOW)))
    carries_on(c)


def test_h2x_280_53_client_goaway(frame_client):
    """§6.8: a client's GOAWAY(NO_ERROR) concerns streams the server would
    open; the client's own request in flight is still answered in full."""
    c = frame_client()
    warm(c)
    sid = slow_get(c)
    assert ping_barrier(c), seen(c)     # stream 3 is in the server's hands
    send(c, frame(GOAWAY, 0, 0, u32(0) + u32(ErrorCodes.NO_ERROR)))
    c.run(lambda cl: cl.stream(sid).ended or cl.closed, WAIT)
    if c.goaways:
        # §6.8: the server has taken action on stream 3; a GOAWAY of its
        # own must not say otherwise.
        assert c.goaway.error_code == ErrorCodes.NO_ERROR, seen(c)
        assert c.goaway.last_stream_id >= sid, seen(c)
    _served(c, sid, pattern_body(10))


TLS_SAMPLE = ["6.5.2-enable-push-2", "7541-index-out-of-range", "6.9-window-update-0-on-stream",
              "8.2.2-te-trailers-and-gzip"]


@pytest.mark.parametrize("case", TLS_SAMPLE)
def test_h2x_280_60_over_tls(frame_client, case):
    """A sample of the cases above over h2 (TLS, ALPN): the same answers."""
    c = frame_client(tls=True)
    warm(c)
    if case in CONN:
        code, last, build = CONN[case]
        build(c)
        expect_connection_error(c, code, last)
        server_up(frame_client, tls=True)
    elif case in STREAM:
        codes, build = STREAM[case]
        sid = build(c)
        expect_stream_error(c, sid, codes, frame_client, tls=True, what=f"tls {case}")
    else:
        expect_malformed(c, MALFORMED[case](c))
