"""New connections while others are busy: mod_h2x against Debian's mod_http2.

One httpd per module (bench/httpd.conf.tmpl, pinned to CPU 0).  While
h2load keeps `--busy` connections busy with 1 KB requests over h2c (one
request at a time each, pinned to CPU 1), this opens `--conns` new
connections at once and measures, per connection, the time from sending
its first bytes to the server's first byte: the HTTP/2 preface (answered
by the server's SETTINGS as soon as its session runs) or, with --h1, an
HTTP/1.1 GET (answered by its response).  That is how long a new client
waits for the server to take up its connection - the time the event MPM
needs to hand it to a thread and the module to start.  --busy 0 measures
the same on idle servers.

Found on 2026-11-30 (issue 11, 1000 connections' max latency): with 200
busy h2c connections, 500 new connections waited p50 1.2-3.9 s for
mod_h2x against 0.12-0.22 s for mod_http2, HTTP/1.1 ones alike: busy
connections kept their MPM threads between requests and starved the
MPM's listener of CPU.  Since idle sessions go straight back to the MPM,
mod_h2x takes them up at p50 0.04-0.18 s (docs/performance.md).

Benchmarks are not tests: nothing here passes or fails.
"""

import argparse
import os
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from server import MODULES, REPO, Server, make_cert, snapshot_modules, stop_all  # noqa: E402

# The client preface and an empty SETTINGS frame (RFC 9113 §3.4).
H2_OPENING = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes.fromhex("000000040000000000")
H1_OPENING = b"GET /1k.txt HTTP/1.1\r\nHost: localhost\r\n\r\n"


def log(msg: str):
    print(f"[newconn] {msg}", file=sys.stderr, flush=True)


def first_byte_times(port: int, conns: int, opening: bytes, limit: float = 30.0) -> List[float]:
    """Open `conns` connections at once; seconds from each one's opening
    bytes to the server's first byte (connections without one are left out)."""
    sel = selectors.DefaultSelector()
    socks = []
    sent: Dict[int, float] = {}
    first: Dict[int, float] = {}
    try:
        for i in range(conns):
            s = socket.socket()
            s.setblocking(False)
            try:
                s.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            socks.append(s)
            sel.register(s, selectors.EVENT_WRITE, i)
        deadline = time.monotonic() + limit
        while len(first) < conns and time.monotonic() < deadline:
            for key, events in sel.select(timeout=1):
                s, i = key.fileobj, key.data
                if events & selectors.EVENT_WRITE and i not in sent:
                    s.send(opening)
                    sent[i] = time.monotonic()
                    sel.modify(s, selectors.EVENT_READ, i)
                elif events & selectors.EVENT_READ:
                    if s.recv(65536) and i not in first:
                        first[i] = time.monotonic() - sent[i]
                    sel.unregister(s)
    finally:
        for s in socks:
            s.close()
    return sorted(first.values())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--conns", type=int, default=500, help="new connections per measurement")
    ap.add_argument("--busy", type=int, default=200, help="busy h2c connections meanwhile")
    ap.add_argument("--h1", action="store_true", help="new connections speak HTTP/1.1")
    ap.add_argument("--no-build", action="store_true")
    opts = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not opts.no_build:
        subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    opening = H1_OPENING if opts.h1 else H2_OPENING

    workdir = tempfile.mkdtemp(prefix="h2xnewconn-")
    servers: Dict[str, Server] = {}
    results: Dict[str, List[List[float]]] = {}
    try:
        os.chmod(workdir, 0o755)
        docroot = os.path.join(workdir, "htdocs")
        os.makedirs(docroot)
        os.chmod(docroot, 0o755)
        with open(os.path.join(docroot, "1k.txt"), "w") as f:
            f.write("x" * 1024)
        os.chmod(os.path.join(docroot, "1k.txt"), 0o644)
        cert, key = make_cert(workdir)
        so_paths = snapshot_modules(workdir)
        for module in MODULES:
            s = Server(module, workdir, docroot, docroot, {
                "TIMEOUT": "30", "CERT": cert, "KEY": key, "TEST_MODULE": "", "EXTRA": ""},
                pin_cpu=0, so_path=so_paths[module])
            servers[module] = s
            s.start()
            results[module] = []
            log(f"{module}: pid {s.pid}, h2c {s.http_port}")
        time.sleep(2)      # the MPM children start their threads
        order = list(servers)
        for rep in range(opts.reps):
            for module in (order if rep % 2 == 0 else order[::-1]):
                s = servers[module]
                busy = None
                if opts.busy:
                    busy = subprocess.Popen(
                        ["taskset", "-c", "1", "h2load", "-c", str(opts.busy), "-m", "1",
                         "-D", "6", s.url(False, "/1k.txt")],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                    time.sleep(2)
                times = first_byte_times(s.http_port, opts.conns, opening)
                if busy:
                    busy.wait()
                results[module].append(times)
                log(f"rep {rep + 1} {module:9}: {len(times)} of {opts.conns} answered, "
                    f"p50 {pct(times, 0.5):.1f} ms, p90 {pct(times, 0.9):.1f} ms, "
                    f"max {pct(times, 1.0):.1f} ms")
                time.sleep(1)
    finally:
        stop_all(servers.values(), None, workdir)

    what = "HTTP/1.1 GET" if opts.h1 else "HTTP/2 preface"
    print(f"New connections ({opts.conns}, {what}) while {opts.busy} h2c connections are busy, "
          f"{opts.reps} interleaved repetitions ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")
    print()
    print("| server | p50 (ms) per repetition | p90 | max |")
    print("|---|---|---|---|")
    for module, reps in results.items():
        print(f"| {module} | " + ", ".join(f"{pct(t, 0.5):.0f}" for t in reps) + " | "
              + ", ".join(f"{pct(t, 0.9):.0f}" for t in reps) + " | "
              + ", ".join(f"{pct(t, 1.0):.0f}" for t in reps) + " |")
    return 0


def pct(values: List[float], q: float) -> float:
    """The q-quantile of sorted `values`, in milliseconds (0 if empty)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * q))] * 1000


if __name__ == "__main__":
    sys.exit(main())
