"""The raw-frame HTTP/2 client: sees every frame, can send any frame.

FrameClient speaks HTTP/2 over plain TCP (h2c with prior knowledge) or TLS
(ALPN h2, no certificate check).  It is built from the parts of python3-h2
(`hpack` for header compression, `hyperframe` for frame encoding and
parsing, `h2.errors` / `h2.settings` for code names) rather than on
h2.connection.H2Connection, because a test client must be able to do what
H2Connection refuses to do: send invalid header blocks, frames on closed or
even-numbered streams, DATA beyond END_STREAM, or never ACK a SETTINGS,
while keeping one HPACK encoder state for everything it sends.

Everything the server sends is recorded in arrival order with a
time.monotonic() timestamp, per stream (StreamRecord.frames) and per
connection (FrameClient.frames).  StreamRecord.ended_by says how a stream
ended; FrameClient.unended() lists streams that did not, which the
`frame_client` fixture turns into a test failure (DESIGN invariant 1).

Example:

    c = FrameClient("127.0.0.1", port)
    c.connect()
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid)
    assert c.shape(sid) == "HEADERS DATA[ES]"
    assert c.stream(sid).status == 200
"""

import socket
import ssl
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple, Union

import hpack
from h2.errors import ErrorCodes
from h2.settings import SettingCodes
from hyperframe.frame import (ContinuationFrame, DataFrame, Frame as HFrame, GoAwayFrame,
                              HeadersFrame, PingFrame, PriorityFrame, RstStreamFrame,
                              SettingsFrame, WindowUpdateFrame)

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DEFAULT_WINDOW = 65535
DEFAULT_MAX_FRAME = 16384

FRAME_TYPES = {0x0: "DATA", 0x1: "HEADERS", 0x2: "PRIORITY", 0x3: "RST_STREAM",
               0x4: "SETTINGS", 0x5: "PUSH_PROMISE", 0x6: "PING", 0x7: "GOAWAY",
               0x8: "WINDOW_UPDATE", 0x9: "CONTINUATION", 0xa: "ALTSVC", 0xc: "ORIGIN"}

# Short forms used by FrameClient.shape().
_SHAPE_NAMES = {"RST_STREAM": "RST", "PUSH_PROMISE": "PUSH"}

HeaderList = Sequence[Tuple[Union[str, bytes], Union[str, bytes]]]


def error_name(code: Optional[int]) -> Optional[str]:
    """'INTERNAL_ERROR' for 2, '0x1234' for unknown codes, None for None."""
    if code is None:
        return None
    try:
        return ErrorCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def setting_name(code: int) -> str:
    try:
        return SettingCodes(code).name
    except ValueError:
        return f"0x{code:x}"


