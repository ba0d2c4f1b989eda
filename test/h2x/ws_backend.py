"""A small WebSocket backend for the tests (python3-websockets from Debian).

    /usr/bin/python3 ws_backend.py PORT EVENTS_FILE

Paths:
  /echo    every message comes back as it was (text or binary)
  /close   closes at once with code 4000, reason "bye"
  /hello   sends the text "hello", then echoes
  /bulk/N  sends N bytes in binary messages of 64 KiB, then closes
           (bench/websocket)
  anything else: closes with code 4004, reason "unknown path"

When a connection ends, a line "closed <path> <monotonic time>" is appended
to EVENTS_FILE, so a test can see how soon the server let go of the
backend connection.  The time has microseconds: the server can let go
within a millisecond of a client's reset, and a time rounded to
milliseconds could then read as earlier than the reset.
"""

import asyncio
import sys
import time

import websockets


async def handler(ws, path):
    try:
        if path.endswith("/echo"):
            async for msg in ws:
                await ws.send(msg)
        elif path.endswith("/close"):
            await ws.close(code=4000, reason="bye")
        elif "/bulk/" in path:
            left = int(path.rsplit("/", 1)[1])
            chunk = bytes(65536)
            while left > 0:
                n = min(left, len(chunk))
                await ws.send(chunk[:n] if n < len(chunk) else chunk)
                left -= n
            await ws.close()
        elif path.endswith("/hello"):
            await ws.send("hello")
            async for msg in ws:
                await ws.send(msg)
        else:
            await ws.close(code=4004, reason="unknown path")
    except websockets.ConnectionClosed:
        pass
    finally:
        with open(EVENTS, "a") as f:
            f.write(f"closed {path} {time.monotonic():.6f}\n")


async def main(port):
    async with websockets.serve(handler, "127.0.0.1", port, max_size=None,
                                ping_interval=None):
        print("ready", flush=True)
        await asyncio.Future()


if __name__ == "__main__":
    EVENTS = sys.argv[2]
    asyncio.run(main(int(sys.argv[1])))
