"""A small HTTP/1.1 backend for the gateway tests (Python's standard
library only), in the role an application server plays behind
mod_proxy_http and mod_proxy_balancer.

    /usr/bin/python3 http_backend.py NAME PORT EVENTS_FILE

Prints "ready" once listening. Every answer carries `X-Backend: NAME`.
The last path segment picks what it does (so any ProxyPass prefix works);
the query string gives the numbers, and `tag=T` names the request in
EVENTS_FILE:

  json          n=N: a JSON object of exactly N bytes (N >= 64) naming
                the backend: {"backend": NAME, "n": N, "tag": T, "pad": ...}
  echo          POST: the request body comes back as it was (read by
                Content-Length or chunked); `X-Backend-Chunked: 1` when the
                request came chunked
  stream        count=C, delay=D: a chunked answer of C lines
                "<i> <monotonic time> NAME\\n", the first at once, then one
                every D seconds, each its own flushed chunk
  slow          delay=D: waits D seconds, then answers "slow NAME\\n";
                while it waits it watches its connection
  die-mid-body  n=N: headers with Content-Length 2N and N bytes, then the
                connection is closed
  anything else 404

EVENTS_FILE gets one line per event, "<monotonic time> <event> <what>
<tag>", the time with microseconds (time.monotonic() is the system-wide
CLOCK_MONOTONIC, comparable with the test's own clock):

  req <what> <tag>      a request arrived (counting requests per backend)
  closed <what> <tag>   the proxy closed the connection while slow was
                        waiting, or a stream write failed
  done <what> <tag>     slow or stream finished its answer
"""

import json
import select
import socket
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NAME = "backend"
EVENTS = None
_lock = threading.Lock()


def event(what: str, path: str, tag: str) -> None:
    line = f"{time.monotonic():.6f} {what} {path} {tag or '-'}\n"
    with _lock:
        with open(EVENTS, "a") as f:
            f.write(line)


def json_body(n: int, tag: str) -> bytes:
    obj = {"backend": NAME, "n": n, "tag": tag, "pad": ""}
    base = len(json.dumps(obj, separators=(",", ":")).encode())
    obj["pad"] = "x" * max(0, n - base)
    return json.dumps(obj, separators=(",", ":")).encode()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "h2x-test-backend"

    def log_message(self, fmt, *args):   # quiet: nobody reads stderr
        pass

    def _parse(self):
        parts = urllib.parse.urlsplit(self.path)
        action = parts.path.rstrip("/").rsplit("/", 1)[-1]
        q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        return action, q

    def _answer(self, status: int, body: bytes, ctype: str = "text/plain", extra=()):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Backend", NAME)
        for name, value in extra:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()

    def _read_body(self):
        """The request body and whether it came chunked."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            out = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass      # trailers
                    return bytes(out), True
                out += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return (self.rfile.read(n) if n else b""), False

    def _peer_closed(self, timeout: float) -> bool:
        """Wait up to `timeout` s; True if the other side closed meanwhile."""
        try:
            r, _, _ = select.select([self.connection], [], [], timeout)
            if r:
                return self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True
        return False

    def do_POST(self):
        action, q = self._parse()
        tag = q.get("tag", "")
        event("req", action, tag)
        body, chunked = self._read_body()
        if action == "echo":
            self._answer(200, body, "application/octet-stream",
                         [("X-Backend-Chunked", "1" if chunked else "0")])
        else:
            self._answer(404, b"unknown\n")

    def do_GET(self):
        action, q = self._parse()
        tag = q.get("tag", "")
        event("req", action, tag)
        if action == "json":
            self._answer(200, json_body(int(q.get("n", "100")), tag), "application/json")
        elif action == "stream":
            self._stream(int(q.get("count", "5")), float(q.get("delay", "0.2")), tag)
        elif action == "slow":
            deadline = time.monotonic() + float(q.get("delay", "5"))
            while time.monotonic() < deadline:
                if self._peer_closed(min(0.05, max(0.0, deadline - time.monotonic()))):
                    event("closed", action, tag)
                    self.close_connection = True
                    return
            self._answer(200, b"slow %s\n" % NAME.encode())
            event("done", action, tag)
        elif action == "die-mid-body":
            n = int(q.get("n", "1000"))
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(2 * n))
            self.send_header("X-Backend", NAME)
            self.end_headers()
            self.wfile.write(b"d" * n)
            self.wfile.flush()
            time.sleep(0.1)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        else:
            self._answer(404, b"unknown\n")

    def _stream(self, count: int, delay: float, tag: str):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("X-Backend", NAME)
        self.end_headers()
        self.wfile.flush()
        try:
            for i in range(count):
                if i:
                    time.sleep(delay)
                line = b"%d %.6f %s\n" % (i, time.monotonic(), NAME.encode())
                self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            event("closed", "stream", tag)
            self.close_connection = True
            return
        event("done", "stream", tag)


class Server(ThreadingHTTPServer):
    allow_reuse_address = True
    daemon_threads = True
    request_queue_size = 128


def main(name: str, port: int, events: str) -> None:
    global NAME, EVENTS
    NAME, EVENTS = name, events
    server = Server(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), sys.argv[3])