def _text(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


@dataclass
class Frame:
    """One frame as it arrived (or was sent), with decoded details."""
    type: str                          # "HEADERS", "DATA", "RST_STREAM", ...
    flags: frozenset                   # e.g. {"END_STREAM", "END_HEADERS"}
    length: int                        # payload length from the frame header
    t: float                           # time.monotonic() when parsed
    stream_id: int = 0
    raw_flags: int = 0
    error_code: Optional[int] = None   # RST_STREAM, GOAWAY
    data: bytes = b""                  # DATA payload (no padding), GOAWAY debug data
    headers: Optional[List[Tuple[str, str]]] = None   # decoded block (on the END_HEADERS frame)
    settings: Optional[Dict[int, int]] = None
    increment: Optional[int] = None    # WINDOW_UPDATE
    last_stream_id: Optional[int] = None  # GOAWAY
    promised_stream_id: Optional[int] = None  # PUSH_PROMISE
    malformed: Optional[str] = None    # why hyperframe could not parse the body

    @property
    def end_stream(self) -> bool:
        return "END_STREAM" in self.flags

    @property
    def error_name(self) -> Optional[str]:
        return error_name(self.error_code)

    def __str__(self):
        s = self.type
        if self.type in ("DATA", "HEADERS", "CONTINUATION", "PUSH_PROMISE"):
            s += f"({self.length})"
        if self.increment is not None:
            s += f"(+{self.increment})"
        if self.last_stream_id is not None:
            s += f"(last={self.last_stream_id})"
        if self.error_code is not None:
            s += f"({self.error_name})"
        if self.flags:
            s += "[" + ",".join(sorted(self.flags)) + "]"
        return s


@dataclass
class StreamRecord:
    """Everything the server sent on one stream, and how the stream ended."""
    sid: int
    frames: List[Frame] = field(default_factory=list)
    headers: List[List[Tuple[str, str]]] = field(default_factory=list)  # every header block
    data: bytearray = field(default_factory=bytearray)
    ended_by: Optional[str] = None     # "END_STREAM", "RST_STREAM", "CLIENT_RST", "GOAWAY"
    rst_code: Optional[int] = None     # code of the RST_STREAM the server sent
    client_rst_code: Optional[int] = None
    start_time: Optional[float] = None  # when the client sent the request HEADERS
    end_time: Optional[float] = None    # when ended_by was set
    local_closed: bool = False          # the client sent END_STREAM
    pushed: bool = False                # opened by the server's PUSH_PROMISE
    expect_open: bool = False           # the test leaves it open on purpose
    send_window: int = DEFAULT_WINDOW   # what the client may still send
    recv_window: int = DEFAULT_WINDOW   # what the server may still send

    @property
    def body(self) -> bytes:
        return bytes(self.data)

    @property
    def ended(self) -> bool:
        return self.ended_by is not None

    @property
    def rst_name(self) -> Optional[str]:
        return error_name(self.rst_code)

    def _final_index(self) -> Optional[int]:
        for i, block in enumerate(self.headers):
            status = dict(block).get(":status")
            if status is not None and not status.startswith("1"):
                return i
        return None

    @property
    def status(self) -> Optional[int]:
        """The final (non-1xx) :status, or None."""
        i = self._final_index()
        return int(dict(self.headers[i])[":status"]) if i is not None else None

    @property
    def interim(self) -> List[List[Tuple[str, str]]]:
        """The 1xx header blocks before the final response."""
        i = self._final_index()
        return self.headers[:i] if i is not None else list(self.headers)

    @property
    def response_headers(self) -> Dict[str, List[str]]:
        """The final response's header fields (pseudo-headers included)."""
        i = self._final_index()
        out: Dict[str, List[str]] = {}
        for name, value in (self.headers[i] if i is not None else []):
            out.setdefault(name, []).append(value)
        return out

    def header(self, name: str) -> Optional[str]:
        values = self.response_headers.get(name)
        return values[0] if values else None

    @property
    def trailers(self) -> Optional[List[Tuple[str, str]]]:
        """The header block after the final response, if any."""
        i = self._final_index()
        if i is not None and len(self.headers) > i + 1:
            return self.headers[i + 1]
        return None

    def frames_str(self) -> str:
        """All frames, e.g. 'HEADERS(71)[END_HEADERS] DATA(0)[END_STREAM]'."""
        return " ".join(str(f) for f in self.frames)

    def __repr__(self):
        return (f"StreamRecord(sid={self.sid}, status={self.status}, ended_by={self.ended_by}, "
                f"rst={self.rst_name}, body={len(self.data)}B, frames=[{self.frames_str()}])")


@dataclass
class GoAway:
    last_stream_id: int
    error_code: int
    debug_data: bytes
    t: float

    @property
    def error_name(self) -> Optional[str]:
        return error_name(self.error_code)


class FrameClient:
    """A raw HTTP/2 client connection that records every frame it receives.

    Reading happens only inside run() and the wait_* helpers; while reading
    the client answers SETTINGS with ACK (auto_ack_settings), PING with ACK
    (auto_ack_ping) and DATA with WINDOW_UPDATEs for the stream and the
    connection (auto_window_update).  Sending never waits for the server,
    except send_data(respect_window=True), which reads until the window
    allows the next frame.
    """

    def __init__(self, host: str, port: int, tls: bool = False, sni: str = "localhost",
                 authority: Optional[str] = None, settings: Optional[Dict[int, int]] = None,
                 auto_ack_settings: bool = True, auto_ack_ping: bool = True,
                 auto_window_update: bool = True, window: Optional[int] = None,
                 timeout: float = 10.0):
        """settings: extra SETTINGS (SettingCodes or int keys) for the preface;
        ENABLE_PUSH=0 is sent unless given.  window: the receive window for
        every stream (SETTINGS_INITIAL_WINDOW_SIZE) and, if larger than the
        default, for the connection too (via WINDOW_UPDATE on stream 0)."""
        self.host = host
        self.port = port
        self.tls = tls
        self.sni = sni
        self.scheme = "https" if tls else "http"
        self.authority = authority or (f"{sni}:{port}" if tls else f"{host}:{port}")
        self.local_settings: Dict[int, int] = {int(SettingCodes.ENABLE_PUSH): 0}
        if window is not None:
            self.local_settings[int(SettingCodes.INITIAL_WINDOW_SIZE)] = window
        for k, v in (settings or {}).items():
            self.local_settings[int(k)] = v
        self.window = window
        self.auto_ack_settings = auto_ack_settings
        self.auto_ack_ping = auto_ack_ping
        self.auto_window_update = auto_window_update
        self.timeout = timeout
        self.end_grace = 5.0     # fixture teardown: how long to wait for open streams

        self.sock: Optional[socket.socket] = None
        self.alpn: Optional[str] = None
        self._encoder = hpack.Encoder()
        self._decoder = hpack.Decoder()
        self._decoder.max_header_list_size = 1 << 24
        self._decoder.max_allowed_table_size = 1 << 16
        self._inbuf = bytearray()
        self._header_block: Optional[Tuple[int, bytearray, Frame]] = None
        self._next_sid = 1

        # Recorded from the server.
        self.frames: List[Frame] = []          # every frame received, in order
        self.sent: List[Frame] = []            # every frame sent (as parsed back)
        self.streams: Dict[int, StreamRecord] = {}
        self.settings: List[Dict[int, int]] = []   # each non-ACK SETTINGS received
        self.settings_acks = 0                 # SETTINGS ACKs received
        self.pings: List[Frame] = []           # PINGs received (ACK or not)
        self.goaways: List[GoAway] = []
        self.closed = False                    # the connection is gone
        self.close_reason: Optional[str] = None
        self.close_time: Optional[float] = None
        self.errors: List[str] = []            # parse/decode/send problems

        # Flow control towards the server.
        self.peer_settings: Dict[int, int] = {}
        self.conn_send_window = DEFAULT_WINDOW
        self.conn_recv_window = DEFAULT_WINDOW

    # -- connection -------------------------------------------------------

    @classmethod
    def for_httpd(cls, httpd, tls: bool = False, **kw) -> "FrameClient":
        """A client for an h2x.httpd.Httpd: its https_port with TLS, else http_port."""
        port = httpd.https_port if tls else httpd.http_port
        return cls("127.0.0.1", port, tls=tls, **kw)

    def connect(self, preface: bool = True) -> "FrameClient":
        """Open the connection; with preface, send the preface and SETTINGS.

        With TLS the server must select ALPN h2, else ConnectionError.
        """
        raw = socket.create_connection((self.host, self.port), timeout=self.timeout)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            # Offer http/1.1 too: some servers answer with it when h2 is off,
            # which is then reported below instead of a TLS alert.
            ctx.set_alpn_protocols(["h2", "http/1.1"])
            raw = ctx.wrap_socket(raw, server_hostname=self.sni)
            self.alpn = raw.selected_alpn_protocol()
            if self.alpn != "h2":
                raw.close()
                raise ConnectionError(f"server selected ALPN {self.alpn!r}, not 'h2'")
        self.sock = raw
        if preface:
            self.send_preface()
        return self

    def send_preface(self):
        """The client connection preface plus our SETTINGS (and window bump)."""
        self.send_raw(PREFACE)
        self.send_settings(self.local_settings)
        if self.window is not None and self.window > DEFAULT_WINDOW:
            self.window_update(0, self.window - DEFAULT_WINDOW)

    def close(self):
        """Close the socket (no GOAWAY; use send_goaway() first for a polite close)."""
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None
        self._mark_closed("closed by client")

    def shutdown_write(self):
        """Half-close: the server reads EOF, the client can still read."""
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.errors.append(f"shutdown: {e}")

    def _mark_closed(self, reason: str):
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self.close_time = time.monotonic()

    # -- sending ----------------------------------------------------------

    def send_raw(self, data: bytes):
        """Send bytes as they are.  Send errors mark the connection closed."""
        if self.sock is None or (self.closed and self.close_reason == "closed by client"):
            raise ConnectionError("client connection is not open")
        try:
            self.sock.sendall(data)
        except OSError as e:
            self.errors.append(f"send: {e}")
            self._mark_closed(f"send failed: {e}")

    def send_frame(self, frame: HFrame):
        """Serialize and send a hyperframe frame (any stream, any flags)."""
        data = frame.serialize()
        self.sent.append(self._describe(data[:9], data[9:]))
        self.send_raw(data)

    def _stream(self, sid: int) -> StreamRecord:
        rec = self.streams.get(sid)
        if rec is None:
            rec = StreamRecord(sid=sid,
                               send_window=self.peer_settings.get(
                                   int(SettingCodes.INITIAL_WINDOW_SIZE), DEFAULT_WINDOW),
                               recv_window=self.local_settings.get(
                                   int(SettingCodes.INITIAL_WINDOW_SIZE), DEFAULT_WINDOW))
            self.streams[sid] = rec
        return rec

    def encode_headers(self, headers: HeaderList) -> bytes:
        """HPACK-encode with this connection's encoder (the server's decoder
        state follows, so the block must be sent)."""
        return self._encoder.encode([(n, v) for n, v in headers])

    def request(self, method: str = "GET", path: str = "/", authority: Optional[str] = None,
                scheme: Optional[str] = None, headers: Union[HeaderList, Dict, None] = None,
                body: Optional[bytes] = None, end_stream: Optional[bool] = None,
                pseudo: bool = True, sid: Optional[int] = None,
                priority: Optional[Tuple[int, int, bool]] = None) -> int:
        """Send a request; return its stream id.

        pseudo=False sends `headers` exactly as given (no :method etc.), for
        missing or invalid pseudo-header tests.  Names and values are not
        validated or lower-cased.  Without body, END_STREAM rides the HEADERS
        unless end_stream=False.  With body, the body follows as DATA and
        END_STREAM is on its last frame unless end_stream=False.  sid picks
        the stream id (default: the next odd one).  priority is
        (depends_on, weight 1..256, exclusive) for the HEADERS frame.
        """
        if isinstance(headers, dict):
            headers = list(headers.items())
        block: List = []
        if pseudo:
            block += [(":method", method), (":scheme", scheme or self.scheme),
                      (":authority", authority or self.authority), (":path", path)]
        block += list(headers or [])
        if sid is None:
            sid = self._next_sid
        if sid % 2 == 1 and sid >= self._next_sid:
            self._next_sid = sid + 2
        rec = self._stream(sid)
        rec.start_time = time.monotonic()
        es_on_headers = body is None and end_stream is not False
        self.send_headers(sid, block, end_stream=es_on_headers, priority=priority)
        if body is not None:
            self.send_data(sid, body, end_stream=end_stream is not False)
        return sid

    def send_headers(self, sid: int, headers: HeaderList, end_stream: bool = False,
                     priority: Optional[Tuple[int, int, bool]] = None,
                     fragment: Optional[int] = None, end_headers: bool = True):
        """Send a header block (request headers or trailers) on `sid`.

        The block is split into HEADERS + CONTINUATION frames of at most
        `fragment` bytes (default: the server's max frame size).  With
        end_headers=False the last frame lacks END_HEADERS (the block is left
        unfinished, for CONTINUATION tests).
        """
        block = self.encode_headers(headers)
        size = fragment or self.peer_settings.get(int(SettingCodes.MAX_FRAME_SIZE),
                                                  DEFAULT_MAX_FRAME)
        chunks = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
        first = HeadersFrame(sid, data=chunks[0])
        if end_stream:
            first.flags.add("END_STREAM")
        if priority is not None:
            first.flags.add("PRIORITY")
            first.depends_on, weight, first.exclusive = priority
            first.stream_weight = weight - 1
        frames: List[HFrame] = [first] + [ContinuationFrame(sid, data=c) for c in chunks[1:]]
        if end_headers:
            frames[-1].flags.add("END_HEADERS")
        rec = self._stream(sid)
        if rec.start_time is None:
            rec.start_time = time.monotonic()
        if end_stream:
            rec.local_closed = True
        for f in frames:
            self.send_frame(f)

    def send_data(self, sid: int, data: bytes, end_stream: bool = False,
                  respect_window: bool = True, frame_size: Optional[int] = None,
                  pad: Optional[int] = None, timeout: Optional[float] = None) -> bool:
        """Send `data` on `sid` as DATA frames; END_STREAM on the last if asked.

        Empty data with end_stream sends one zero-length DATA[END_STREAM].
        With respect_window, reads frames (and WINDOW_UPDATEs) until the
        flow-control windows allow each frame; returns False if that timed
        out or the connection closed before all was sent.  Without it, sends
        regardless (for flow-control violation tests).  pad adds that many
        padding bytes to each frame.
        """
        max_frame = frame_size or self.peer_settings.get(int(SettingCodes.MAX_FRAME_SIZE),
                                                         DEFAULT_MAX_FRAME)
        if pad is not None:
            max_frame = max(1, max_frame - pad - 1)
        rec = self._stream(sid)
        deadline = time.monotonic() + (timeout or self.timeout)
        view = memoryview(bytes(data))
        pos = 0
        while True:
            chunk = view[pos:pos + max_frame]
            n = len(chunk)
            if respect_window and n:
                # Padding (pad + the pad-length byte) counts against the windows too.
                extra = pad + 1 if pad is not None else 0
                n = min(n, self._await_window(rec, deadline) - extra)
                if n <= 0:
                    return False
                chunk = chunk[:n]
            last = pos + n >= len(view)
            frame = DataFrame(sid, data=bytes(chunk))
            if pad is not None:
                frame.flags.add("PADDED")
                frame.pad_length = pad
            if last and end_stream:
                frame.flags.add("END_STREAM")
                rec.local_closed = True
            flow = n + (pad + 1 if pad is not None else 0)
            rec.send_window -= flow
            self.conn_send_window -= flow
            self.send_frame(frame)
            pos += n
            if last:
                return True

    def _await_window(self, rec: StreamRecord, deadline: float) -> int:
        """Read until both windows are positive; return what may be sent now."""
        def stopped():
            # A reset after a complete response (RFC 9113 §8.1: RST_STREAM
            # NO_ERROR, "stop sending the body") also ends the upload.
            return (rec.ended_by in ("RST_STREAM", "GOAWAY")
                    or any(f.type == "RST_STREAM" for f in rec.frames))

        def ok(c):
            return min(rec.send_window, c.conn_send_window) > 0 or stopped()
        if not ok(self):
            self.run(until=ok, timeout=max(0.0, deadline - time.monotonic()))
        if stopped() or self.closed:
            return 0
        return min(rec.send_window, self.conn_send_window)

    def reset(self, sid: int, code: int = ErrorCodes.CANCEL):
        """Send RST_STREAM(code).  The stream counts as ended (CLIENT_RST)
        unless the server had ended it already."""
        rec = self._stream(sid)
        rec.client_rst_code = int(code)
        if rec.ended_by is None:
            self._set_end(rec, "CLIENT_RST")
        self.send_frame(RstStreamFrame(sid, error_code=int(code)))

    def window_update(self, sid: int, increment: int):
        """Send WINDOW_UPDATE (sid 0 = connection)."""
        if sid == 0:
            self.conn_recv_window += increment
        else:
            self._stream(sid).recv_window += increment
        self.send_frame(WindowUpdateFrame(sid, window_increment=increment))

    def send_settings(self, settings: Optional[Dict[int, int]] = None, ack: bool = False):
        """Send SETTINGS with these values (or an ACK)."""
        frame = SettingsFrame(0, settings={int(k): v for k, v in (settings or {}).items()})
        if ack:
            frame.flags.add("ACK")
        self.send_frame(frame)

    def ping(self, opaque: bytes = b"h2xping!", ack: bool = False):
        frame = PingFrame(0, opaque_data=opaque)
        if ack:
            frame.flags.add("ACK")
        self.send_frame(frame)

    def priority(self, sid: int, depends_on: int = 0, weight: int = 16,
                 exclusive: bool = False):
        self.send_frame(PriorityFrame(sid, depends_on=depends_on,
                                      stream_weight=weight - 1, exclusive=exclusive))

    def send_goaway(self, last_stream_id: int = 0, code: int = ErrorCodes.NO_ERROR,
                    debug: bytes = b""):
        """Send GOAWAY (the received ones are in self.goaways / self.goaway)."""
        self.send_frame(GoAwayFrame(0, last_stream_id=last_stream_id,
                                    error_code=int(code), additional_data=debug))

    # -- receiving --------------------------------------------------------

    def run(self, until: Optional[Callable[["FrameClient"], bool]] = None,
            timeout: Optional[float] = None) -> bool:
        """Read and record frames until until(self) is true or timeout.

        Returns True if `until` became true (without `until`: after reading
        for the whole timeout), False on timeout or when the connection
        closed first.
        """
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if until is not None and until(self):
                return True
            if self.closed or self.sock is None:
                return False
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return until is None
            self._read_once(remaining)

    def _read_once(self, timeout: float):
        try:
            self.sock.settimeout(min(timeout, 1.0))
            data = self.sock.recv(65536)
        except (socket.timeout, ssl.SSLWantReadError):
            return
        except OSError as e:
            self._mark_closed(f"recv failed: {e}")
            return
        finally:
            if self.sock is not None:
                try:
                    self.sock.settimeout(self.timeout)
                except OSError:
                    pass
        if not data:
            self._mark_closed("closed by server")
            return
        self._inbuf += data
        while len(self._inbuf) >= 9:
            length = int.from_bytes(self._inbuf[0:3], "big")
            if len(self._inbuf) < 9 + length:
                break
            header = bytes(self._inbuf[:9])
            body = bytes(self._inbuf[9:9 + length])
            del self._inbuf[:9 + length]
            self._on_frame(self._describe(header, body))

    def _describe(self, header: bytes, body: bytes) -> Frame:
        """Turn one raw frame into a Frame (hyperframe parses the body)."""
        length = int.from_bytes(header[0:3], "big")
        ftype = header[3]
        sid = int.from_bytes(header[5:9], "big") & 0x7FFFFFFF
        rec = Frame(type=FRAME_TYPES.get(ftype, f"UNKNOWN(0x{ftype:x})"), flags=frozenset(),
                    length=length, t=time.monotonic(), stream_id=sid, raw_flags=header[4])
        try:
            hf, _ = HFrame.parse_frame_header(memoryview(header), strict=False)
            hf.parse_body(memoryview(body))
        except Exception as e:   # noqa: BLE001 - malformed frames are recorded, not raised
            rec.malformed = f"{type(e).__name__}: {e}"
            return rec
        rec.flags = frozenset(hf.flags)
        if isinstance(hf, DataFrame):
            rec.data = bytes(hf.data)
        elif isinstance(hf, RstStreamFrame):
            rec.error_code = hf.error_code
        elif isinstance(hf, GoAwayFrame):
            rec.error_code = hf.error_code
            rec.last_stream_id = hf.last_stream_id
            rec.data = bytes(hf.additional_data)
        elif isinstance(hf, SettingsFrame):
            rec.settings = dict(hf.settings)
        elif isinstance(hf, WindowUpdateFrame):
            rec.increment = hf.window_increment
        elif isinstance(hf, PingFrame):
            rec.data = bytes(hf.opaque_data)
        elif rec.type == "PUSH_PROMISE":
            rec.promised_stream_id = hf.promised_stream_id
        if rec.type in ("HEADERS", "PUSH_PROMISE", "CONTINUATION"):
            rec.data = bytes(hf.data)
        return rec

    def _on_frame(self, f: Frame):
        self.frames.append(f)
        if f.malformed:
            self.errors.append(f"malformed {f.type} on stream {f.stream_id}: {f.malformed}")
        if f.stream_id:
            rec = self._stream(f.stream_id)
            rec.frames.append(f)
        else:
            rec = None
        handler = getattr(self, f"_on_{f.type.lower()}", None)
        if handler is not None and not f.malformed:
            handler(f, rec)
        if rec is not None and f.end_stream and f.type in ("HEADERS", "DATA"):
            if rec.ended_by in (None, "CLIENT_RST"):
                self._set_end(rec, "END_STREAM", f.t)

    def _set_end(self, rec: StreamRecord, how: str, t: Optional[float] = None):
        rec.ended_by = how
        rec.end_time = t if t is not None else time.monotonic()

    def _header_fragment(self, f: Frame, target_sid: int):
        if f.type == "CONTINUATION":
            if self._header_block is None or self._header_block[0] != f.stream_id:
                self.errors.append(f"unexpected CONTINUATION on stream {f.stream_id}")
                return
            self._header_block[1].extend(f.data)
        else:
            self._header_block = (f.stream_id, bytearray(f.data), target_sid)
        if "END_HEADERS" in f.flags:
            _, block, target = self._header_block
            self._header_block = None
            try:
                decoded = [(_text(n), _text(v)) for n, v in self._decoder.decode(bytes(block),
                                                                                 raw=True)]
            except Exception as e:   # noqa: BLE001 - recorded for the test to see
                self.errors.append(f"HPACK decode failed on stream {f.stream_id}: {e}")
                return
            f.headers = decoded
            self._stream(target).headers.append(decoded)

    def _on_headers(self, f: Frame, rec: StreamRecord):
        self._header_fragment(f, f.stream_id)

    def _on_continuation(self, f: Frame, rec: StreamRecord):
        self._header_fragment(f, f.stream_id)

    def _on_push_promise(self, f: Frame, rec: StreamRecord):
        pushed = self._stream(f.promised_stream_id)
        pushed.pushed = True
        self._header_fragment(f, f.promised_stream_id)

    def _on_data(self, f: Frame, rec: StreamRecord):
        rec.data += f.data
        rec.recv_window -= f.length
        self.conn_recv_window -= f.length
        if self.auto_window_update and f.length > 0:
            self.window_update(0, f.length)
            if not f.end_stream and rec.ended_by is None:
                self.window_update(f.stream_id, f.length)

    def _on_rst_stream(self, f: Frame, rec: StreamRecord):
        rec.rst_code = f.error_code
        if rec.ended_by in (None, "CLIENT_RST"):
            self._set_end(rec, "RST_STREAM", f.t)

    def _on_settings(self, f: Frame, rec):
        if "ACK" in f.flags:
            self.settings_acks += 1
            return
        self.settings.append(f.settings)
        iws = int(SettingCodes.INITIAL_WINDOW_SIZE)
        if iws in f.settings:
            # RFC 9113 §6.9.2: the change applies to every open stream's window.
            delta = f.settings[iws] - self.peer_settings.get(iws, DEFAULT_WINDOW)
            for s in self.streams.values():
                s.send_window += delta
        self.peer_settings.update(f.settings)
        if self.auto_ack_settings:
            self.send_settings(ack=True)

    def _on_ping(self, f: Frame, rec):
        self.pings.append(f)
        if self.auto_ack_ping and "ACK" not in f.flags:
            self.ping(f.data, ack=True)

    def _on_goaway(self, f: Frame, rec):
        self.goaways.append(GoAway(f.last_stream_id, f.error_code, f.data, f.t))
        # Streams above last_stream_id were not processed: they end here.
        for s in self.streams.values():
            if s.sid % 2 == 1 and s.sid > f.last_stream_id and s.ended_by is None:
                self._set_end(s, "GOAWAY", f.t)

    def _on_window_update(self, f: Frame, rec: Optional[StreamRecord]):
        if rec is None:
            self.conn_send_window += f.increment
        else:
            rec.send_window += f.increment

    # -- waiting and inspecting ------------------------------------------

    def stream(self, sid: int) -> StreamRecord:
        return self.streams[sid]

    @property
    def goaway(self) -> Optional[GoAway]:
        """The first GOAWAY the server sent, or None."""
        return self.goaways[0] if self.goaways else None

    def wait_stream_end(self, sid: int, timeout: Optional[float] = None) -> bool:
        """Read until stream `sid` ended (any way); False on timeout/close."""
        return self.run(lambda c: c._stream(sid).ended, timeout)

    def wait_all_ended(self, timeout: Optional[float] = None) -> bool:
        """Read until every client-opened stream ended."""
        return self.run(lambda c: not c.unended(include_expected=True), timeout)

    def wait_goaway(self, timeout: Optional[float] = None) -> bool:
        return self.run(lambda c: bool(c.goaways), timeout)

    def wait_closed(self, timeout: Optional[float] = None) -> bool:
        """Read until the server closed the connection."""
        self.run(lambda c: c.closed, timeout)
        return self.closed

    def wait_settings(self, timeout: Optional[float] = None) -> bool:
        """Read until the server's first SETTINGS arrived."""
        return self.run(lambda c: bool(c.settings), timeout)

    def expect_open(self, sid: Optional[int] = None):
        """Declare stream `sid` (None: every stream so far) deliberately left
        open, so the end-of-test stream check ignores it."""
        for rec in ([self._stream(sid)] if sid is not None else self.streams.values()):
            rec.expect_open = True

    def unended(self, include_expected: bool = False) -> List[StreamRecord]:
        """Streams (client-opened or pushed) that have not ended."""
        return [r for r in self.streams.values()
                if r.ended_by is None and (r.start_time is not None or r.pushed)
                and (include_expected or not r.expect_open)]

    def check_ended(self, grace: Optional[float] = None) -> List[str]:
        """Give open streams `grace` seconds to end; describe those that did not."""
        grace = self.end_grace if grace is None else grace
        if self.unended() and not self.closed and self.sock is not None:
            self.run(lambda c: not c.unended(), grace)
        problems = []
        for r in self.unended():
            how = f" (connection {self.close_reason})" if self.closed else ""
            problems.append(f"{self.scheme}://{self.host}:{self.port} stream {r.sid} got neither "
                            f"END_STREAM nor RST_STREAM{how}: [{r.frames_str()}]")
        return problems

    def shape(self, sid: int, collapse: bool = True) -> str:
        """A compact picture of the response frames on `sid`.

        HEADERS, DATA, RST(<code>), PUSH; END_STREAM shows as [ES];
        CONTINUATION, WINDOW_UPDATE and PRIORITY are left out.  A zero-length
        DATA frame shows as DATA(0).  With collapse, runs of non-empty DATA
        frames show as one DATA (so the split into frames does not matter).
        Examples: "HEADERS[ES]", "HEADERS DATA[ES]", "HEADERS DATA DATA(0)[ES]",
        "HEADERS DATA HEADERS[ES]" (trailers), "HEADERS DATA RST(INTERNAL_ERROR)".
        """
        tokens: List[str] = []
        prev_data = False
        for f in self.stream(sid).frames:
            if f.type in ("CONTINUATION", "WINDOW_UPDATE", "PRIORITY"):
                continue
            name = _SHAPE_NAMES.get(f.type, f.type)
            if f.type == "RST_STREAM":
                name += f"({f.error_name})"
            is_data = f.type == "DATA" and f.length > 0
            if f.type == "DATA" and f.length == 0:
                name = "DATA(0)"
            tok = name + ("[ES]" if f.end_stream else "")
            if collapse and is_data and prev_data:
                tokens[-1] = tok
            else:
                tokens.append(tok)
            prev_data = is_data
        return " ".join(tokens)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return (f"FrameClient({self.scheme}://{self.host}:{self.port}, streams={len(self.streams)},"
                f" closed={self.closed}, goaway={self.goaway})")
