#!/usr/bin/python3
"""How streams end, mod_h2x against Debian's mod_http2: what a client sees.

Usage: bench/termination [--tls] [--no-build] [--no-doc]

Starts one httpd per module from bench/httpd.conf.tmpl (the same template
as the benchmark; here with `Timeout 2`, `H2MaxSessionStreams 20`, the test
module test/mod_h2x_test and the CGIs of test/cgi-bin), runs each stream
termination case against both with the raw-frame client test/h2x/frames.py
over h2c (prior knowledge; --tls: h2 over TLS), and prints a table of the
frame shapes the client saw, with counts and when the streams ended.  The
table also goes to docs/stream-lifecycle-comparison.md (unless --no-doc).

Shapes are FrameClient.shape(): HEADERS, DATA (runs of non-empty DATA shown
once), DATA(0) for a zero-length DATA frame, RST(<code>), [ES] for
END_STREAM.  A stream that got neither END_STREAM nor RST_STREAM within the
case's wait is shown as "... left open (N s)".  Every case is bounded in
time: the stalled ones wait 2 x Timeout + 5 s at most.
"""

import argparse
import datetime
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Callable, Dict, List

BENCH = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH)
from server import (MODULES, REPO, TEST_SO, Server, make_cert, pattern_bytes,  # noqa: E402
                    snapshot_modules)

sys.path.insert(0, os.path.join(REPO, "test"))
from h2x.frames import FrameClient, error_name  # noqa: E402  (on python3-h2's hpack, hyperframe)
from core_helpers import pid_alive  # noqa: E402

TIMEOUT = 2                       # httpd's Timeout in this setup
MAX_STREAMS = 20                  # H2MaxSessionStreams in this setup
STALL_WAIT = 2 * TIMEOUT + 5      # how long a stalled stream may take to end
SHORT_WAIT = 5                    # how long an ordinary response may take
DOC = os.path.join(REPO, "docs", "stream-lifecycle-comparison.md")


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class Outcome:
    """What the client saw in one case: shape -> count, end times, notes."""

    def __init__(self):
        self.shapes: Counter = Counter()
        self.end_times: Dict[str, List[float]] = {}
        self.notes: List[str] = []

    def add_streams(self, c: FrameClient, sids: List[int], waited: float):
        for sid in sids:
            rec = c.stream(sid)
            shape = c.shape(sid) or "(nothing)"
            if rec.ended_by == "GOAWAY":
                shape += " ended by GOAWAY (above its last stream id)"
            elif rec.ended:
                self.end_times.setdefault(shape, []).append(rec.end_time - rec.start_time)
            elif c.closed:
                shape += f" connection closed, no END_STREAM/RST ({c.close_reason})"
            else:
                shape += f" … left open ({waited:.0f} s)"
            self.shapes[shape] += 1
        if c.goaways:
            g = c.goaways[0]
            self.notes.append(f"GOAWAY(last={g.last_stream_id}, {error_name(g.error_code)})")

    def cell(self) -> str:
        parts = []
        for shape, n in self.shapes.most_common():
            t = self.end_times.get(shape)
            when = ""
            if t:
                m = statistics.median(t)
                when = f" after {m * 1000:.0f} ms" if m < 1 else f" after {m:.1f} s"
            parts.append(f"{n}× `{shape}`{when}")
        return "<br>".join(parts + self.notes)


def client(server: Server, tls: bool) -> FrameClient:
    c = FrameClient("127.0.0.1", server.https_port if tls else server.http_port, tls=tls,
                    timeout=10)
    c.connect()
    c.wait_settings(5)
    return c


def wait_streams(c: FrameClient, sids: List[int], limit: float) -> float:
    """Read until every stream in `sids` ended or `limit` seconds passed."""
    t0 = time.monotonic()
    c.run(lambda cl: all(cl.stream(s).ended for s in sids), limit)
    return time.monotonic() - t0


# -- the cases ----------------------------------------------------------------------

def simple(path: str, method: str = "GET", count: int = 3, headers=None,
           wait: float = SHORT_WAIT) -> Callable:
    """`count` concurrent requests for `path` on one connection."""
    def case(server, tls, ctx):
        out = Outcome()
        c = client(server, tls)
        try:
            hdrs = headers(server, tls) if callable(headers) else headers
            sids = [c.request(method, path, headers=hdrs) for _ in range(count)]
            waited = wait_streams(c, sids, wait)
            out.add_streams(c, sids, waited)
        finally:
            c.close()
        return out
    return case


