"""Streaming and big bodies: mod_h2x against Debian's mod_http2 (issue 11).

One httpd per module (bench/httpd.conf.tmpl, the same lines for both but
the LoadModule of the HTTP/2 module), default HTTP/2 settings, both
started once and measured interleaved (A B, then B A, ...):

- cgi-stream: curl (h2c) downloads 4 MB from a CGI that writes it in
  16 KiB pieces, flushing each (cgi-bin/stream4m.py);
- proxy-download: curl (h2c) downloads a 4 MB file through mod_proxy_http
  (ProxyPass /proxied/ to the server's own HTTP/1.1 port);
- grpc-bidi, grpc-reply, grpc-upload (with python3-grpcio): a gRPC client
  over h2 (TLS, ALPN) to httpd, which passes /bench.Bench/ to a Python gRPC
  backend over h2c with mod_proxy_http2: 50 lock-step round trips of a
  16-byte message on one bidi stream; one call answered with 4 MB; one
  call sending 4 MB.

Each case runs --reps times per module (median); the table has the medians
and the ratio mod_h2x / mod_http2 (below 1: mod_h2x took less time).
Benchmarks are not tests: nothing here passes or fails.
"""

import argparse
import os
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server import (MODULES, REPO, Server, free_ports, make_cert,  # noqa: E402
                    snapshot_modules, stop_all)

MODDIR = "/usr/lib/apache2/modules"
SIZE = 4 * 1024 * 1024
ROUND_TRIPS = 50

STREAM_CGI = """#!/usr/bin/python3
# bench/streaming: 4 MB in 16 KiB pieces, each flushed.
import sys
out = sys.stdout.buffer
out.write(b"Content-Type: application/octet-stream\\r\\n\\r\\n")
out.flush()
piece = b"s" * 16384
for _ in range(256):
    out.write(piece)
    out.flush()
"""

GRPC_BACKEND = """
import sys
from concurrent import futures
import grpc

SIZE = int(sys.argv[2])

def echo(requests, context):
    for message in requests:
        yield message

def big_reply(request, context):
    return b"r" * SIZE

def upload(request, context):
    return str(len(request)).encode()

handlers = {
    "Echo": grpc.stream_stream_rpc_method_handler(echo),
    "BigReply": grpc.unary_unary_rpc_method_handler(big_reply),
    "Upload": grpc.unary_unary_rpc_method_handler(upload),
}
options = [("grpc.max_send_message_length", 64 << 20),
           ("grpc.max_receive_message_length", 64 << 20)]
server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), options=options)
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("bench.Bench", handlers),))
server.add_insecure_port("127.0.0.1:" + sys.argv[1])
server.start()
print("ready", flush=True)
server.wait_for_termination()
"""


def log(msg: str):
    print(f"[streaming] {msg}", file=sys.stderr, flush=True)


def have_grpc() -> bool:
    try:
        import grpc  # noqa: F401
        return True
    except ImportError:
        return False


def curl_time(url: str, expect: int) -> float:
    """Seconds for one h2c download with curl (its own timer)."""
    r = subprocess.run(["curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null",
                        "-w", "%{size_download} %{time_total}", url],
                       capture_output=True, text=True, timeout=60)
    size, took = r.stdout.split()
    if int(size) != expect:
        raise RuntimeError(f"{url}: {size} bytes, expected {expect}")
    return float(took)


class GrpcClient:
    """One channel to one httpd over h2 (TLS) for the gRPC cases."""

    def __init__(self, port: int, cert: str):
        import grpc
        with open(cert, "rb") as f:
            creds = grpc.ssl_channel_credentials(root_certificates=f.read())
        options = [("grpc.max_send_message_length", 64 << 20),
                   ("grpc.max_receive_message_length", 64 << 20)]
        self.channel = grpc.secure_channel(f"localhost:{port}", creds, options=options)
        self.echo = self.channel.stream_stream("/bench.Bench/Echo")
        self.big = self.channel.unary_unary("/bench.Bench/BigReply")
        self.upload = self.channel.unary_unary("/bench.Bench/Upload")
        grpc.channel_ready_future(self.channel).result(timeout=10)

    def bidi(self) -> float:
        q: "queue.Queue" = queue.Queue()

        def requests():
            while True:
                m = q.get()
                if m is None:
                    return
                yield m
        t0 = time.monotonic()
        call = self.echo(requests(), timeout=60)
        for _ in range(ROUND_TRIPS):
            q.put(b"0123456789abcdef")
            if next(call) != b"0123456789abcdef":
                raise RuntimeError("gRPC echo: wrong message")
        q.put(None)
        for _ in call:
            pass
        return time.monotonic() - t0

    def reply(self) -> float:
        t0 = time.monotonic()
        got = self.big(b"", timeout=60)
        if len(got) != SIZE:
            raise RuntimeError(f"gRPC reply: {len(got)} bytes")
        return time.monotonic() - t0

    def send(self) -> float:
        body = b"u" * SIZE
        t0 = time.monotonic()
        got = self.upload(body, timeout=60)
        if int(got) != SIZE:
            raise RuntimeError(f"gRPC upload: server saw {got!r}")
        return time.monotonic() - t0

    def close(self):
        self.channel.close()


# Issue 11's goals: every case within 1.1 x mod_http2's time, and the
# small-message round trip (the bidi case) no slower than mod_http2.
GOALS = {"grpc-bidi": 1.0}
GOAL_DEFAULT = 1.1


