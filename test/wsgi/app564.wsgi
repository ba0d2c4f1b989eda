# The WSGI application of test_564 (written into the server root).
import hashlib
import json
import os
import time
import urllib.parse

CHUNK = 65536


def _pattern(size, seed):
    out = bytearray()
    block = hashlib.sha256(b"h2x-564-%d" % seed).digest() * 2048  # 64 KiB
    while len(out) < size:
        out += block
    return bytes(out[:size])


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    q = dict(urllib.parse.parse_qsl(environ.get("QUERY_STRING", "")))
    if path == "/env":
        keys = ["SERVER_PROTOCOL", "HTTP2", "H2PUSH", "H2_STREAM_ID", "HTTPS",
                "wsgi.url_scheme", "REQUEST_METHOD", "CONTENT_LENGTH", "HTTP_HOST",
                "mod_wsgi.process_group", "SSL_PROTOCOL"]
        body = json.dumps({k: str(environ.get(k)) for k in keys}).encode()
        start_response("200 OK", [("Content-Type", "application/json"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/echo":
        inp = environ["wsgi.input"]
        md5 = hashlib.md5()
        total = 0
        while True:
            piece = inp.read(int(q.get("piece", "65536")))
            if not piece:
                break
            md5.update(piece)
            total += len(piece)
        body = f"{md5.hexdigest()} {total}\n".encode()
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    if path == "/big":
        size = int(q.get("size", "1000000"))
        data = _pattern(size, size)
        headers = [("Content-Type", "application/octet-stream")]
        if q.get("cl") == "1":
            headers.append(("Content-Length", str(size)))
        start_response("200 OK", headers)
        return (data[i:i + CHUNK] for i in range(0, size, CHUNK))
    if path == "/file":
        name = os.path.join(environ["H2X_DOCROOT"], q.get("name", "f564.bin"))
        f = open(name, "rb")
        start_response("200 OK", [("Content-Type", "application/octet-stream"),
                                  ("Content-Length", str(os.path.getsize(name)))])
        return environ["wsgi.file_wrapper"](f, CHUNK)
    if path == "/lines":
        n = int(q.get("n", "5"))
        ms = float(q.get("ms", "200"))
        start_response("200 OK", [("Content-Type", "application/x-h2x-lines")])

        def gen():
            for i in range(n):
                if i:
                    time.sleep(ms / 1000.0)
                yield b"line %d %.6f\n" % (i, time.time())
        return gen()
    if path == "/empty":
        s = q.get("s", "200")
        reason = {"200": "OK", "204": "No Content", "304": "Not Modified"}[s]
        headers = [] if s != "200" else [("Content-Length", "0")]
        start_response(f"{s} {reason}", headers)
        return [b""] if q.get("blank") == "1" else []
    if path == "/stall":
        headers = [("Content-Type", "application/octet-stream")]
        if q.get("cl") == "1":
            headers.append(("Content-Length", "1005"))
        start_response("200 OK", headers)

        def gen():
            yield b"x" * 1000
            time.sleep(float(q.get("s", "60")))
            yield b"late\n"
        return gen()
    if path == "/sleep":
        marker = q.get("marker")
        time.sleep(float(q.get("s", "1")))
        if marker:
            with open(marker, "w") as f:
                f.write("done\n")
        body = b"slept\n"
        start_response("200 OK", [("Content-Type", "text/plain"),
                                  ("Content-Length", str(len(body)))])
        return [body]
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"no such path\n"]
