"""A small FastCGI responder for the tests, in the role PHP-FPM plays
behind mod_proxy_fcgi on hosting servers (the FastCGI 1.0 record
protocol, written from the specification; no dependency).

    /usr/bin/python3 fcgi_backend.py PORT

Prints "ready" once listening. The last path segment of REQUEST_URI picks
what it does; the query string gives the numbers:

  echo     reads the whole request body; answers "<sha256> <length>\\n"
  big      n=N: answers N bytes, byte i being "0123456789abcdef"[i % 16]
  lines    n=N, ms=M: N lines "<i> <time.time()>\\n", M ms apart, each in
           its own FCGI_STDOUT record (text/event-stream)
  die      n=N: headers and N body bytes with a Content-Length of 2N, then
           the connection is closed without FCGI_END_REQUEST
  status   s=S: "Status: S" and no body
"""

import hashlib
import socket
import socketserver
import struct
import sys
import threading
import time
import urllib.parse

BEGIN_REQUEST, ABORT_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT = 1, 2, 3, 4, 5, 6
KEEP_CONN = 1
PATTERN = b"0123456789abcdef"


def read_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise EOFError
        buf += chunk
    return buf


def read_record(sock):
    version, rtype, rid, clen, plen, _ = struct.unpack(">BBHHBB", read_exact(sock, 8))
    content = read_exact(sock, clen) if clen else b""
    if plen:
        read_exact(sock, plen)
    return rtype, rid, content


def record(rtype, rid, content=b""):
    out = b""
    for at in range(0, max(len(content), 1), 65535):
        piece = content[at:at + 65535]
        pad = -len(piece) % 8
        out += struct.pack(">BBHHBB", 1, rtype, rid, len(piece), pad, 0) + piece + b"\0" * pad
        if not content:
            break
    return out


def parse_params(data):
    params, i = {}, 0
    while i < len(data):
        lens = []
        for _ in range(2):
            if data[i] & 0x80:
                lens.append(struct.unpack(">I", data[i:i + 4])[0] & 0x7FFFFFFF)
                i += 4
            else:
                lens.append(data[i])
                i += 1
        name = data[i:i + lens[0]].decode("latin-1")
        i += lens[0]
        params[name] = data[i:i + lens[1]].decode("latin-1")
        i += lens[1]
    return params


def body_of(n):
    return (PATTERN * (n // 16 + 1))[:n]


class Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        try:
            while self.one_request(sock):
                pass
        except (EOFError, ConnectionError):
            pass

    def one_request(self, sock):
        params_raw, stdin, rid, keep = b"", b"", 0, False
        params_done = stdin_done = False
        while not (params_done and stdin_done):
            rtype, rid, content = read_record(sock)
            if rtype == BEGIN_REQUEST:
                keep = bool(content[2] & KEEP_CONN)
            elif rtype == PARAMS:
                params_raw += content
                params_done = not content
            elif rtype == STDIN:
                stdin += content
                stdin_done = not content
            elif rtype == ABORT_REQUEST:
                return False
        params = parse_params(params_raw)
        uri = params.get("REQUEST_URI", "/")
        action = urllib.parse.urlsplit(uri).path.rstrip("/").rsplit("/", 1)[-1]
        q = {k: v[0] for k, v in urllib.parse.parse_qs(params.get("QUERY_STRING", "")).items()}
        out = lambda data: sock.sendall(record(STDOUT, rid, data))  # noqa: E731
        if action == "echo":
            out(b"Content-Type: text/plain\r\n\r\n%s %d\n"
                % (hashlib.sha256(stdin).hexdigest().encode(), len(stdin)))
        elif action == "big":
            n = int(q.get("n", "1000"))
            out(b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % n
                + body_of(n))
        elif action == "lines":
            out(b"Content-Type: text/event-stream\r\n\r\n")
            for i in range(int(q.get("n", "5"))):
                if i:
                    time.sleep(float(q.get("ms", "200")) / 1000.0)
                out(b"%d %.6f\n" % (i, time.time()))
        elif action == "die":
            n = int(q.get("n", "1000"))
            out(b"Content-Type: application/octet-stream\r\nContent-Length: %d\r\n\r\n" % (2 * n)
                + body_of(n))
            time.sleep(0.1)
            sock.shutdown(socket.SHUT_RDWR)
            return False
        elif action == "status":
            out(b"Status: %s\r\n\r\n" % q.get("s", "204").encode())
        else:
            out(b"Status: 404\r\nContent-Type: text/plain\r\n\r\nunknown\n")
        sock.sendall(record(STDOUT, rid) + record(END_REQUEST, rid, struct.pack(">IB3x", 0, 0)))
        return keep


class Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


def main(port):
    server = Server(("127.0.0.1", port), Handler)
    print("ready", flush=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main(int(sys.argv[1]))