def run(reps: int) -> Dict:
    """Measure every case `reps` times per module, interleaved; return
    {"date", "reps", "cases": [{key, title, mod_h2x_s, mod_http2_s (medians),
    ratio, goal, met, raw}]}."""
    grpc_ok = have_grpc()
    if not grpc_ok:
        log("python3-grpcio is missing (scripts/install-deps installs it): no gRPC cases")

    workdir = tempfile.mkdtemp(prefix="h2xstream-")
    servers: Dict[str, Server] = {}
    backend = None
    clients: Dict[str, GrpcClient] = {}
    try:
        os.chmod(workdir, 0o755)
        docroot = os.path.join(workdir, "htdocs")
        cgibin = os.path.join(workdir, "cgi-bin")
        for d in (docroot, cgibin):
            os.makedirs(d)
            os.chmod(d, 0o755)
        with open(os.path.join(docroot, "4m.bin"), "wb") as f:
            f.write(b"p" * SIZE)
        os.chmod(os.path.join(docroot, "4m.bin"), 0o644)
        cgi = os.path.join(cgibin, "stream4m.py")
        with open(cgi, "w") as f:
            f.write(STREAM_CGI)
        os.chmod(cgi, 0o755)
        extra = [f"LoadModule proxy_module {MODDIR}/mod_proxy.so",
                 f"LoadModule proxy_http_module {MODDIR}/mod_proxy_http.so",
                 f"LoadModule proxy_http2_module {MODDIR}/mod_proxy_http2.so"]
        if grpc_ok:
            (gport,) = free_ports(1)
            script = os.path.join(workdir, "grpc_backend.py")
            with open(script, "w") as f:
                f.write(GRPC_BACKEND)
            backend = subprocess.Popen(["/usr/bin/python3", script, str(gport), str(SIZE)],
                                       stdout=subprocess.PIPE)
            if backend.stdout.readline().strip() != b"ready":
                raise RuntimeError("the gRPC backend did not start")
            extra.append(f'ProxyPass "/bench.Bench/" "h2c://127.0.0.1:{gport}/bench.Bench/"')
        cert, key = make_cert(workdir)
        so_paths = snapshot_modules(workdir)
        # the proxied download goes to the server's own HTTP/1.1 port
        # (@HTTP_PORT@ is filled in after @EXTRA@, bench/server.py)
        extra.append('ProxyPass "/proxied/" "http://127.0.0.1:@HTTP_PORT@/"')
        for module in MODULES:
            s = Server(module, workdir, docroot, cgibin, {
                "TIMEOUT": "30", "CERT": cert, "KEY": key, "TEST_MODULE": "",
                "EXTRA": "\n".join(extra)}, pin_cpu=None, so_path=so_paths[module])
            servers[module] = s
            s.start()
            log(f"{module}: pid {s.pid}, h2c {s.http_port}, h2 {s.https_port}")
            if grpc_ok:
                clients[module] = GrpcClient(s.https_port, cert)

        cases: List[tuple] = [
            ("cgi-stream", "4 MB from a streaming CGI (curl, h2c)",
             lambda m: curl_time(servers[m].url(False, "/cgi-bin/stream4m.py"), SIZE)),
            ("proxy-download", "4 MB through mod_proxy_http (curl, h2c)",
             lambda m: curl_time(servers[m].url(False, "/proxied/4m.bin"), SIZE)),
        ]
        if grpc_ok:
            cases += [
                ("grpc-bidi", f"gRPC bidi, {ROUND_TRIPS} lock-step round trips (h2)",
                 lambda m: clients[m].bidi()),
                ("grpc-reply", "gRPC call answered with 4 MB (h2)",
                 lambda m: clients[m].reply()),
                ("grpc-upload", "gRPC call sending 4 MB (h2)",
                 lambda m: clients[m].send()),
            ]
        results: Dict[str, Dict[str, List[float]]] = {c[0]: {m: [] for m in servers}
                                                     for c in cases}
        order = list(servers)
        for name, _title, measure in cases:
            for m in order:             # one warm-up each
                measure(m)
            for rep in range(reps):
                for m in (order if rep % 2 == 0 else order[::-1]):
                    results[name][m].append(measure(m))
            med = {m: statistics.median(v) for m, v in results[name].items()}
            log(f"{name:15} " + ", ".join(f"{m} {med[m] * 1000:.1f} ms" for m in order))
    finally:
        for c in clients.values():
            c.close()
        stop_all(servers.values(), backend, workdir)

    a, b = "mod_h2x", "mod_http2"
    out = []
    for name, title, _measure in cases:
        ma = statistics.median(results[name][a])
        mb = statistics.median(results[name][b])
        goal = GOALS.get(name, GOAL_DEFAULT)
        out.append({"key": name, "title": title, "mod_h2x_s": ma, "mod_http2_s": mb,
                    "ratio": ma / mb, "goal": goal, "met": ma / mb <= goal,
                    "raw": results[name]})
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "reps": reps,
            "cases": out}


def markdown(result: Dict) -> str:
    """The table of one run(): medians, ratio, goal and whether it is met."""
    lines = [f"Streaming and big bodies, default settings, median of {result['reps']} "
             f"interleaved repetitions ({result['date']}); goal: time <= goal x mod_http2's.",
             "",
             "| case | mod_h2x | mod_http2 | ratio mod_h2x/mod_http2 | goal | met |",
             "|---|---|---|---|---|---|"]
    for c in result["cases"]:
        lines.append(f"| {c['title']} | {c['mod_h2x_s'] * 1000:.1f} ms | "
                     f"{c['mod_http2_s'] * 1000:.1f} ms | {c['ratio']:.2f} | "
                     f"<= {c['goal']:.1f} | {'yes' if c['met'] else 'no'} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--no-build", action="store_true")
    opts = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not opts.no_build:
        subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    print(markdown(run(opts.reps)), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
