"""Seeded HTTP/2 fuzzing against a live httpd (issue 10 point 5).

Each round is one connection (h2c with prior knowledge on even rounds, TLS
with ALPN h2 on odd ones) driven by random.Random("h2x-fuzz/<seed>/<round>"):
a valid preface and SETTINGS, then a bounded mix of valid requests (static
files, /h2x/status, /h2x/echo, /h2x/stream, CGI, ...) and hostile frames
(unknown types, random flags, wrong lengths, bad stream ids, broken HPACK,
CONTINUATION abuse, PRIORITY self-dependency, WINDOW_UPDATE 0/overflow,
RST_STREAM/DATA on idle or closed streams, bad padding, bad SETTINGS,
floods, GOAWAY from the client, ...).  Then it reads until the server closes
the connection or stays quiet.  The frame sequence depends only on the seed
and the round number, so any round can be replayed (timing may differ).

A round fails when

- httpd crashed: the parent pid is gone, or the error log shows a crash
  (h2x.logscan.CRASH) or a sanitizer report ("AddressSanitizer",
  "runtime error:", the report files of an H2X_SANITIZE run);
- a fresh, well-behaved client does not get GET /index.html answered within
  5 s afterwards;
- a stream the round opened (a new odd stream id, a complete header block,
  the client side ended with END_STREAM, before any frame that breaks the
  framing and before the client's own GOAWAY) got neither END_STREAM nor
  RST_STREAM, nor is above the last_stream_id of a GOAWAY the server sent,
  nor was cut off by a connection error (a GOAWAY with an error code),
  within `stall_grace` seconds after the server stopped sending (DESIGN.md
  invariant 1).  Before giving up, the fuzzer opens the flow-control windows
  of such streams, so a response blocked by a SETTINGS_INITIAL_WINDOW_SIZE 0
  the fuzzer sent is not counted;
- the server left a flow-control window closed for `stall_grace` seconds
  while the client had request body to send on a stream neither ended nor
  reset (uploads larger than the windows are part of the mix);
- the server sent a frame that does not parse, a header block that does not
  decode, or HEADERS/DATA after it ended a stream (END_STREAM or
  RST_STREAM).

With `graceful`, httpd is restarted gracefully every so many seconds while
the rounds run; its GOAWAY(NO_ERROR) excuses only the streams above its
last_stream_id (DESIGN.md invariant 8).

A connection error (GOAWAY) in answer to garbage is fine, and so are stream
errors, 4xx responses and error-log lines below the crash patterns.

Command line (scripts/fuzz wraps it; run from test/ with /usr/bin/python3):

    python3 -m h2x.fuzz [--seconds 120] [--seed N] [--round R [--repeat K]]
                        [--module h2x|http2] [--mpm M] [--graceful S]
"""

import argparse
import os
import random
import re
import select
import socket
import ssl
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import hpack

from .frames import FRAME_TYPES, PREFACE, FrameClient, error_name, setting_name

# -- frame building ------------------------------------------------------------

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
ES = 0x1          # END_STREAM (DATA, HEADERS); ACK (SETTINGS, PING)
ACK = 0x1
EH = 0x4          # END_HEADERS
PADDED = 0x8
PRIO = 0x20

MAX_SID = 0x7FFFFFFF
MAX_WINDOW = 0x7FFFFFFF
MAX_FRAME = 16384            # what the fuzzer assumes the server accepts

# Send header blocks of several frames (HEADERS + CONTINUATION) in small
# pieces too.  Off by default: nghttp2 (Debian's 1.52, upstream issue #2817)
# counts a CONTINUATION once more for every read that ends inside its
# 9-byte frame header, so with mod_h2x's limit of 8 CONTINUATIONs a valid
# request whose block arrives in small pieces gets GOAWAY(PROTOCOL_ERROR),
# which fails a round ("connection error in answer to valid frames").
# --split-header-blocks turns it on.
SPLIT_HEADER_BLOCKS = False
UPLOAD_BUDGET = 200000       # DATA bytes per round in pre-built DATA frames

_FLAG_NAMES = {
    DATA: {ES: "ES", PADDED: "PADDED"},
    HEADERS: {ES: "ES", EH: "EH", PADDED: "PADDED", PRIO: "PRIO"},
    SETTINGS: {ACK: "ACK"}, PING: {ACK: "ACK"},
    CONTINUATION: {EH: "EH"}, PUSH_PROMISE: {EH: "EH", PADDED: "PADDED"},
}


def open_header_block(pieces: List[bytes]) -> bool:
    """True if a HEADERS or PUSH_PROMISE among `pieces` lacks END_HEADERS."""
    return any(len(p) >= 9 and p[3] in (HEADERS, PUSH_PROMISE) and not p[4] & EH
               for p in pieces)


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"",
          length: Optional[int] = None) -> bytes:
    """One raw frame; `length` overrides the header's length field."""
    n = len(payload) if length is None else length
    return (n.to_bytes(3, "big") + bytes([ftype & 0xFF, flags & 0xFF])
            + (sid & 0xFFFFFFFF).to_bytes(4, "big") + payload)


def u32(v: int) -> bytes:
    return (v & 0xFFFFFFFF).to_bytes(4, "big")


def settings_payload(items: List[Tuple[int, int]]) -> bytes:
    return b"".join(k.to_bytes(2, "big") + u32(v) for k, v in items)


def describe_piece(b: bytes) -> str:
    """One line for a piece of an action (a frame, the preface, raw bytes)."""
    if b.startswith(PREFACE):
        rest = b[len(PREFACE):]
        return "client preface" + (f" + {describe_piece(rest)}" if rest else "")
    if len(b) < 9:
        return f"raw {len(b)} bytes: {b.hex()}"
    length = int.from_bytes(b[0:3], "big")
    ftype, flags = b[3], b[4]
    sid = int.from_bytes(b[5:9], "big")
    name = FRAME_TYPES.get(ftype, f"TYPE(0x{ftype:x})")
    names = [n for bit, n in _FLAG_NAMES.get(ftype, {}).items() if flags & bit]
    s = f"{name} sid={sid & MAX_SID}{'+R' if sid >> 31 else ''} flags=0x{flags:02x}"
    if names:
        s += "[" + ",".join(names) + "]"
    payload = b[9:]
    s += f" len={length}"
    if len(payload) != length:
        s += f" (payload {len(payload)} bytes)"
    if payload:
        s += ": " + payload[:40].hex() + ("..." if len(payload) > 40 else "")
    return s


# -- HPACK by hand (for blocks that must not touch the decoder's table) -------

def hp_int(value: int, prefix: int, first: int = 0) -> bytes:
    """RFC 7541 §5.1 integer with a `prefix`-bit prefix; `first` holds the
    pattern bits above the prefix."""
    limit = (1 << prefix) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hp_str(s) -> bytes:
    b = s.encode("latin-1") if isinstance(s, str) else s
    return hp_int(len(b), 7) + b


def hp_literal(name, value) -> bytes:
    """Literal header field, never indexed, new name (no table change)."""
    return b"\x10" + hp_str(name) + hp_str(value)


def hp_block(headers) -> bytes:
    return b"".join(hp_literal(n, v) for n, v in headers)


# -- actions -------------------------------------------------------------------

@dataclass
class Action:
    """What the fuzzer sends in one step: one or more pieces (frames)."""
    name: str
    pieces: List[bytes] = field(default_factory=list)
    opens: Optional[int] = None          # sid of a new stream (complete header block)
    checkable: bool = False              # opens a stream invariant 1 is checked on
    ends: List[int] = field(default_factory=list)        # sids whose client side ends here
    client_rst: List[int] = field(default_factory=list)  # sids the client resets here
    wu: List[Tuple[int, int]] = field(default_factory=list)  # valid WINDOW_UPDATEs
    iws: Optional[int] = None            # a valid SETTINGS_INITIAL_WINDOW_SIZE
    desync: bool = False                 # the framing is broken from here on
    client_goaway: bool = False
    pause: float = 0.0                   # sleep (reading) before sending
    split: bool = False                  # send in small chunks with short sleeps
    close: bool = False                  # the client closes the socket here
    half_close: bool = False             # ... or only its sending side (then reads)
    hostile: bool = False                # not a valid HTTP/2 client's frames
    body_of: Optional[int] = None        # a later part of this stream's request
    upload: Optional[bytes] = None       # a body sent after the pieces, within the
                                         # flow-control windows (FrameClient.send_data)
    flow_exempt: bool = False            # DATA sent without waiting for window

    def lines(self, limit: int = 24) -> List[str]:
        out = []
        prev, count = None, 0
        for p in self.pieces:
            d = describe_piece(p)
            if d == prev:
                count += 1
                continue
            if prev is not None:
                out.append(prev + (f"  (x{count})" if count > 1 else ""))
            prev, count = d, 1
        if prev is not None:
            out.append(prev + (f"  (x{count})" if count > 1 else ""))
        if len(out) > limit:
            out = out[:limit - 2] + [f"... ({len(out) - limit + 1} more lines) ...", out[-1]]
        return out

    @property
    def nbytes(self) -> int:
        return sum(len(p) for p in self.pieces)


STATIC = ["/index.html", "/hello.txt", "/1k.txt", "/empty.txt", "/dir/", "/dir/a.txt",
          "/ssi.shtml", "/missing.txt", "/"]


