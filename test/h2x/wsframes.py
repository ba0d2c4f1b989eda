"""RFC 6455 frames, for the WebSocket tests (test_800) and bench/websocket:
what a client puts into its stream's DATA and reads out of it."""

import struct
from typing import List, Tuple

# RFC 6455 §5.2 opcodes
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def ws_frame(opcode: int, payload: bytes, mask: bytes = b"\x11\x22\x33\x44") -> bytes:
    """A client frame: FIN set, masked as RFC 6455 §5.3 requires (the
    all-zero key is valid too and costs no XOR)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", n)
    if mask == b"\0\0\0\0":
        return head + mask + payload
    return head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


def ws_parse(data: bytes) -> Tuple[List[Tuple[int, bytes]], bytes]:
    """Complete server frames in `data`: [(opcode, payload)], and the rest."""
    frames, pos = [], 0
    while len(data) - pos >= 2:
        b0, b1 = data[pos], data[pos + 1]
        n, off = b1 & 0x7F, pos + 2
        if n == 126:
            if len(data) - off < 2:
                break
            n, off = struct.unpack(">H", data[off:off + 2])[0], off + 2
        elif n == 127:
            if len(data) - off < 8:
                break
            n, off = struct.unpack(">Q", data[off:off + 8])[0], off + 8
        if b1 & 0x80:
            off += 4    # servers do not mask; skip a mask key if one came
        if len(data) - off < n:
            break
        frames.append((b0 & 0x0F, bytes(data[off:off + n])))
        pos = off + n
    return frames, data[pos:]


def frame_overhead(n: int) -> int:
    """Header bytes of an unmasked (server) frame with n payload bytes."""
    return 2 if n < 126 else 4 if n < 65536 else 10