def stalled_separate(server, tls, ctx) -> Outcome:
    """5 connections, one stalled CGI stream each, all at once."""
    out = Outcome()
    clients = [client(server, tls) for _ in range(5)]
    sids = [c.request("GET", "/cgi-bin/stall.py?n=100&s=20") for c in clients]
    waited = {}

    def wait(i):
        waited[i] = wait_streams(clients[i], [sids[i]], STALL_WAIT)
    threads = [threading.Thread(target=wait, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, c in enumerate(clients):
        out.add_streams(c, [sids[i]], waited[i])
        c.close()
    return out


def stalled_concurrent(server, tls, ctx) -> Outcome:
    """10 stalled CGI streams on one connection."""
    out = Outcome()
    c = client(server, tls)
    try:
        sids = [c.request("GET", f"/cgi-bin/stall.py?n=100&s=20&i={i}") for i in range(10)]
        waited = wait_streams(c, sids, STALL_WAIT)
        out.add_streams(c, sids, waited)
    finally:
        c.close()
    return out


def etag_headers(server, tls):
    """If-None-Match with the current ETag of /1k.txt (so the answer is 304)."""
    c = client(server, tls)
    try:
        sid = c.request("GET", "/1k.txt")
        c.wait_stream_end(sid, SHORT_WAIT)
        etag = c.stream(sid).header("etag")
    finally:
        c.close()
    return [("if-none-match", etag or '"none"')]


def reset_slow_cgi(server, tls, ctx) -> Outcome:
    """Reset a streaming CGI after its first DATA; is the process gone in 5 s?"""
    out = Outcome()
    pidfile = os.path.join(ctx["piddir"], f"slow-{server.module}-{time.monotonic_ns()}.pid")
    c = client(server, tls)
    try:
        sid = c.request("GET", f"/cgi-bin/slow.py?ms=100&s=20&pidfile={pidfile}")
        c.run(lambda cl: any(f.type == "DATA" and f.length for f in cl.stream(sid).frames)
              or cl.stream(sid).ended, SHORT_WAIT)
        pid = None
        for _ in range(20):
            try:
                with open(pidfile) as f:
                    pid = int(f.read().strip())
                break
            except (OSError, ValueError):
                time.sleep(0.1)
        c.reset(sid)
        t0 = time.monotonic()
        gone_after = None
        while pid is not None and time.monotonic() - t0 < 5:
            c.run(lambda cl: False, 0.1)          # keep reading (WINDOW_UPDATE, PING)
            if not pid_alive(pid):
                gone_after = time.monotonic() - t0
                break
        if pid is None:
            out.notes.append(f"`{c.shape(sid)}`, no pidfile from the CGI")
        elif gone_after is None:
            out.notes.append("CGI still running 5 s after RST_STREAM(CANCEL)")
        else:
            out.notes.append(f"CGI gone {gone_after:.1f} s after RST_STREAM(CANCEL)")
        # The connection must still work after the reset.
        sid2 = c.request("GET", "/1k.txt")
        ok = c.wait_stream_end(sid2, SHORT_WAIT) and c.stream(sid2).status == 200
        out.notes.append("connection still serves" if ok else "connection unusable afterwards")
    finally:
        c.close()
    return out


def over_max_streams(server, tls, ctx) -> Outcome:
    """After the SETTINGS exchange, open MAX_CONCURRENT_STREAMS + 5 streams."""
    out = Outcome()
    c = client(server, tls)
    try:
        c.run(lambda cl: cl.settings_acks > 0, SHORT_WAIT)   # our SETTINGS acknowledged
        limit = c.peer_settings.get(3)                        # MAX_CONCURRENT_STREAMS
        n = (limit or MAX_STREAMS) + 5
        sids = [c.request("GET", f"/h2x/delay?s=1&n=100&i={i}") for i in range(n)]
        waited = wait_streams(c, sids, 10)
        out.add_streams(c, sids, waited)
        out.notes.insert(0, f"SETTINGS_MAX_CONCURRENT_STREAMS={limit}, {n} streams opened")
    finally:
        c.close()
    return out


CASES = [
    ("CGI stalled mid-body past Timeout (stall.py), 1 stream × 5 connections",
     stalled_separate),
    ("CGI stalled mid-body past Timeout, 10 concurrent streams on one connection",
     stalled_concurrent),
    ("error bucket after headers (h2x-error-bucket, 100 bytes)",
     simple("/h2x/error-bucket?n=100")),
    ("short Content-Length (h2x-short-cl: cl=1000, 100 bytes)",
     simple("/h2x/short-cl?cl=1000&n=100")),
    ("empty 200 from a CGI (empty.py, Content-Length: 0)", simple("/cgi-bin/empty.py")),
    ("204 (h2x-status?s=204)", simple("/h2x/status?s=204")),
    ("HEAD of a 1 KB file", simple("/1k.txt", method="HEAD")),
    ("304 (If-None-Match on a 1 KB file)", simple("/1k.txt", headers=etag_headers)),
    ("trailers-only (h2x-trailers?only=1&t=grpc-status:13)",
     simple("/h2x/trailers?only=1&t=grpc-status:13&ct=application/grpc")),
    ("client RST_STREAM of a streaming CGI (slow.py)", reset_slow_cgi),
    (f"more streams than H2MaxSessionStreams ({MAX_STREAMS}) after the SETTINGS ACK "
     "(h2x-delay, 1 s each)", over_max_streams),
]


# -- main ---------------------------------------------------------------------------

def markdown(rows: List[Dict], meta: Dict) -> str:
    lines = [
        "# Stream termination: mod_h2x vs mod_http2",
        "",
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}` ({meta['transport']}), mod_h2x at {meta['commit']}, "
        f"{meta['httpd']} with Debian's mod_http2",
        f"- setup: bench/httpd.conf.tmpl with `Timeout {TIMEOUT}`, "
        f"`H2MaxSessionStreams {MAX_STREAMS}`, mod_cgid, the test module "
        "(test/mod_h2x_test) and test/cgi-bin; the two instances differ only in the "
        "LoadModule line",
        "- client: the raw-frame client test/h2x/frames.py; shapes as "
        "`FrameClient.shape()`: runs of DATA shown once, `DATA(0)` = zero-length DATA, "
        "`[ES]` = END_STREAM, `RST(code)` = RST_STREAM; \"after N s\" is the median time "
        "from the request to the stream's end; \"left open\" = neither END_STREAM nor "
        f"RST_STREAM within the wait (stalled cases: {STALL_WAIT} s, others: "
        f"{SHORT_WAIT} s)",
        "",
        "| case | mod_h2x | mod_http2 |",
        "|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['case']} | {row['mod_h2x']} | {row['mod_http2']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tls", action="store_true", help="h2 over TLS instead of h2c")
    ap.add_argument("--no-build", action="store_true", help="skip make and the test module")
    ap.add_argument("--no-doc", action="store_true",
                    help="do not write docs/stream-lifecycle-comparison.md")
    opts = ap.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not opts.no_build:
        subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
        subprocess.run([os.path.join(REPO, "test", "mod_h2x_test", "build.sh")], check=True,
                       stdout=subprocess.DEVNULL)
    if not os.path.exists(TEST_SO):
        print("termination: the test module is needed (test/mod_h2x_test/build.sh)",
              file=sys.stderr)
        return 1

    workdir = tempfile.mkdtemp(prefix="h2xterm-")
    piddir = tempfile.mkdtemp(prefix="h2xterm-pids-", dir="/tmp")
    servers: Dict[str, Server] = {}
    rows = []
    try:
        os.chmod(workdir, 0o755)
        docroot, cgibin = os.path.join(workdir, "htdocs"), os.path.join(workdir, "cgi-bin")
        os.makedirs(docroot)
        with open(os.path.join(docroot, "1k.txt"), "wb") as f:
            f.write(pattern_bytes(1024))
        shutil.copytree(os.path.join(REPO, "test", "cgi-bin"), cgibin)
        for d in (docroot, cgibin):
            os.chmod(d, 0o755)
        for name in os.listdir(cgibin):
            os.chmod(os.path.join(cgibin, name), 0o755)
        os.chmod(piddir, 0o777)      # the CGIs write their pid files as www-data
        cert, key = make_cert(workdir)
        so_paths = snapshot_modules(workdir)
        values = {"TIMEOUT": str(TIMEOUT), "CERT": cert, "KEY": key,
                  "EXTRA": f"H2MaxSessionStreams {MAX_STREAMS}",
                  "TEST_MODULE": f'LoadModule h2x_test_module "{TEST_SO}"'}
        for module in MODULES:
            s = Server(module, workdir, docroot, cgibin, values, pin_cpu=None,
                       so_path=so_paths[module])
            servers[module] = s
            s.start()
            log(f"{module}: pid {s.pid}, h2c {s.http_port}, h2 {s.https_port}")
        ctx = {"piddir": piddir}
        for title, case in CASES:
            row = {"case": title}
            for module, s in servers.items():
                t0 = time.monotonic()
                try:
                    row[module] = case(s, opts.tls, ctx).cell()
                except Exception as e:      # a case that breaks is a result too
                    row[module] = f"client error: {type(e).__name__}: {e}"
                log(f"{module:9} {time.monotonic() - t0:4.1f}s  {title}: {row[module]}")
            rows.append(row)
    finally:
        for s in servers.values():
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(piddir, ignore_errors=True)

    def first_line(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                  timeout=10).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired):
            return ""

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "command": "bench/termination" + "".join(" " + a for a in (argv or sys.argv[1:])),
            "transport": "h2 over TLS" if opts.tls else "h2c, prior knowledge",
            "commit": first_line(["git", "rev-parse", "--short", "HEAD"]),
            "httpd": first_line(["/usr/sbin/apache2", "-v"]).replace("Server version: ", "")}
    md = markdown(rows, meta)
    print(md)
    if not opts.no_doc:
        with open(DOC, "w") as f:
            f.write(md)
        log(f"wrote {os.path.relpath(DOC, REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
