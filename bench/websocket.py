"""WebSockets over HTTP/2 (RFC 8441): mod_h2x against Debian's mod_http2.

One httpd per module (bench/httpd.conf.tmpl, the same lines for both but
the LoadModule of the HTTP/2 module), each with `H2WebSockets on` and
`ProxyPass /ws/ http://127.0.0.1:PORT/ upgrade=websocket` to one shared
WebSocket backend (test/h2x/ws_backend.py, python3-websockets).  The client
is a raw HTTP/2 client (python3-h2) over h2c, on one connection per module:

- latency: a 16-byte text message to /ws/echo and back, one at a time,
  --messages times per module; both modules' sockets are open at once and
  the messages alternate between them one by one (A B A B ..., B A B A
  ... in every other repetition), so both see the same machine load;
  median and 99th percentile of the round trip per repetition, and over
  all messages of all repetitions pooled;
- throughput: /ws/bulk/N, the backend sends --bytes bytes in 64 KiB
  binary messages; MB/s from the CONNECT to the last message's last byte.

Bulk transfers are interleaved (A B, then B A, ...); the table shows the
median over repetitions and the ratio mod_h2x / mod_http2 (below 1 is
better for latency and CPU, above 1 for throughput).  The bulk rate is
mostly the Python client's own speed; the server CPU per MB (cgroup, or
/proc) is the server's share.  Benchmarks are not tests:
nothing here passes or fails.
"""

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import h2.config
import h2.connection
import h2.events
import h2.settings

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server import (MODULES, REPO, Server, free_ports, make_cert,  # noqa: E402
                    snapshot_modules, stop_all)

sys.path.insert(0, os.path.join(REPO, "test"))
from h2x.wsframes import TEXT, frame_overhead, ws_frame  # noqa: E402

BACKEND = os.path.join(REPO, "test", "h2x", "ws_backend.py")
MODDIR = "/usr/lib/apache2/modules"


def log(msg):
    print(f"[websocket] {msg}", file=sys.stderr, flush=True)


class Client:
    """One h2c connection with a large receive window."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(
            client_side=True, header_encoding="utf-8", validate_outbound_headers=False,
            normalize_outbound_headers=False))
        self.conn.initiate_connection()
        self.conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 24})
        self.conn.increment_flow_control_window(1 << 30)
        self.flush()
        self.data = {}
        self.ended = set()
        self.status = {}

    def flush(self):
        out = self.conn.data_to_send()
        if out:
            self.sock.sendall(out)

    def pump(self, timeout=30.0):
        self.sock.settimeout(timeout)
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        for ev in self.conn.receive_data(chunk):
            if isinstance(ev, h2.events.ResponseReceived):
                self.status[ev.stream_id] = dict(ev.headers).get(":status")
            elif isinstance(ev, h2.events.DataReceived):
                self.data.setdefault(ev.stream_id, bytearray()).extend(ev.data)
                self.conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            elif isinstance(ev, (h2.events.StreamEnded, h2.events.StreamReset)):
                self.ended.add(ev.stream_id)
        self.flush()

    def connect_ws(self, path: str) -> int:
        sid = self.conn.get_next_available_stream_id()
        self.conn.send_headers(sid, [(":method", "CONNECT"), (":protocol", "websocket"),
                                     (":scheme", "http"), (":authority", "localhost"),
                                     (":path", path), ("sec-websocket-version", "13")])
        self.flush()
        while sid not in self.status and sid not in self.ended:
            self.pump()
        if self.status.get(sid) != "200":
            raise RuntimeError(f"CONNECT {path}: status {self.status.get(sid)}")
        return sid

    def close(self):
        try:
            self.conn.close_connection()
            self.flush()
        except Exception:
            pass
        self.sock.close()


class EchoSocket:
    """One WebSocket to /ws/echo on its own h2c connection."""

    MSG = ws_frame(TEXT, b"0123456789abcdef", mask=b"\0\0\0\0")

    def __init__(self, port: int):
        self.client = Client(port)
        self.sid = self.client.connect_ws("/ws/echo")

    def round_trip(self) -> float:
        c, sid = self.client, self.sid
        c.data[sid] = bytearray()
        t0 = time.perf_counter()
        c.conn.send_data(sid, self.MSG)
        c.flush()
        while len(c.data.get(sid, b"")) < 18:
            c.pump()
        return time.perf_counter() - t0

    def close(self):
        self.client.close()


def cpu_seconds(server) -> float:
    """The server's CPU time: its cpuacct cgroup when it has one (every
    process of it), else the process tree's /proc counters."""
    snap = server.cpu_snapshot()
    return snap["cgroup"] if snap["cgroup"] is not None else snap["proc"]


def percentile(sorted_values, q: float) -> float:
    return sorted_values[max(0, int(len(sorted_values) * q) - 1)]


def latency(ports: dict, messages: int, flip: bool) -> dict:
    """Round trips through every module's socket in turn, message by
    message (A B A B ..., B A B A ... when `flip`), so that all modules are
    measured under the same machine load: on this 2-core machine the
    client, the backend and httpd share the CPUs and the load drifts
    between repetitions more than the modules differ."""
    socks = {}
    try:
        for m, port in ports.items():
            socks[m] = EchoSocket(port)
        order = list(socks)[::-1] if flip else list(socks)
        rtts = {m: [] for m in socks}
        for i in range(messages):
            for m in (order if i % 2 == 0 else order[::-1]):
                rtts[m].append(socks[m].round_trip())
        return rtts
    finally:
        for s in socks.values():
            s.close()