class Generator:
    """Builds one round's actions from its Random; no network involved."""

    def __init__(self, rng: random.Random, tls: bool, authority: str, n_actions: int):
        self.rng = rng
        self.scheme = "https" if tls else "http"
        self.authority = authority
        self.n_actions = n_actions
        self.enc = hpack.Encoder()        # the connection's encoder (indexes)
        self.next_sid = 1
        self.opened: List[int] = []       # fresh streams a header block went out on
        self.client_open: List[int] = []  # opened, client side not ended yet
        self.ended: List[int] = []        # client side ended (END_STREAM sent)
        self.client_goaway = False
        self.pending: List[Action] = []   # later parts of requests (bodies)
        self.budget = UPLOAD_BUDGET
        self.initial_settings: Dict[int, int] = {}

    # -- helpers ------------------------------------------------------------

    def fresh_sid(self) -> Optional[int]:
        if self.next_sid > MAX_SID:
            return None
        sid = self.next_sid
        self.next_sid += 2
        return sid

    def some_sid(self) -> int:
        """A stream id of any kind: 0, open, ended, idle, even, huge."""
        r = self.rng
        kinds = ["zero", "idle", "even", "huge", "reserved"]
        if self.opened:
            kinds += ["used"] * 3
        kind = r.choice(kinds)
        if kind == "zero":
            return 0
        if kind == "used":
            return r.choice(self.opened)
        if kind == "idle":
            return min(self.next_sid + 2 * r.randint(0, 5), MAX_SID)
        if kind == "even":
            return 2 * r.randint(1, 50)
        if kind == "huge":
            return MAX_SID - 2 * r.randint(0, 2)
        return (1 << 31) | r.choice(self.opened or [1])

    def pseudo(self, method="GET", path="/index.html"):
        return [(":method", method), (":scheme", self.scheme),
                (":authority", self.authority), (":path", path)]

    def extra_headers(self):
        r = self.rng
        out = []
        for _ in range(r.choice([0, 0, 1, 2, 4])):
            out.append(r.choice([
                ("user-agent", "h2x-fuzz/1"), ("accept", "*/*"),
                ("accept-encoding", r.choice(["gzip", "identity", "gzip, br"])),
                ("cookie", f"a={r.randint(0, 999)}"), ("te", "trailers"),
                (f"x-fuzz-{r.randint(0, 9)}", "v" * r.randint(0, 200)),
                ("cache-control", "no-cache"),
            ]))
        return out

    def header_frames(self, sid: int, block: bytes, end_stream: bool,
                      end_headers: bool = True, priority: Optional[bytes] = None,
                      pad: Optional[int] = None, max_frames: int = 8) -> List[bytes]:
        """HEADERS (+ CONTINUATION) for a block, split into at most
        `max_frames` frames."""
        r = self.rng
        head_extra = (5 if priority else 0) + (pad + 1 if pad is not None else 0)
        first_cap = MAX_FRAME - head_extra
        n = r.choice([1, 1, 1, 2, 3, max_frames])
        size = max(1, -(-len(block) // n))
        size = max(size, -(-max(0, len(block) - first_cap) // max(1, max_frames - 1)) or 1)
        chunks = [block[:min(size, first_cap)]]
        rest = block[len(chunks[0]):]
        while rest:
            chunks.append(rest[:min(size, MAX_FRAME)])
            rest = rest[len(chunks[-1]):]
        flags = ES if end_stream else 0
        payload = b""
        if pad is not None:
            flags |= PADDED
            payload += bytes([pad])
        if priority:
            flags |= PRIO
            payload += priority
        payload += chunks[0] + (b"\0" * pad if pad is not None else b"")
        if len(chunks) == 1 and end_headers:
            flags |= EH
        out = [frame(HEADERS, flags, sid, payload)]
        for i, c in enumerate(chunks[1:], start=1):
            last = i == len(chunks) - 1
            out.append(frame(CONTINUATION, EH if (last and end_headers) else 0, sid, c))
        return out

    def priority_field(self, dep: int, weight: int, exclusive: bool) -> bytes:
        return u32(dep | (0x80000000 if exclusive else 0)) + bytes([weight & 0xFF])

    def data_frames(self, sid: int, body: bytes, end_stream: bool,
                    pad: Optional[int] = None) -> List[bytes]:
        r = self.rng
        out = []
        pos = 0
        while True:
            n = min(len(body) - pos, r.choice([len(body) or 1, 100, 1000, 5000, MAX_FRAME]),
                    MAX_FRAME - (pad + 1 if pad is not None else 0))
            chunk = body[pos:pos + n]
            pos += len(chunk)
            last = pos >= len(body)
            flags = ES if (last and end_stream) else 0
            payload = chunk
            if pad is not None:
                flags |= PADDED
                payload = bytes([pad]) + chunk + b"\0" * pad
            out.append(frame(DATA, flags, sid, payload))
            self.budget -= len(payload)
            if last:
                return out

    def body(self) -> Optional[bytes]:
        n = min(self.rng.choice([0, 1, 10, 1000, 5000, 16000, 20000]), max(0, self.budget - 2000))
        return bytes(self.rng.getrandbits(8) for _ in range(n)) if n < 64 else \
            self.rng.randbytes(n)

    def _opened(self, sid: int, ends: bool):
        self.opened.append(sid)
        if ends:
            self.ended.append(sid)
        else:
            self.client_open.append(sid)

    # -- the round --------------------------------------------------------------

    def generate(self) -> List[Action]:
        r = self.rng
        self.initial_settings = {2: 0}   # ENABLE_PUSH 0, as FrameClient does
        for k, choices in ((1, [4096, 0, 65536]), (3, [100, 0, 1]),
                           (4, [65535, 65535, 0, 1, 1 << 20, MAX_WINDOW]),
                           (5, [16384, 16384, 1 << 20]), (6, [65536, 100, 1 << 20])):
            if r.random() < 0.15:
                self.initial_settings[k] = r.choice(choices)
        pre = Action("preface + SETTINGS " + ", ".join(
            f"{setting_name(k)}={v}" for k, v in self.initial_settings.items()))
        pre.pieces = [PREFACE + frame(SETTINGS, 0, 0, settings_payload(
            sorted(self.initial_settings.items())))]
        pre.iws = self.initial_settings.get(4)
        actions = [pre]
        hostile_share = r.choice([0.2, 0.5, 0.8])
        fatal_share = r.choice([0.02, 0.05, 0.15, 0.4])
        for _ in range(self.n_actions):
            if self.pending and r.random() < 0.35:
                actions.append(self.pending.pop(0))
                continue
            if r.random() < hostile_share:
                a = self.hostile(r.random() < fatal_share)
            else:
                a = self.valid()
            if a is None:
                continue
            if r.random() < 0.08 and (SPLIT_HEADER_BLOCKS or not open_header_block(a.pieces)):
                a.split = True
            if r.random() < 0.1:
                a.pause = r.choice([0.01, 0.05, 0.2, 0.5])
            if a.upload is not None:
                # Finish the other request bodies first: a client that waits
                # for window on one stream while it still owes another
                # stream's body can deadlock a server that works on one
                # stream at a time (prefork) until Timeout.
                actions.extend(self.pending)
                self.pending = []
            actions.append(a)
        actions.extend(self.pending)     # every request body gets its end
        self.pending = []
        if r.random() < 0.15:
            # Tear down with streams in flight: no drain, no invariant 1 check.
            half = r.random() < 0.3
            actions.append(Action("client shuts down its sending side" if half
                                  else "client closes the connection", close=True,
                                  half_close=half, pause=r.choice([0, 0, 0.01, 0.1, 0.3])))
        return actions

    # -- valid ------------------------------------------------------------------

    def valid(self) -> Optional[Action]:
        r = self.rng
        pick = r.random()
        if pick < 0.72:
            return self.request()
        if pick < 0.78:
            return Action("PING", [frame(PING, 0, 0, r.randbytes(8))])
        if pick < 0.83:
            items = [(r.choice([1, 3, 4, 5, 6]), 0) for _ in range(r.randint(0, 3))]
            items = [(k, {1: r.choice([0, 4096, 100000]), 3: r.choice([0, 10, 1000]),
                          4: r.choice([0, 1, 100, 65535, 1 << 20]),
                          5: r.choice([16384, 20000, (1 << 24) - 1]),
                          6: r.choice([0, 100, 8192, 1 << 20])}[k]) for k, _ in items]
            a = Action("SETTINGS " + ", ".join(f"{setting_name(k)}={v}" for k, v in items),
                       [frame(SETTINGS, 0, 0, settings_payload(items))])
            for k, v in items:
                if k == 4:
                    a.iws = v
            return a
        if pick < 0.88:
            sid = r.choice([0] + self.opened[-3:])
            inc = r.choice([1, 1000, 65535])
            return Action(f"WINDOW_UPDATE sid={sid} +{inc}",
                          [frame(WINDOW_UPDATE, 0, sid, u32(inc))], wu=[(sid, inc)])
        if pick < 0.92 and self.opened:
            sid = r.choice(self.opened)
            dep = r.choice([0] + [s for s in self.opened if s != sid])
            return Action(f"PRIORITY sid={sid} on {dep}",
                          [frame(PRIORITY, 0, sid, self.priority_field(dep, r.randint(0, 255),
                                                                    r.random() < 0.3))])
        if pick < 0.97 and self.opened:
            sid = r.choice(self.opened[-4:])
            # A client that resets a stream sends no more of its body.
            self.pending = [p for p in self.pending if p.body_of != sid]
            return Action(f"RST_STREAM(CANCEL) sid={sid} (client reset)",
                          [frame(RST_STREAM, 0, sid, u32(8))], client_rst=[sid])
        return Action("pause", pause=r.choice([0.05, 0.2, 0.5]))

    def pick_request(self) -> Tuple[str, str, Optional[bytes]]:
        r = self.rng
        choice = r.choices(range(13), weights=[6, 2, 4, 2, 4, 3, 3, 2, 1, 1, 1, 1, 2])[0]
        if choice == 12:      # larger than the windows: sent by FrameClient.send_data
            return "POST", r.choice(["/h2x/echo", "/h2x/echo?discard=1", "/h2x/echo?md5=1",
                                     "/cgi-bin/echo.py?sha=1"]), \
                b"UPLOAD" + r.randbytes(r.choice([70000, 200000, 600000]))
        if choice == 0:
            return "GET", r.choice(STATIC), None
        if choice == 1:
            return "HEAD", r.choice(STATIC), None
        if choice == 2:
            return "GET", f"/h2x/status?n={r.choice([0, 1, 100, 5000, 70000])}", None
        if choice == 3:
            return "GET", (f"/h2x/status?s={r.choice([204, 304, 404, 500])}"
                           f"&n={r.choice([0, 10])}"), None
        if choice == 4:
            return "POST", r.choice(["/h2x/echo", "/h2x/echo?discard=1&trailers=1"]), self.body()
        if choice == 5:
            return "GET", (f"/h2x/stream?count={r.randint(1, 4)}&size={r.choice([1, 100, 2000])}"
                           f"&ms={r.choice([0, 10, 100])}"), None
        if choice == 6:
            return "GET", "/cgi-bin/hello.py", None
        if choice == 7:
            return "POST", "/cgi-bin/echo.py", self.body()
        if choice == 8:
            return "GET", f"/h2x/trailers?n={r.choice([0, 50, 20000])}", None
        if choice == 9:
            return "GET", "/h2x/early-hints", None
        if choice == 10:
            return "GET", f"/h2x/delay?s={r.choice([0, 0.1, 0.3])}&n=10", None
        return "GET", "/server-status?auto", None

    def request(self) -> Optional[Action]:
        r = self.rng
        sid = self.fresh_sid()
        if sid is None:
            return None
        method, path, body = self.pick_request()
        upload = body is not None and body.startswith(b"UPLOAD")
        headers = self.pseudo(method, path) + self.extra_headers()
        if body is not None and r.random() < 0.5:
            headers.append(("content-length", str(len(body))))
        if body is not None and r.random() < 0.1:
            headers.append(("expect", "100-continue"))    # the body follows anyway
        trailers = body is not None and not upload and r.random() < 0.2
        block = self.enc.encode(headers)
        prio = None
        if r.random() < 0.15:
            dep = r.choice([0] + self.opened[-3:])
            prio = self.priority_field(dep, r.randint(0, 255), r.random() < 0.2)
        pad = r.choice([None] * 8 + [0, 7, 200])
        end_on_headers = body is None
        a = Action(f"request {method} {path} sid={sid}"
                   + (f" body={len(body)}" if body is not None else "")
                   + (" +trailers" if trailers else ""),
                   self.header_frames(sid, block, end_on_headers, priority=prio, pad=pad),
                   opens=sid, checkable=not self.client_goaway)
        self._opened(sid, end_on_headers)
        if end_on_headers or upload:
            a.ends.append(sid)
            a.upload = body
            if upload:
                self.client_open.remove(sid)
                self.ended.append(sid)
            return a
        # The body: DATA frames, maybe zero-length ones, maybe later.
        dpad = r.choice([None] * 6 + [0, 100])
        frames = self.data_frames(sid, body, end_stream=not trailers, pad=dpad)
        if r.random() < 0.1:
            frames[0:0] = [frame(DATA, 0, sid)] * r.choice([1, 10, 100])
        # Units that may go out in different actions: each DATA frame, and
        # the trailers' header block whole (nothing may come between its
        # HEADERS and CONTINUATION frames).
        units = [[f] for f in frames]
        if trailers:
            # Not with the connection's encoder: this block may go out after
            # blocks encoded later (HPACK state follows the sending order).
            units.append(self.header_frames(sid, hp_block([("x-trailer", "t1")]), True))
        parts: List[List[bytes]] = []
        while units:
            k = r.randint(1, len(units))
            parts.append([f for u in units[:k] for f in u])
            units = units[k:]
        if r.random() < 0.5:
            a.pieces += parts.pop(0)
        if not parts:
            a.ends.append(sid)
            self.client_open.remove(sid)
            self.ended.append(sid)
            return a
        for i, p in enumerate(parts):
            last = i == len(parts) - 1
            part = Action(f"  body of sid={sid} part {i + 1}/{len(parts)}", p, body_of=sid)
            if last:
                part.ends.append(sid)
            self.pending.append(part)
        # The generator's view: ended once its last part is queued.
        self.client_open.remove(sid)
        self.ended.append(sid)
        return a

    # -- hostile ----------------------------------------------------------------

    # Hostile generators take `fatal`: whether to pick one of their kinds
    # that the server answers with a connection error (GOAWAY), or one it
    # ignores or answers on the stream (RST_STREAM, 4xx), so the round goes
    # on.  The split follows what nghttp2 does (it makes some of RFC 9113's
    # stream errors connection errors: WINDOW_UPDATE 0, a stream depending
    # on itself, frames after the client's END_STREAM); it only steers the
    # mix, nothing is judged by it.
    FATAL = [(3, "h_random_frame"), (3, "h_bad_length"), (2, "h_length_mismatch"),
             (2, "h_oversized"), (3, "h_headers_sid"), (5, "h_hpack"), (4, "h_continuation"),
             (2, "h_priority"), (3, "h_window_update"), (3, "h_rst"), (4, "h_data"),
             (2, "h_padding"), (3, "h_settings"), (1, "h_flood"), (2, "h_goaway"),
             (1, "h_push_promise"), (2, "h_trailers_after_end")]
    BENIGN = [(4, "h_unknown_type"), (1, "h_headers_sid"), (1, "h_hpack"), (8, "h_bad_request"),
              (4, "h_priority"), (3, "h_window_update"), (3, "h_rst"), (1, "h_settings"),
              (4, "h_flood"), (3, "h_rapid_reset")]

    def hostile(self, fatal: bool) -> Optional[Action]:
        table = self.FATAL if fatal else self.BENIGN
        name = self.rng.choices([n for _, n in table], weights=[w for w, _ in table])[0]
        a = getattr(self, name)(fatal)
        if a is not None:
            a.hostile = True
        return a

    def pick(self, fatal: bool, fatal_kinds: List[str], benign_kinds: List[str]) -> str:
        return self.rng.choice(fatal_kinds if fatal else benign_kinds)

    def h_unknown_type(self, fatal: bool = True):
        r = self.rng
        t = r.choice([0xA, 0xB, 0xC, 0x10, 0x42, 0xFF, r.randint(0xA, 0xFF)])
        sid = self.some_sid()
        return Action(f"unknown frame type 0x{t:x}",
                      [frame(t, r.getrandbits(8), sid, r.randbytes(r.choice([0, 1, 8, 64, 1000])))])

    def h_random_frame(self, fatal: bool = True):
        r = self.rng
        t = r.randint(0, 9)
        sid = self.some_sid()
        payload = r.randbytes(r.choice([0, 1, 4, 5, 8, 9, 16, 64]))
        return Action(f"random {FRAME_TYPES[t]} frame", [frame(t, r.getrandbits(8), sid, payload)])

    def h_bad_length(self, fatal: bool = True):
        r = self.rng
        t, good = r.choice([(PING, 8), (WINDOW_UPDATE, 4), (RST_STREAM, 4), (PRIORITY, 5),
                            (SETTINGS, 6), (GOAWAY, 8)])
        n = r.choice([0, good - 1, good + 1, good * 3 + 1]) if t != GOAWAY else r.choice([0, 4, 7])
        sid = 0 if t in (PING, SETTINGS, GOAWAY) else r.choice(self.opened[-2:] or [1])
        if t == WINDOW_UPDATE and r.random() < 0.5:
            sid = 0
        return Action(f"{FRAME_TYPES[t]} with payload length {n}",
                      [frame(t, 0, sid, r.randbytes(n))])

    def h_length_mismatch(self, fatal: bool = True):
        r = self.rng
        inner = r.choice([frame(PING, 0, 0, b"12345678"),
                          frame(WINDOW_UPDATE, 0, 0, u32(100)),
                          frame(SETTINGS, 0, 0, settings_payload([(3, 100)]))])
        true_len = len(inner) - 9
        declared = r.choice([0, true_len - 1, true_len + 1, true_len + 9, 100])
        return Action(f"length field {declared} on a {true_len}-byte payload",
                      [inner[:0] + declared.to_bytes(3, "big") + inner[3:]], desync=True)

    def h_oversized(self, fatal: bool = True):
        r = self.rng
        kind = r.choice(["full", "full", "header-only"])
        t = r.choice([DATA, HEADERS, PING, 0x42, SETTINGS])
        sid = 0 if t in (PING, SETTINGS) else r.choice(self.opened[-2:] + [self.next_sid])
        if kind == "full":
            n = r.choice([MAX_FRAME + 1, MAX_FRAME + 100, 30000])
            return Action(f"oversized {FRAME_TYPES.get(t, hex(t))} ({n} bytes)",
                          [frame(t, 0, sid, r.randbytes(n))])
        n = r.choice([1 << 20, (1 << 24) - 1])
        return Action(f"oversized {FRAME_TYPES.get(t, hex(t))} length field {n}, 100 bytes sent",
                      [frame(t, 0, sid, r.randbytes(100), length=n)], desync=True)

    def h_headers_sid(self, fatal: bool = True):
        """A well-formed request on a stream id that is not a new odd one."""
        r = self.rng
        kind = self.pick(fatal, ["zero", "even", "reused", "lower", "huge"], ["reserved-bit"])
        block = hp_block(self.pseudo("GET", "/index.html"))
        a = Action(f"request HEADERS on {kind} stream id")
        if kind == "zero":
            sid = 0
        elif kind == "even":
            sid = 2 * r.randint(1, 20)
        elif kind == "reused":
            if not self.opened:
                return None
            sid = r.choice(self.opened)
        elif kind == "lower":
            if self.next_sid < 3:
                return None
            used = set(self.opened)
            lower = [s for s in (2 * r.randrange(min(self.next_sid, 1 << 20) // 2) + 1
                                 for _ in range(10)) if s not in used]
            if not lower:
                return None
            sid = lower[0]
        elif kind == "huge":
            if self.next_sid > MAX_SID:
                return None
            sid = MAX_SID
            self.next_sid = MAX_SID + 2
            a.opens, a.checkable, a.ends = sid, not self.client_goaway, [sid]
            self._opened(sid, True)
        else:
            sid = self.fresh_sid()
            if sid is None:
                return None
            a.opens, a.checkable, a.ends = sid, not self.client_goaway, [sid]
            self._opened(sid, True)
            sid |= 1 << 31          # the reserved bit: ignored by the receiver
        a.name += f" {sid & MAX_SID}"
        a.pieces = [frame(HEADERS, ES | EH, sid, block)]
        return a

    def _fresh_request_action(self, name: str, block_frames: Callable[[int], List[bytes]],
                              ends: bool = True) -> Optional[Action]:
        sid = self.fresh_sid()
        if sid is None:
            return None
        a = Action(f"{name} sid={sid}", block_frames(sid), opens=sid,
                   checkable=not self.client_goaway and ends, ends=[sid] if ends else [])
        self._opened(sid, ends)
        return a

    def h_hpack(self, fatal: bool = True):
        r = self.rng
        good = hp_block(self.pseudo("GET", "/hello.txt"))
        kind = self.pick(fatal, ["truncated", "random", "size-update-huge", "size-update-late",
                                 "index-0", "index-out-of-range", "huge-string", "int-overflow",
                                 "bad-huffman", "empty"], ["size-update-0"])
        if kind == "truncated":
            block = good[:r.randint(1, len(good) - 1)]
        elif kind == "random":
            block = r.randbytes(r.choice([1, 3, 17, 100]))
        elif kind == "size-update-huge":
            block = hp_int(r.choice([4097, 65537, 1 << 31, (1 << 32) + 5]), 5, 0x20) + good
        elif kind == "size-update-late":
            block = good + hp_int(0, 5, 0x20)
        elif kind == "index-0":
            block = b"\x80" + good
        elif kind == "index-out-of-range":
            block = good + hp_int(r.choice([62, 70, 200, 1 << 20]), 7, 0x80)
        elif kind == "huge-string":
            block = b"\x10" + hp_int(r.choice([1 << 20, 1 << 28]), 7) + b"xyz"
        elif kind == "int-overflow":
            block = b"\x10\x7f" + b"\xff" * 10 + b"\x01"
        elif kind == "bad-huffman":
            block = good + b"\x10" + bytes([0x80 | 1]) + b"a" + bytes([0x80 | 4]) + b"\xff" * 4
        elif kind == "size-update-0":
            # Valid HPACK: empties the server's table (the connection's
            # encoder state no longer matches; later requests may fail).
            block = hp_int(0, 5, 0x20) + hp_int(4096, 5, 0x20) + good
        else:
            block = b""
        return self._fresh_request_action(f"HPACK {kind}",
                                          lambda sid: [frame(HEADERS, ES | EH, sid, block)])

    def h_bad_request(self, fatal: bool = True):
        """Well-formed frames and HPACK, malformed HTTP (RFC 9113 §8)."""
        r = self.rng
        base = self.pseudo("GET", "/index.html")
        kinds = {
            "no :method": base[1:], "no :path": base[:3], "no :scheme": [base[0]] + base[2:],
            "duplicate :path": base + [(":path", "/x")], "unknown pseudo": base + [(":foo", "1")],
            "pseudo after regular": [("accept", "*/*")] + base,
            "uppercase name": base + [("X-Upper", "1")],
            "connection header": base + [r.choice([("connection", "keep-alive"),
                                                   ("transfer-encoding", "chunked"),
                                                   ("keep-alive", "5"), ("upgrade", "h2c"),
                                                   ("proxy-connection", "x")])],
            "te not trailers": base + [("te", "gzip")],
            "CR LF in value": base + [("x-bad", "a\r\nb")],
            "NUL in value": base + [("x-bad", "a\x00b")],
            "space in name": base + [("x bad", "1")],
            "colon in name": base + [("x:y", "1")],
            "empty name": base + [("", "v")],
            "empty :path": self.pseudo("GET", ""),
            "path without slash": self.pseudo("GET", "index.html"),
            "path *": self.pseudo("GET", "*"),
            "path traversal": self.pseudo("GET", "/../../../etc/passwd"),
            "bad method": self.pseudo(r.choice(["", "G ET", "get", "BREW"]), "/index.html"),
            "CONNECT": [(":method", "CONNECT"), (":authority", self.authority)],
            "CONNECT with path": self.pseudo("CONNECT", "/"),
            ":protocol": base + [(":protocol", "websocket")],
            "bad scheme": [base[0], (":scheme", "ftp")] + base[2:],
            "bad authority": base[:2] + [(":authority", r.choice(["", "a b", "u@h", "h" * 3000]))]
            + base[3:],
            "host mismatch": base + [("host", "other.example")],
            "bad content-length": base + [("content-length", r.choice(["abc", "-1", "1,2",
                                                                        "99999999999999999999"]))],
            "content-length without body": base + [("content-length", "10")],
            "whitespace in value": base + [("x-ws", " v ")],
            "long header": base + [("x-long", "l" * r.choice([9000, 30000, 70000]))],
            "many headers": base + [(f"x-h{i}", "v") for i in range(r.choice([100, 1000, 3000]))],
            "many cookies": base + [("cookie", f"c{i}=v") for i in range(r.choice([50, 2000]))],
        }
        kind = r.choice(sorted(kinds))
        block = hp_block(kinds[kind])

        short_body = kind == "content-length without body" and r.random() < 0.5

        def frames(sid):
            if short_body:      # content-length 10, 3 bytes of DATA with END_STREAM
                self.budget -= 3
                return self.header_frames(sid, block, False) + [frame(DATA, ES, sid, b"abc")]
            return self.header_frames(sid, block, True, max_frames=8)
        return self._fresh_request_action(f"bad request ({kind})", frames)

    def h_continuation(self, fatal: bool = True):
        r = self.rng
        kind = r.choice(["orphan", "interleaved", "other-stream", "flood", "flood-open",
                         "no-end-headers"])
        good = hp_block(self.pseudo("GET", "/1k.txt"))
        if kind == "orphan":
            sid = r.choice([0] + self.opened[-2:] + [self.next_sid])
            return Action(f"CONTINUATION without HEADERS sid={sid}",
                          [frame(CONTINUATION, EH, sid, good)])
        sid = self.fresh_sid()
        if sid is None:
            return None
        self._opened(sid, True)
        half = len(good) // 2
        head = frame(HEADERS, ES, sid, good[:half])
        if kind == "interleaved":
            other = r.choice([frame(PING, 0, 0, b"pingpong"), frame(DATA, 0, sid, b"x"),
                              frame(PRIORITY, 0, sid, self.priority_field(0, 16, False)),
                              frame(0x42, 0, 0, b"ext")])
            return Action(f"HEADERS sid={sid}, another frame, then CONTINUATION",
                          [head, other, frame(CONTINUATION, EH, sid, good[half:])],
                          opens=sid, checkable=not self.client_goaway, ends=[sid])
        if kind == "other-stream":
            return Action(f"HEADERS sid={sid}, CONTINUATION on sid={sid + 2}",
                          [head, frame(CONTINUATION, EH, sid + 2, good[half:])],
                          opens=sid, checkable=not self.client_goaway, ends=[sid])
        if kind in ("flood", "flood-open"):
            n = r.choice([9, 50, 500])
            pieces = [head] + [frame(CONTINUATION, 0, sid, b"")] * n
            if kind == "flood":
                pieces.append(frame(CONTINUATION, EH, sid, good[half:]))
            return Action(f"HEADERS sid={sid} + {n} empty CONTINUATIONs"
                          + (" + the rest" if kind == "flood" else ", no END_HEADERS"),
                          pieces, opens=sid, ends=[sid],
                          checkable=kind == "flood" and not self.client_goaway)
        return Action(f"HEADERS sid={sid} without END_HEADERS, block never finished",
                      [head], opens=sid, checkable=False, ends=[sid])

    def h_priority(self, fatal: bool = True):
        r = self.rng
        kind = self.pick(fatal, ["zero", "self", "self-headers"],
                         ["idle-flood", "bad-dep", "cycle"])
        if kind == "self":
            sid = r.choice(self.opened[-3:] + [self.next_sid + 40])
            return Action(f"PRIORITY sid={sid} depends on itself",
                          [frame(PRIORITY, 0, sid, self.priority_field(sid, 16, r.random() < .5))])
        if kind == "self-headers":
            block = self.enc.encode(self.pseudo("GET", "/hello.txt"))
            return self._fresh_request_action(
                "HEADERS depending on itself",
                lambda sid: self.header_frames(sid, block, True,
                                               priority=self.priority_field(sid, 16, False)))
        if kind == "zero":
            return Action("PRIORITY on stream 0",
                          [frame(PRIORITY, 0, 0, self.priority_field(1, 16, False))])
        if kind == "idle-flood":
            n = r.choice([10, 100, 1000])
            base = self.next_sid + 1000
            return Action(f"{n} PRIORITY frames on idle streams from {base}",
                          [frame(PRIORITY, 0, base + 2 * i,
                                 self.priority_field(base + 2 * i - 2 if i else 0,
                                                     r.randint(0, 255), False))
                           for i in range(n)])
        if kind == "bad-dep":
            sid = r.choice(self.opened[-3:] or [1])
            dep = r.choice([MAX_SID, 2, self.next_sid + 100])
            return Action(f"PRIORITY sid={sid} on {dep}",
                          [frame(PRIORITY, 0, sid, self.priority_field(dep, 255, True))])
        # A dependency cycle between two open streams.
        if len(self.opened) < 2:
            return None
        a, b = self.opened[-2:]
        return Action(f"PRIORITY cycle {a} <-> {b}",
                      [frame(PRIORITY, 0, a, self.priority_field(b, 1, True)),
                       frame(PRIORITY, 0, b, self.priority_field(a, 1, True))])

    def h_window_update(self, fatal: bool = True):
        r = self.rng
        kind = self.pick(fatal, ["zero-conn", "overflow-conn", "idle", "zero-stream"],
                         ["overflow-stream", "closed", "reserved-bit"])
        if kind == "zero-conn":
            return Action("WINDOW_UPDATE 0 on the connection",
                          [frame(WINDOW_UPDATE, 0, 0, u32(0))])
        if kind == "zero-stream":
            sid = r.choice(self.opened[-3:] or [1])
            return Action(f"WINDOW_UPDATE 0 on sid={sid}", [frame(WINDOW_UPDATE, 0, sid, u32(0))])
        if kind == "overflow-conn":
            return Action("WINDOW_UPDATE overflowing the connection window",
                          [frame(WINDOW_UPDATE, 0, 0, u32(MAX_WINDOW))] * 2)
        if kind == "overflow-stream":
            sid = r.choice(self.opened[-3:] or [1])
            return Action(f"WINDOW_UPDATE overflowing sid={sid}",
                          [frame(WINDOW_UPDATE, 0, sid, u32(MAX_WINDOW))])
        if kind == "idle":
            sid = self.next_sid + 2 * r.randint(0, 3)
            return Action(f"WINDOW_UPDATE on idle sid={sid}",
                          [frame(WINDOW_UPDATE, 0, sid, u32(100))])
        if kind == "closed":
            if not self.opened:
                return None
            sid = r.choice(self.opened)
            return Action(f"WINDOW_UPDATE on used sid={sid}",
                          [frame(WINDOW_UPDATE, 0, sid, u32(100))], wu=[(sid, 100)])
        return Action("WINDOW_UPDATE with the reserved bit",
                      [frame(WINDOW_UPDATE, 0, 0, u32((1 << 31) | 100))], wu=[(0, 100)])

    def h_rst(self, fatal: bool = True):
        r = self.rng
        kind = self.pick(fatal, ["idle", "zero", "length", "even"], ["used", "code"])
        if kind == "idle":
            sid = self.next_sid + 2 * r.randint(0, 3)
            return Action(f"RST_STREAM on idle sid={sid}", [frame(RST_STREAM, 0, sid, u32(8))])
        if kind == "zero":
            return Action("RST_STREAM on stream 0", [frame(RST_STREAM, 0, 0, u32(8))])
        if kind == "length":
            sid = r.choice(self.opened[-2:] or [1])
            return Action(f"RST_STREAM sid={sid} with 3-byte payload",
                          [frame(RST_STREAM, 0, sid, b"\0\0\x08")])
        if kind == "even":
            return Action("RST_STREAM on sid=2", [frame(RST_STREAM, 0, 2, u32(8))])
        if not self.opened:
            return None
        sid = r.choice(self.opened)
        code = r.choice([0, 1, 2, 7, 8, 0xD, 0xFFFFFFFF]) if kind == "code" else 8
        return Action(f"RST_STREAM({error_name(code)}) sid={sid} (client reset)",
                      [frame(RST_STREAM, 0, sid, u32(code))], client_rst=[sid])

    def h_data(self, fatal: bool = True):
        r = self.rng
        kind = r.choice(["idle", "zero", "even", "exceed-window", "ended", "ended-es"])
        if kind == "exceed-window":
            n = 5
            self.budget -= n * MAX_FRAME
            return Action(f"{n} DATA frames of {MAX_FRAME} beyond the connection window",
                          [frame(DATA, 0, r.choice(self.opened[-1:] or [1]), b"z" * MAX_FRAME)]
                          * n, flow_exempt=True)
        if kind in ("ended", "ended-es"):
            if not self.ended:
                return None
            sid = r.choice(self.ended)
            self.budget -= 10
            return Action(f"DATA on sid={sid} after the client's END_STREAM",
                          [frame(DATA, ES if kind == "ended-es" else 0, sid, b"0123456789")],
                          flow_exempt=True)
        sid = {"idle": self.next_sid + 2 * r.randint(0, 3), "zero": 0,
               "even": 2 * r.randint(1, 20)}[kind]
        self.budget -= 10
        return Action(f"DATA on {kind} sid={sid}", [frame(DATA, 0, sid, b"0123456789")],
                      flow_exempt=True)

    def h_padding(self, fatal: bool = True):
        r = self.rng
        kind = r.choice(["data-pad-too-long", "data-pad-no-byte", "headers-pad-too-long"])
        if kind == "headers-pad-too-long":
            block = hp_block(self.pseudo("GET", "/hello.txt"))
            return self._fresh_request_action(
                "HEADERS padding longer than the payload",
                lambda sid: [frame(HEADERS, ES | EH | PADDED, sid, bytes([255]) + block)])
        sid = r.choice(self.client_open + self.ended[-2:] or [1])
        if kind == "data-pad-too-long":
            pad = r.choice([10, 200, 255])
            return Action(f"DATA sid={sid} padding {pad} > payload",
                          [frame(DATA, PADDED, sid, bytes([pad]) + b"abc")])
        return Action(f"DATA sid={sid} PADDED without the pad length byte",
                      [frame(DATA, PADDED, sid, b"")])

    def h_settings(self, fatal: bool = True):
        r = self.rng
        kind = self.pick(fatal, ["push-2", "iws-too-big", "mfs-small", "mfs-big", "length",
                                 "stream", "ack-payload", "unsolicited-ack"],
                         ["unknown-id", "iws-flip"])
        if kind == "unknown-id":
            return Action("SETTINGS with unknown ids",
                          [frame(SETTINGS, 0, 0, settings_payload([(0x0, 1), (0x42, 7),
                                                                   (0xFFFF, 0xFFFFFFFF)]))])
        if kind == "iws-flip":
            # Valid, but it shrinks every open stream's window below zero.
            a = Action("SETTINGS INITIAL_WINDOW_SIZE 0 then 65535",
                       [frame(SETTINGS, 0, 0, settings_payload([(4, 0)])),
                        frame(SETTINGS, 0, 0, settings_payload([(4, 65535)]))])
            a.iws = 65535
            return a
        payload = {"push-2": settings_payload([(2, 2)]),
                   "iws-too-big": settings_payload([(4, 1 << 31)]),
                   "mfs-small": settings_payload([(5, 16383)]),
                   "mfs-big": settings_payload([(5, 1 << 24)]),
                   "length": settings_payload([(3, 100)])[:r.choice([1, 5, 7])],
                   "stream": settings_payload([(3, 100)]),
                   "ack-payload": settings_payload([(3, 100)]),
                   "unsolicited-ack": b""}[kind]
        sid = 1 if kind == "stream" else 0
        flags = ACK if kind in ("ack-payload", "unsolicited-ack") else 0
        return Action(f"SETTINGS {kind}", [frame(SETTINGS, flags, sid, payload)])

    def h_flood(self, fatal: bool = True):
        r = self.rng
        kind = self.pick(fatal, ["settings-ack"],
                         ["ping", "ping-ack", "settings", "empty-unknown", "wu-conn"])
        n = r.choice([20, 100, 500])
        f = {"ping": frame(PING, 0, 0, b"floodfld"),
             "ping-ack": frame(PING, ACK, 0, b"floodack"),
             "settings": frame(SETTINGS, 0, 0, settings_payload([(3, 100)])),
             "settings-ack": frame(SETTINGS, ACK, 0),
             "empty-unknown": frame(0x42, 0, 0),
             "wu-conn": frame(WINDOW_UPDATE, 0, 0, u32(1))}[kind]
        a = Action(f"{kind} flood x{n}", [f] * n)
        if kind == "wu-conn":
            a.wu = [(0, n)]
        return a

    def h_goaway(self, fatal: bool = True):
        r = self.rng
        kind = r.choice(["no-error", "error", "short", "stream"])
        if kind == "short":
            return Action("GOAWAY with 4-byte payload", [frame(GOAWAY, 0, 0, u32(0))])
        if kind == "stream":
            return Action("GOAWAY on stream 1", [frame(GOAWAY, 0, 1, u32(0) + u32(0))])
        code = 0 if kind == "no-error" else r.choice([1, 2, 0xB, 0x1234])
        last = r.choice([0, 2, MAX_SID])
        self.client_goaway = True
        return Action(f"client GOAWAY({error_name(code)}, last={last})",
                      [frame(GOAWAY, 0, 0, u32(last) + u32(code) + b"fuzz")],
                      client_goaway=True)

    def h_push_promise(self, fatal: bool = True):
        block = hp_block(self.pseudo("GET", "/pushed"))
        sid = self.rng.choice(self.opened[-1:] or [1])
        return Action(f"PUSH_PROMISE from the client on sid={sid}",
                      [frame(PUSH_PROMISE, EH, sid, u32(2) + block)])

    def h_rapid_reset(self, fatal: bool = True):
        r = self.rng
        n = r.choice([5, 30, 200])
        pieces, sids = [], []
        for _ in range(n):
            sid = self.fresh_sid()
            if sid is None:
                break
            block = self.enc.encode(self.pseudo("GET", r.choice(["/index.html",
                                                                 "/h2x/delay?s=0.2"])))
            pieces.append(frame(HEADERS, ES | EH, sid, block))
            pieces.append(frame(RST_STREAM, 0, sid, u32(8)))
            sids.append(sid)
            self._opened(sid, True)
        if not sids:
            return None
        return Action(f"rapid reset: {len(sids)} x (request + RST_STREAM) from sid={sids[0]}",
                      pieces, client_rst=sids)

    def h_trailers_after_end(self, fatal: bool = True):
        r = self.rng
        if not self.ended:
            return None
        sid = r.choice(self.ended)
        block = hp_block([("x-late", "1")])
        return Action(f"HEADERS on sid={sid} after the client's END_STREAM",
                      [frame(HEADERS, r.choice([ES | EH, EH]), sid, block)])


# -- running a round -------------------------------------------------------------

@dataclass
class RoundResult:
    seed: int
    index: int
    tls: bool
    actions: List[Action]
    sent: int = 0                           # actions sent (all if the connection stayed)
    problems: List[str] = field(default_factory=list)
    client: Optional[FrameClient] = None
    checked: List[int] = field(default_factory=list)
    note: str = ""
    duration: float = 0.0
    sent_at: List[float] = field(default_factory=list)   # when each action went out
    started_at: List[float] = field(default_factory=list)   # when each began to go out

    def last_sent_before(self, t: float) -> Optional[int]:
        """Index of the last action sent before time t."""
        idx = None
        for i, at in enumerate(self.sent_at):
            if at <= t:
                idx = i
        return idx

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def round_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"h2x-fuzz/{seed}/{index}")


def build_round(seed: int, index: int, authority_plain: str, authority_tls: str,
                max_actions: int = 60) -> Tuple[bool, List[Action]]:
    rng = round_rng(seed, index)
    tls = index % 2 == 1
    n = rng.randint(3, max_actions)
    gen = Generator(rng, tls, authority_tls if tls else authority_plain, n)
    return tls, gen.generate()


class RoundRunner:
    """Sends one round's actions on a fresh connection and judges it."""

    def __init__(self, host: str, http_port: int, https_port: int, seed: int, index: int,
                 stall_grace: float = 15.0, idle: float = 0.8):
        self.host = host
        self.seed = seed
        self.index = index
        self.stall_grace = stall_grace
        self.idle = idle
        auth_plain = f"{host}:{http_port}"
        auth_tls = f"localhost:{https_port}"
        self.tls, self.actions = build_round(seed, index, auth_plain, auth_tls)
        self.port = https_port if self.tls else http_port
        self.c: Optional[FrameClient] = None
        self.checked: Dict[int, str] = {}     # sid -> action name
        self.opened: Dict[int, Tuple[str, bool]] = {}   # sid -> (name, checkable)
        self.desynced = False
        self.abrupt = False

    # -- io -----------------------------------------------------------------

    def _readable(self, timeout: float) -> bool:
        c = self.c
        if c.sock is None:
            return False
        if isinstance(c.sock, ssl.SSLSocket) and c.sock.pending():
            return True
        try:
            r, _, _ = select.select([c.sock], [], [], max(0.0, timeout))
        except (OSError, ValueError):
            return False
        return bool(r)

    def pump(self, t: float = 0.0):
        """Read whatever arrives within t seconds (at least what is there now)."""
        c = self.c
        end = time.monotonic() + t
        hard = end + 2.0
        while not c.closed and c.sock is not None:
            now = time.monotonic()
            if now > hard:
                break
            if not self._readable(max(0.0, end - now)):
                if time.monotonic() >= end:
                    break
                continue
            c._read_once(0.2)

    def send_bytes(self, data: bytes, split: bool, rng: random.Random):
        """Send, reading meanwhile (so neither side blocks on a full buffer).

        What FrameClient sends on its own while reading (SETTINGS and PING
        ACKs, WINDOW_UPDATEs) waits until the action's bytes are out: it
        must not land inside one of its frames."""
        c = self.c
        held: List[bytes] = []
        c.send_raw = held.append
        try:
            self._send_bytes(data, split, rng)
        finally:
            del c.send_raw
        if held and not c.closed:
            c.send_raw(b"".join(held))

    def _send_bytes(self, data: bytes, split: bool, rng: random.Random):
        c = self.c
        view = memoryview(data)
        pos = 0
        step: Optional[int] = None
        deadline = time.monotonic() + 20.0
        while pos < len(view) and not c.closed and c.sock is not None:
            if time.monotonic() > deadline:
                c._mark_closed("send stalled for 20 s")
                return
            if self._readable(0):
                c._read_once(0.05)
                continue
            try:
                _, w, _ = select.select([], [c.sock], [], 0.2)
            except (OSError, ValueError):
                return
            if not w:
                continue
            # After a timed-out send, TLS wants the same buffer again.
            if step is None:
                step = rng.choice([1, 3, 9, 50]) if split else 8192
            try:
                c.sock.settimeout(1.0)
                n = c.sock.send(view[pos:pos + step])
            except (socket.timeout, ssl.SSLWantWriteError, ssl.SSLWantReadError):
                continue
            except OSError as e:
                c.errors.append(f"send: {e}")
                c._mark_closed(f"send failed: {e}")
                return
            finally:
                if c.sock is not None:
                    try:
                        c.sock.settimeout(c.timeout)
                    except OSError:
                        pass
            pos += n
            step = None
            if split:
                time.sleep(rng.choice([0, 0.001, 0.01]))

    # -- the round ------------------------------------------------------------

    def run(self) -> RoundResult:
        t0 = time.monotonic()
        res = RoundResult(self.seed, self.index, self.tls, self.actions)
        pre = self.actions[0]
        send_rng = random.Random(f"h2x-fuzz-send/{self.seed}/{self.index}")
        # The preface's SETTINGS are the generator's; FrameClient sends them.
        settings = {k: v for k, v in
                    ((int.from_bytes(p[0:2], "big"), int.from_bytes(p[2:6], "big"))
                     for p in _settings_items(pre.pieces[0][len(PREFACE) + 9:]))}
        self.c = c = FrameClient(self.host, self.port, tls=self.tls, settings=settings,
                                 timeout=10.0)
        res.client = c
        try:
            c.connect()
        except (OSError, ConnectionError) as e:
            res.problems.append(f"could not connect to port {self.port}: {e}")
            return res
        res.sent = 1
        res.started_at.append(t0)
        res.sent_at.append(time.monotonic())
        for a in self.actions[1:]:
            if c.closed:
                break
            if a.pause:
                self.pump(a.pause)
            res.started_at.append(time.monotonic())
            if a.close:
                self.abrupt = True
                if a.half_close:
                    c.shutdown_write()
                    c.run(lambda cl: cl.closed, timeout=5.0)
                c.close()
                res.sent += 1
                res.sent_at.append(time.monotonic())
                break
            if not a.flow_exempt:
                self.wait_window(a, res)
            self.send_bytes(b"".join(a.pieces), a.split, send_rng)
            if c.closed:
                break
            self._apply(a)
            if a.upload is not None and not self.upload(a, res):
                a_ends = []
            else:
                a_ends = a.ends
            res.sent += 1
            res.sent_at.append(time.monotonic())
            self._apply_ends(a, a_ends)
            self.pump(0)
        if not self.abrupt:
            self.drain()
        res.checked = [] if self.abrupt else sorted(self.checked)
        self.judge(res)
        c.close()
        res.duration = time.monotonic() - t0
        return res

    def _apply(self, a: Action):
        """Bookkeeping once an action went out whole."""
        c = self.c
        now = time.monotonic()
        if a.iws is not None:
            old = c.local_settings.get(4, 65535)
            c.local_settings[4] = a.iws
            for rec in c.streams.values():
                rec.recv_window += a.iws - old
        for sid, inc in a.wu:
            if sid == 0:
                c.conn_recv_window += inc
            else:
                c._stream(sid).recv_window += inc
        if a.opens is not None:
            rec = c._stream(a.opens)
            if rec.start_time is None:
                rec.start_time = now
            self.opened[a.opens] = (a.name, a.checkable and not self.desynced)
        if a.desync:
            self.desynced = True
        for sid, n in data_lengths(a.pieces).items():
            c.conn_send_window -= n
            if sid:
                c._stream(sid).send_window -= n

    def _apply_ends(self, a: Action, ends: List[int]):
        c = self.c
        for sid in ends:
            name, checkable = self.opened.get(sid, ("", False))
            if checkable and not self.desynced:
                self.checked[sid] = name
            c._stream(sid).local_closed = True
        for sid in a.client_rst:
            rec = c._stream(sid)
            rec.client_rst_code = 8
            if rec.ended_by is None:
                c._set_end(rec, "CLIENT_RST")
            self.checked.pop(sid, None)

    # -- flow control towards the server ------------------------------------------

    def _stream_waits(self, sid: int) -> bool:
        """True if the server should still open `sid`'s window for us."""
        rec = self.c.streams.get(sid)
        return rec is not None and rec.ended_by is None and \
            not any(f.type == "RST_STREAM" for f in rec.frames)

    def _stall(self, res: RoundResult, what: str, sid: Optional[int]):
        """The server granted no window for stall_grace seconds: a failure
        unless the connection is going away anyway."""
        c = self.c
        if c.closed or c.goaways or self.desynced:
            return
        if sid is not None and not self._stream_waits(sid):
            return
        rec = c.streams.get(sid) if sid else None
        res.problems.append(
            f"flow control: {what}: no window for {self.stall_grace:.0f} s (connection window "
            f"{c.conn_send_window}" + (f", stream {sid} window {rec.send_window}: "
                                        f"[{rec.frames_str()}]" if rec else "") + ")")

    def wait_window(self, a: Action, res: RoundResult):
        """Before DATA frames of a valid body: read until the windows take them."""
        need = data_lengths(a.pieces)
        if not need:
            return
        total = sum(need.values())
        c = self.c

        def blocked_on(cl) -> Optional[int]:
            if cl.closed or cl.goaways:
                return None
            if cl.conn_send_window < total:
                return 0
            for sid, n in need.items():
                if sid and self._stream_waits(sid) and cl.streams[sid].send_window < n:
                    return sid
            return None
        if blocked_on(c) is None:
            return
        c.run(until=lambda cl: blocked_on(cl) is None, timeout=self.stall_grace)
        sid = blocked_on(c)
        if sid is not None:
            self._stall(res, f"#{self.actions.index(a)} {a.name} ({total} bytes of DATA)",
                        sid or None)

    def upload(self, a: Action, res: RoundResult) -> bool:
        """Send a.upload on a.opens within the windows; False if not all went."""
        sid = a.opens
        ok = self.c.send_data(sid, a.upload, end_stream=True, respect_window=True,
                              timeout=self.stall_grace)
        if not ok:
            self._stall(res, f"upload of {len(a.upload)} bytes on stream {sid}", sid)
        return ok

    def open_checked(self) -> List[int]:
        return [sid for sid in self.checked if self.c.streams[sid].ended_by is None
                and not self._covered_by_goaway(sid)]

    def _covered_by_goaway(self, sid: int) -> bool:
        for g in self.c.goaways:
            if g.error_code != 0 or sid > g.last_stream_id:
                return True
        return False

    def _unstick(self, sids: List[int]):
        """Open the windows of streams a response may be blocked on."""
        c = self.c
        try:
            if c.conn_recv_window < 1 << 20:
                c.window_update(0, min(MAX_WINDOW - max(c.conn_recv_window, 0), 1 << 24))
            for sid in sids:
                rec = c.streams[sid]
                if rec.recv_window < 1 << 20:
                    c.window_update(sid, min(MAX_WINDOW - max(rec.recv_window, 0), 1 << 24))
        except ConnectionError:
            pass

    def drain(self):
        """Read until the server closed, or is quiet with nothing open, or
        stayed quiet for stall_grace with checked streams still open."""
        c = self.c
        start = time.monotonic()
        seen = len(c.frames)
        last_rx = start
        unstuck_at = 0.0
        while not c.closed:
            self.pump(0.2)
            now = time.monotonic()
            if len(c.frames) != seen:
                seen = len(c.frames)
                last_rx = now
            quiet = now - last_rx
            still = self.open_checked()
            if not still and quiet >= self.idle:
                return
            if still and quiet >= 1.0 and now - unstuck_at >= 2.0:
                self._unstick(still)
                unstuck_at = now
            if still and quiet >= self.stall_grace:
                return
            if now - start > self.stall_grace + 60:
                return

    # -- judging ----------------------------------------------------------------

    def judge(self, res: RoundResult):
        c = self.c
        now = time.monotonic()
        last_rx = c.frames[-1].t if c.frames else None
        if c.closed:
            state = f"connection {c.close_reason}"
        else:
            quiet = now - last_rx if last_rx else now
            state = f"connection open, server quiet for {quiet:.1f} s"
        if c.goaways:
            state += ", GOAWAY " + ", ".join(
                f"{g.error_name}(last={g.last_stream_id}"
                + (f", {g.debug_data[:80].decode('latin-1')!r}" if g.debug_data else "") + ")"
                for g in c.goaways)
            g = c.goaways[0]
            i = res.last_sent_before(g.t)
            if g.error_code != 0 and i is not None:
                state += f" (last action sent before it: #{i} {self.actions[i].name})"
        else:
            state += ", no GOAWAY"
        res.note = state
        # A connection error needs a reason: a hostile frame sent before it.
        g = next((g for g in c.goaways if g.error_code != 0), None)
        if g is not None:
            started = [a for a, t in zip(self.actions, res.started_at) if t <= g.t]
            if not any(a.hostile for a in started):
                res.problems.append(
                    f"connection error GOAWAY({g.error_name}, last={g.last_stream_id}"
                    + (f", {g.debug_data[:80]!r}" if g.debug_data else "")
                    + f") in answer to valid frames only (actions #0..#{len(started) - 1})")
        for sid in ([] if self.abrupt else self.open_checked()):
            rec = c.streams[sid]
            res.problems.append(
                f"invariant 1: stream {sid} ({self.checked[sid]}) got neither END_STREAM "
                f"nor RST_STREAM ({state}): [{rec.frames_str()}]")
        # The server's frames must parse, decode and stop at a stream's end.
        for e in c.errors:
            if e.startswith("malformed") or e.startswith("HPACK decode") \
                    or e.startswith("unexpected CONTINUATION"):
                res.problems.append(f"server sent a bad frame: {e}")
        for sid, rec in sorted(c.streams.items()):
            ended = None
            for f in rec.frames:
                # After its RST_STREAM only another RST_STREAM (answering a
                # frame on the closed stream); after END_STREAM no HEADERS,
                # DATA or CONTINUATION (RFC 9113 §5.1).
                if ended is not None and ((ended == "RST_STREAM" and f.type != "RST_STREAM")
                                          or f.type in ("HEADERS", "DATA", "CONTINUATION")):
                    res.problems.append(f"stream {sid}: server sent {f} after its own "
                                        f"{ended}: [{rec.frames_str()}]")
                    break
                if f.type == "RST_STREAM":
                    ended = "RST_STREAM"
                elif f.type in ("HEADERS", "DATA") and f.end_stream:
                    ended = "END_STREAM"


def data_lengths(pieces: List[bytes]) -> Dict[int, int]:
    """Flow-controlled bytes per stream in the well-formed DATA frames of
    `pieces` (length field == payload, one frame per piece)."""
    out: Dict[int, int] = {}
    for p in pieces:
        if len(p) >= 9 and p[3] == DATA and int.from_bytes(p[0:3], "big") == len(p) - 9:
            sid = int.from_bytes(p[5:9], "big") & MAX_SID
            out[sid] = out.get(sid, 0) + len(p) - 9
    return out


def _settings_items(payload: bytes):
    for i in range(0, len(payload) - len(payload) % 6, 6):
        yield payload[i:i + 6]


# -- the server-level checks and the loop ------------------------------------------

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|"
                       r"runtime error:|ThreadSanitizer")


def scan_log(server) -> Tuple[List[str], List[str]]:
    """(crash/sanitizer lines, all new lines) since the last scan; consumes."""
    from . import logscan
    lines = server.log._new_lines(consume=True)
    bad = [l for l in lines if logscan.classify(l) == "crash" or SANITIZER.search(l)]
    reports = getattr(server.log, "_sanitizer_reports", None)   # H2X_SANITIZE harness
    if reports is not None:
        bad += reports(consume=True)
    return bad, lines


def fresh_client_ok(server, tls: bool, timeout: float = 5.0) -> Optional[str]:
    """None if a well-behaved client gets GET /index.html within `timeout`.

    A request the server refused (above a GOAWAY's last_stream_id, as in a
    graceful restart, or RST_STREAM(REFUSED_STREAM)) is retried on a new
    connection, as a client would, up to twice."""
    for _ in range(2):
        problem, refused = _fresh_get(server, tls, timeout)
        if not refused:
            return problem
    return _fresh_get(server, tls, timeout)[0]


def _fresh_get(server, tls: bool, timeout: float) -> Tuple[Optional[str], bool]:
    t0 = time.monotonic()
    c = FrameClient.for_httpd(server, tls=tls, timeout=timeout)
    try:
        c.connect()
        sid = c.request("GET", "/index.html")
        ok = c.wait_stream_end(sid, timeout=max(0.1, timeout - (time.monotonic() - t0)))
        rec = c.stream(sid)
        refused = rec.ended_by == "GOAWAY" or rec.rst_code == 7     # REFUSED_STREAM
        if not ok or rec.ended_by != "END_STREAM" or rec.status != 200:
            goaway = f", GOAWAY {c.goaway.error_name}(last={c.goaway.last_stream_id})" \
                if c.goaway else ""
            return (f"fresh {'h2' if tls else 'h2c'} client: GET /index.html not answered "
                    f"within {timeout:.0f} s: {rec!r}, connection "
                    f"{c.close_reason or 'open'}{goaway}"), refused
        return None, False
    except (OSError, ConnectionError) as e:
        return f"fresh {'h2' if tls else 'h2c'} client: {type(e).__name__}: {e}", False
    finally:
        c.close()


def format_round(res: RoundResult, module: str = "h2x", max_server_frames: int = 60) -> str:
    out = [f"seed={res.seed} round={res.index} ({'h2 over TLS' if res.tls else 'h2c'}, "
           f"module {module}), {res.sent}/{len(res.actions)} actions sent; {res.note}",
           f"replay: scripts/fuzz --seed {res.seed} --round {res.index}"
           + (f" --module {module}" if module != "h2x" else ""),
           "frames sent:"]
    for i, a in enumerate(res.actions):
        mark = "" if i < res.sent else "  (not sent)"
        extra = []
        if a.pause:
            extra.append(f"pause {a.pause}s")
        if a.split:
            extra.append("sent in small pieces")
        out.append(f"  #{i} {a.name}{mark}" + (f" [{', '.join(extra)}]" if extra else ""))
        for line in a.lines():
            out.append(f"      {line}")
        if a.upload is not None:
            out.append(f"      then DATA frames with {len(a.upload)} bytes ({a.upload[:16].hex()}...), "
                       f"END_STREAM on the last, as the windows allow")
    c = res.client
    if c is not None:
        out.append(f"server sent {len(c.frames)} frames; per stream:")
        for sid, rec in sorted(c.streams.items()):
            if rec.frames:
                out.append(f"  {sid}: ended_by={rec.ended_by} [{rec.frames_str()}]"[:400])
        conn = [str(f) for f in c.frames if f.stream_id == 0]
        if conn:
            out.append("  connection: " + " ".join(conn[-max_server_frames:]))
    return "\n".join(out)


@dataclass
class Stats:
    rounds: int = 0
    actions: int = 0
    goaways: Dict[str, int] = field(default_factory=dict)
    resets: Dict[str, int] = field(default_factory=dict)
    checked: int = 0
    restarts: int = 0

    def add(self, res: RoundResult):
        self.rounds += 1
        self.actions += res.sent
        self.checked += len(res.checked)
        c = res.client
        if c is None:
            return
        for g in c.goaways:
            self.goaways[g.error_name] = self.goaways.get(g.error_name, 0) + 1
        for rec in c.streams.values():
            if rec.rst_code is not None:
                self.resets[rec.rst_name] = self.resets.get(rec.rst_name, 0) + 1

    def __str__(self):
        return (f"{self.rounds} rounds, {self.actions} actions, {self.checked} streams checked; "
                f"server GOAWAYs {dict(sorted(self.goaways.items()))}; "
                f"RST_STREAMs {dict(sorted(self.resets.items()))}"
                + (f"; {self.restarts} graceful restarts" if self.restarts else ""))


def fuzz(server, seed: int, seconds: float = 120.0, start_round: int = 0,
         only_round: Optional[int] = None, repeat: int = 1, max_rounds: Optional[int] = None,
         stall_grace: float = 15.0, out=print, verbose: bool = False,
         module: str = "h2x", graceful: float = 0.0) -> Tuple[Optional[str], Stats]:
    """Run rounds against a started Httpd until `seconds` passed (or only
    `only_round`, `repeat` times).  Returns (failure report or None, stats).

    graceful > 0: a graceful restart (`apache2 -k graceful`) every that many
    seconds, in the background, while rounds run (DESIGN.md invariant 8:
    the GOAWAY(NO_ERROR) it causes names the last stream the server accepted,
    and each of those streams must still end)."""
    stats = Stats()
    t_end = time.monotonic() + seconds
    scan_log(server)
    prev: Optional[RoundResult] = None
    restarts = GracefulRestarts(server, graceful) if graceful > 0 else None
    rounds = [only_round] * repeat if only_round is not None else None
    i = 0
    while True:
        if rounds is not None:
            if i >= len(rounds):
                break
            index = rounds[i]
        else:
            if time.monotonic() >= t_end or (max_rounds is not None and i >= max_rounds):
                break
            index = start_round + i
        i += 1
        runner = RoundRunner("127.0.0.1", server.http_port, server.https_port, seed, index,
                             stall_grace=stall_grace)
        t_round = time.monotonic()
        res = runner.run()
        stats.add(res)
        if restarts is not None:
            during = restarts.since(t_round)
            if during:
                res.note += f"; graceful restart during the round ({', '.join(during)})"
        c = res.client
        if c is not None and c.closed and not c.goaways:
            time.sleep(1.2)     # a dead child is logged by the parent's next check
        problems = list(res.problems)
        crash, lines = scan_log(server)
        if crash:
            problems.append("crash or sanitizer report in the error log (this round, or the "
                            "previous one):\n    " + "\n    ".join(crash[:30]))
        if not server.running:
            problems.append(f"httpd parent (pid file {server.pid_path}) is gone")
        else:
            bad = fresh_client_ok(server, tls=index % 2 == 0)
            if bad:
                problems.append(bad)
        if restarts is not None and restarts.errors:
            problems.append("graceful restart failed: " + restarts.errors[0])
        if verbose:
            out(f"round {index}: {'h2' if res.tls else 'h2c'} {res.sent} actions, "
                f"{len(res.checked)} checked, {res.duration:.1f}s; {res.note}")
        elif stats.rounds % 20 == 0:
            out(f"fuzz: {stats}")
        if problems:
            report = ["FUZZ FAILURE", *("  - " + p for p in problems), "",
                      format_round(res, module)]
            if crash and prev is not None:
                report += ["", "previous round:", format_round(prev, module)]
            report += ["", "error log lines of the round (last 40):"]
            report += ["  " + l for l in lines[-40:]]
            if restarts is not None:
                restarts.stop()
            return "\n".join(report), stats
        prev = res
    if restarts is not None:
        restarts.stop()
        stats.restarts = len(restarts.done)
    return None, stats


class GracefulRestarts:
    """A thread that restarts httpd gracefully every `every` seconds."""

    def __init__(self, server, every: float):
        self.server = server
        self.every = every
        self.done: List[Tuple[float, float]] = []   # (start, end) of each restart
        self.errors: List[str] = []
        self.current: Optional[float] = None       # start of a restart in progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="graceful", daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.wait(self.every):
            t0 = self.current = time.monotonic()
            try:
                self.server.graceful(timeout=60)
            except Exception as e:     # noqa: BLE001 - reported by the fuzz loop
                self.errors.append(f"{type(e).__name__}: {e}")
                return
            self.done.append((t0, time.monotonic()))
            self.current = None

    def since(self, t: float) -> List[str]:
        """Restarts that ended after t or are running, as start times
        relative to t ('+1.2s')."""
        out = [f"{a - t:+.1f}s" for a, b in list(self.done) if b >= t]
        current = self.current
        if current is not None:
            out.append(f"{current - t:+.1f}s, still running")
        return out

    def stop(self):
        self._stop.set()
        self._thread.join(timeout=90)


# -- command line -------------------------------------------------------------------

def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="h2x.fuzz", description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0)
    p.add_argument("--seed", type=int, default=None, help="default: from the clock")
    p.add_argument("--round", type=int, default=None, help="replay only this round")
    p.add_argument("--repeat", type=int, default=1, help="with --round: run it N times")
    p.add_argument("--start-round", type=int, default=0)
    p.add_argument("--rounds", type=int, default=None, help="stop after N rounds")
    p.add_argument("--module", choices=("h2x", "http2"), default=None)
    p.add_argument("--mpm", choices=("event", "worker", "prefork"), default="event")
    p.add_argument("--stall-grace", type=float, default=15.0)
    p.add_argument("--graceful", type=float, default=0.0, metavar="S",
                   help="graceful restart every S seconds while fuzzing (default: never)")
    p.add_argument("--print-round", action="store_true",
                   help="with --round: print its frames and exit (no server)")
    p.add_argument("--split-header-blocks", action="store_true",
                   help="send multi-frame header blocks in small pieces too (nghttp2 #2817)")
    p.add_argument("--verbose", "-v", action="store_true")
    args = p.parse_args(argv)

    seed = args.seed if args.seed is not None else int(time.time() * 1000) % 1_000_000_007
    if args.split_header_blocks:
        global SPLIT_HEADER_BLOCKS
        SPLIT_HEADER_BLOCKS = True
    if args.print_round:
        if args.round is None:
            p.error("--print-round needs --round")
        tls, actions = build_round(seed, args.round, "127.0.0.1:PORT", "localhost:PORT")
        res = RoundResult(seed, args.round, tls, actions, sent=len(actions))
        print(format_round(res, args.module or "h2x"))
        return 0

    test_dir = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if test_dir not in sys.path:
        sys.path.insert(0, test_dir)
    from core_helpers import TEST_HANDLER_CONF
    from .env import Env
    from .httpd import Httpd

    env = Env(module=args.module)
    if not env.has_test_module:
        print("fuzz: warning: test/mod_h2x_test is not built; /h2x/* requests get 404",
              file=sys.stderr)
    server = Httpd(env, name="fuzz", mpm=args.mpm)
    failure = None
    try:
        server.write_config(extra_global=TEST_HANDLER_CONF)
        server.start()
        print(f"fuzz: module {env.module} ({env.module_so()}), mpm {args.mpm}, seed {seed}, "
              + (f"round {args.round} x{args.repeat}" if args.round is not None
                 else f"{args.seconds:.0f} s"), flush=True)
        print(f"fuzz: httpd on 127.0.0.1:{server.http_port} (h2c) and :{server.https_port} "
              f"(h2), server root {server.root}", flush=True)
        failure, stats = fuzz(server, seed, seconds=args.seconds, start_round=args.start_round,
                              only_round=args.round, repeat=args.repeat,
                              max_rounds=args.rounds, stall_grace=args.stall_grace,
                              out=lambda s: print(s, flush=True), verbose=args.verbose,
                              module=env.module, graceful=args.graceful)
        print(f"fuzz: {stats}", flush=True)
    except KeyboardInterrupt:
        print("fuzz: interrupted", file=sys.stderr)
        return 130
    finally:
        try:
            server.stop()
        except Exception as e:     # noqa: BLE001 - report, still clean up
            print(f"fuzz: stopping httpd: {e}", file=sys.stderr)
        if failure is None:
            env.cleanup()
    if failure:
        print(failure, flush=True)
        print(f"fuzz: server root kept: {server.root}", flush=True)
        return 1
    print("fuzz: no failure", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