def throughput(port: int, nbytes: int):
    """Until the last message is in: the backend then waits for the
    client's CLOSE, which is no part of the transfer."""
    c = Client(port)
    try:
        full, rest = divmod(nbytes, 65536)
        expected = nbytes + full * frame_overhead(65536) + (frame_overhead(rest) if rest else 0)
        t0 = time.perf_counter()
        sid = c.connect_ws(f"/ws/bulk/{nbytes}")
        while len(c.data.get(sid, b"")) < expected and sid not in c.ended:
            c.pump()
        elapsed = time.perf_counter() - t0
        got = len(c.data.get(sid, b""))
        if got < expected:
            raise RuntimeError(f"bulk: {got} of {expected} bytes")
        return nbytes / elapsed / 1e6
    finally:
        c.close()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--messages", type=int, default=1000)
    ap.add_argument("--bytes", type=int, default=100_000_000)
    ap.add_argument("--no-build", action="store_true")
    opts = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not opts.no_build:
        subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)

    workdir = tempfile.mkdtemp(prefix="h2xws-")
    servers = {}
    backend = None
    try:
        os.chmod(workdir, 0o755)
        docroot = os.path.join(workdir, "htdocs")
        os.makedirs(docroot)
        os.chmod(docroot, 0o755)
        events = os.path.join(workdir, "events")
        (port,) = free_ports(1)
        backend = subprocess.Popen(["/usr/bin/python3", BACKEND, str(port), events],
                                   stdout=subprocess.PIPE)
        if backend.stdout.readline().strip() != b"ready":
            raise RuntimeError("the WebSocket backend did not start")
        cert, key = make_cert(workdir)
        so_paths = snapshot_modules(workdir)
        values = {"TIMEOUT": "30", "CERT": cert, "KEY": key, "TEST_MODULE": "",
                  "EXTRA": "\n".join([
                      f"LoadModule proxy_module {MODDIR}/mod_proxy.so",
                      f"LoadModule proxy_http_module {MODDIR}/mod_proxy_http.so",
                      "H2WebSockets on",
                      f'ProxyPass "/ws/" "http://127.0.0.1:{port}/" upgrade=websocket timeout=30',
                  ])}
        for module in MODULES:
            s = Server(module, workdir, docroot, docroot, values, pin_cpu=None,
                       so_path=so_paths[module])
            servers[module] = s
            s.start()
            log(f"{module}: pid {s.pid}, h2c {s.http_port}")
        results = {m: {"p50": [], "p99": [], "mbps": [], "us_msg": [], "ms_mb": []}
                   for m in servers}
        pooled = {m: [] for m in servers}
        order = list(servers)
        ports = {m: servers[m].http_port for m in order}
        # One warm-up (threads, connections, the backend's first socket),
        # as bench/streaming does: not measured.
        latency(ports, min(200, opts.messages), False)
        for module in order:
            throughput(servers[module].http_port, min(10_000_000, opts.bytes))
        for rep in range(opts.reps):
            cpu0 = {m: cpu_seconds(servers[m]) for m in order}
            rtts = latency(ports, opts.messages, rep % 2 == 1)
            for module in order:
                used = cpu_seconds(servers[module]) - cpu0[module]
                results[module]["us_msg"].append(used / opts.messages * 1e6)
            for module in order:
                r = sorted(rtts[module])
                pooled[module].extend(r)
                results[module]["p50"].append(statistics.median(r) * 1e3)
                results[module]["p99"].append(percentile(r, 0.99) * 1e3)
            for module in (order if rep % 2 == 0 else order[::-1]):
                cpu0 = cpu_seconds(servers[module])
                results[module]["mbps"].append(throughput(servers[module].http_port, opts.bytes))
                used = cpu_seconds(servers[module]) - cpu0
                results[module]["ms_mb"].append(used / (opts.bytes / 1e6) * 1e3)
            for module in order:
                res = results[module]
                log(f"rep {rep + 1} {module:9}: rtt median {res['p50'][-1]:.3f} ms, "
                    f"p99 {res['p99'][-1]:.3f} ms, {res['us_msg'][-1]:.0f} µs CPU/message, "
                    f"{res['mbps'][-1]:.1f} MB/s, {res['ms_mb'][-1]:.2f} ms CPU/MB")
    finally:
        stop_all(servers.values(), backend, workdir)

    a, b = "mod_h2x", "mod_http2"
    med = {m: {k: statistics.median(v) for k, v in r.items()} for m, r in results.items()}
    for m in pooled:
        pooled[m].sort()
    print(f"WebSockets over HTTP/2, h2c, {opts.reps} repetitions, {opts.messages} round trips "
          f"per module each (alternating between the modules message by message), "
          f"{opts.bytes} bytes bulk (interleaved)")
    print()
    print(f"| measure | {a} | {b} | ratio {a}/{b} |")
    print("|---|---|---|---|")
    for key, label, unit in (("p50", "round trip, median", "ms"),
                             ("p99", "round trip, p99", "ms"),
                             ("us_msg", "server CPU per round trip", "µs"),
                             ("mbps", "bulk throughput", "MB/s"),
                             ("ms_mb", "server CPU per MB of bulk", "ms")):
        print(f"| {label} (median of repetitions) | {med[a][key]:.3f} {unit} | "
              f"{med[b][key]:.3f} {unit} | {med[a][key] / med[b][key]:.2f} |")
    for q, label in ((0.5, "median"), (0.99, "p99"), (0.999, "p99.9")):
        va, vb = percentile(pooled[a], q) * 1e3, percentile(pooled[b], q) * 1e3
        print(f"| round trip, {label} (all {len(pooled[a])} messages) | {va:.3f} ms | "
              f"{vb:.3f} ms | {va / vb:.2f} |")
    wins = sum(1 for x, y in zip(results[a]["p99"], results[b]["p99"]) if x <= y)
    print()
    print(f"p99 of {a} <= {b}'s in {wins} of {opts.reps} repetitions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
