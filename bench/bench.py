#!/usr/bin/python3
"""mod_h2x against Debian's mod_http2: throughput, CPU, latency, memory.

Usage: bench/run [--quick] [--reps N] [--only 1k,cgi,...] [--no-build] [--keep]
                 [--no-nginx]

Builds mod_h2x (and the test module), generates a document root, starts one
httpd per module from bench/httpd.conf.tmpl (the two configs differ only in
the LoadModule line), pinned to CPU 0, and runs every workload with h2load
(pinned to CPU 1) against both, interleaved (A, B, then B, A, ...), over
h2c (prior knowledge) and h2 (TLS, ALPN).  Every repetition starts on fresh
servers and first measures the RSS of 500 idle HTTP/2 connections per
module.  Results: a markdown table on stdout and in
bench/results/latest.md, the raw and summarised numbers in
bench/results/latest.json and a chart of the ratios in
bench/results/ratios.png.

When Debian's nginx is installed (scripts/install-deps installs it) and
--no-nginx is not given, a private nginx from bench/nginx.conf.tmpl (one
worker process, also pinned to CPU 0) serves the same document root as a
reference: it is the third server of the interleaving (A, B, N, then N, B,
A, ...), for the static workloads and the idle-connection memory only.

Server CPU is the user+system time of all server processes (and their
children, e.g. CGI processes) during one h2load run, per successful request.
See server.py for how it is read.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import h2load                                          # noqa: E402
import idle                                            # noqa: E402
import report                                          # noqa: E402
import streaming                                       # noqa: E402
from server import (PROFILES, REPO, TEST_SO, BaseServer, NginxServer, Server,  # noqa: E402
                    ServerError, make_cert, nginx_version, pattern_bytes, snapshot_modules)

RESULTS = os.path.join(REPO, "bench", "results")
MODULE_A, MODULE_B = "mod_h2x", "mod_http2"
H1 = "httpd HTTP/1.1"          # the HTTP/1.1 keep-alive series (the floor)
NGINX = "nginx (reference)"    # Debian's nginx, static workloads only
TRANSPORTS = ("h2c", "h2")     # h2c: plain, prior knowledge; h2: TLS + ALPN


@dataclass
class Workload:
    """One h2load workload: `args` without -n; n_full/n_quick requests."""
    key: str
    title: str
    path: str
    args: List[str]
    n_full: int
    n_quick: int
    h1: bool = False            # also run the HTTP/1.1 keep-alive series
    static: bool = False        # static files: nginx serves it too (the reference)
    upload: bool = False        # POST the 1 MB upload file (h2load -d)
    timeout: float = 120.0      # give up on one h2load run after this long
    extra: Dict = field(default_factory=dict)

    def n(self, quick: bool) -> int:
        return self.n_quick if quick else self.n_full


# Request counts are sized so that one run takes a few seconds on this kind
# of machine (2 cores) with the slower of the two modules.
WORKLOADS = [
    Workload("1k", "1 KB static", "/1k.txt", ["-c", "16", "-m", "32"], 100000, 10000, h1=True,
             static=True),
    Workload("100k", "100 KB static", "/100k.bin", ["-c", "8", "-m", "8"], 20000, 2000,
             static=True),
    Workload("10m", "10 MB static", "/10m.bin", ["-c", "2", "-m", "1"], 200, 20, static=True),
    Workload("cgi", "tiny CGI", "/cgi-bin/tiny.sh", ["-c", "8", "-m", "8"], 3000, 300),
    Workload("post", "1 MB POST, discarded", "/discard?discard=1", ["-c", "4", "-m", "4"],
             1500, 150, upload=True),
    Workload("c200", "200 connections x 1 stream", "/1k.txt", ["-c", "200", "-m", "1"],
             40000, 4000, h1=True, static=True),
    Workload("c1000", "1000 connections x 1 stream", "/1k.txt", ["-c", "1000", "-m", "1"],
             40000, 5000, h1=True, static=True),
]

IDLE_CONNECTIONS = 500


def log(msg: str):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- preparation -----------------------------------------------------------------

def build(skip: bool):
    """scripts/install-deps (if present), `make`, the test module."""
    if skip:
        return
    deps = os.path.join(REPO, "scripts", "install-deps")
    if os.access(deps, os.X_OK):
        log("scripts/install-deps")
        subprocess.run([deps], cwd=REPO, check=True, stdout=sys.stderr)
    log("make")
    subprocess.run(["make"], cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    test_build = os.path.join(REPO, "test", "mod_h2x_test", "build.sh")
    if os.access(test_build, os.X_OK):
        if subprocess.run([test_build], cwd=REPO, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL).returncode != 0:
            log("test module did not build: the upload workload uses a CGI")


TINY_CGI = "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\nhello from a tiny CGI\\n'\n"
DISCARD_CGI = ("#!/bin/sh\ncat >/dev/null\n"
               "printf 'Content-Type: text/plain\\r\\n\\r\\ndiscarded\\n'\n")


def make_content(workdir: str) -> Dict[str, str]:
    """Document root, cgi-bin and the 1 MB upload file under `workdir`."""
    docroot = os.path.join(workdir, "htdocs")
    cgibin = os.path.join(workdir, "cgi-bin")
    os.makedirs(docroot)
    os.makedirs(cgibin)
    for name, size in (("1k.txt", 1024), ("100k.bin", 100 * 1024),
                       ("10m.bin", 10 * 1024 * 1024)):
        with open(os.path.join(docroot, name), "wb") as f:
            f.write(pattern_bytes(size))
    with open(os.path.join(docroot, "index.html"), "w") as f:
        f.write("<html><body>mod_h2x benchmark</body></html>\n")
    for name, text in (("tiny.sh", TINY_CGI), ("discard.sh", DISCARD_CGI)):
        path = os.path.join(cgibin, name)
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o755)
    upload = os.path.join(workdir, "upload-1m.bin")
    with open(upload, "wb") as f:
        f.write(pattern_bytes(1024 * 1024))
    for d in (workdir, docroot, cgibin):
        os.chmod(d, 0o755)
    return {"docroot": docroot, "cgibin": cgibin, "upload": upload}


def machine_info() -> Dict[str, str]:
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def out(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO,
                                   timeout=10).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def first_line(cmd):
        text = out(cmd)
        return text.splitlines()[0] if text else ""

    return {
        "cores": str(os.cpu_count()),
        "cpu_model": model,
        "kernel": platform.release(),
        "httpd": first_line(["/usr/sbin/apache2", "-v"]),
        "h2load": first_line(["h2load", "--version"]),
        "mod_http2": out(["dpkg-query", "-W", "-f=${Version}", "apache2-bin"]),
        "commit": out(["git", "rev-parse", "--short", "HEAD"]),
        "taskset": "yes" if shutil.which("taskset") and (os.cpu_count() or 1) >= 2 else "no",
    }


def nginx_reference(disabled: bool, needed: bool) -> Dict:
    """Whether this run has the nginx reference: {'version': 'nginx/1.22.1'
    or None, 'note': why not}.  Logs the note when nginx is missing."""
    if disabled:
        return {"version": None, "note": "disabled with --no-nginx"}
    if not needed:
        return {"version": None, "note": "no static workload selected"}
    version = nginx_version()
    if version is None:
        note = "nginx is not installed (scripts/install-deps installs it)"
        log(f"note: {note}: no nginx reference column")
        return {"version": None, "note": note}
    return {"version": version, "note": ""}


# -- measurements -------------------------------------------------------------------

def measure(server: BaseServer, wl: Workload, transport: str, series: str, n: int,
            upload: str) -> Dict:
    """One h2load run against `server`, with the server's CPU time around it."""
    args = list(wl.args)
    if series == H1:
        args = ["--h1", "-c", args[args.index("-c") + 1]]   # keep-alive, no pipelining
    if wl.upload:
        args += ["-d", upload]
    args += ["-n", str(n)]
    before = server.cpu_snapshot()
    res = h2load.run(server.url(transport == "h2", wl.path), args, wl.timeout)
    time.sleep(0.3)              # let the server finish closing connections
    after = server.cpu_snapshot()
    ok = res.get("status_2xx") or 0
    if res.get("failed") is None:
        res["failed"] = n - ok
    for src in ("cgroup", "proc"):
        if before[src] is not None and after[src] is not None:
            res[f"cpu_{src}_s"] = after[src] - before[src]
    cpu = res.get("cpu_cgroup_s", res.get("cpu_proc_s"))
    res["cpu_s"] = cpu
    res["cpu_us_per_req"] = cpu * 1e6 / ok if ok and cpu is not None else None
    res.update(workload=wl.key, transport=transport, series=series, n=n)
    return res


def measure_memory(server: BaseServer, transport: str, count: int) -> Dict:
    """RSS growth of the server with `count` idle HTTP/2 connections.

    bytes_per_conn is all of it; state_bytes_per_conn leaves out the growth
    of the thread stacks.  On fresh servers each of these connections is
    served (preface, then the client's SETTINGS ACK) by MPM threads that
    mostly never ran a job before, and each such thread's stack grows by a
    page or more and keeps it: a one-time cost per thread, bounded by
    ThreadsPerChild, not state the connection holds.  Measured 2026-12-02
    with three batches of 500 connections held open one after the other on
    one server: the stacks grew by 7.6, 0.6 and 0.0 KiB per connection of
    each batch for mod_h2x (6.8, 1.0, 0.2 for mod_http2) while the rest
    stayed at ~30 (~67) KiB per connection (docs/performance.md)."""
    port = server.https_port if transport == "h2" else server.http_port
    time.sleep(0.5)
    before, stack_before = server.rss_bytes(), server.stack_rss_bytes()
    socks = idle.open_idle(port, count, tls=transport == "h2")
    try:
        time.sleep(1.5)          # let the server settle (per-connection state is set up)
        after, stack_after = server.rss_bytes(), server.stack_rss_bytes()
    finally:
        idle.close_all(socks)
    time.sleep(0.5)
    stack = (stack_after - stack_before) / count
    per_conn = (after - before) / count
    return {"module": server.name, "transport": transport, "connections": count,
            "rss_before": before, "rss_after": after,
            "bytes_per_conn": per_conn, "stack_bytes_per_conn": stack,
            "state_bytes_per_conn": per_conn - stack}


def warm_up(server: BaseServer):
    """Start the server's worker threads, pools and TLS session cache, and
    check that h2c and h2 are really spoken."""
    for transport in TRANSPORTS:
        res = h2load.run(server.url(transport == "h2", "/1k.txt"),
                         ["-c", "16", "-m", "8", "-n", "2000"], 60)
        if res.get("status_2xx") != 2000:
            raise ServerError(f"{server.name} {transport}: warm-up failed: "
                              f"{res.get('error') or res}\n{server.log_tail()}")


# -- main -----------------------------------------------------------------------------

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="one repetition with small request counts (< 2 minutes)")
    ap.add_argument("--reps", type=int, help="repetitions (default 3, 1 with --quick)")
    ap.add_argument("--only", help="comma-separated workload keys: "
                    + ",".join(w.key for w in WORKLOADS) + ",mem,streaming")
    ap.add_argument("--no-build", action="store_true", help="skip install-deps and make")
    ap.add_argument("--keep", action="store_true", help="keep the temporary server roots")
    ap.add_argument("--no-nginx", action="store_true",
                    help="no nginx reference for the static workloads")
    ap.add_argument("--profile", choices=PROFILES, default="minimal",
                    help="httpd configuration: 'minimal' (only the modules the workloads"
                    " need, the default) or 'debian' (Debian's stock module set and"
                    " configuration files, access log on; see bench/README.md)")
    ap.add_argument("--out", default=RESULTS, help="results directory (bench/results)")
    opts = ap.parse_args(argv)
    reps = opts.reps or (1 if opts.quick else 3)
    only = set(opts.only.split(",")) if opts.only else None
    workloads = [w for w in WORKLOADS if only is None or w.key in only]
    do_memory = only is None or "mem" in only
    do_streaming = only is None or "streaming" in only
    reference = nginx_reference(opts.no_nginx, do_memory or any(w.static for w in workloads))

    # SIGTERM (e.g. from `timeout`) unwinds like Ctrl-C, so the servers
    # this run started are stopped by the finally clause below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    t0 = time.monotonic()
    build(opts.no_build)
    workdir = tempfile.mkdtemp(prefix="h2xbench-")
    servers: Dict[str, BaseServer] = {}
    raw: List[Dict] = []
    memory: List[Dict] = []
    have_test = os.path.exists(TEST_SO)
    try:
        content = make_content(workdir)
        cert, key = make_cert(workdir)
        so_paths = snapshot_modules(workdir)
        values = {"TIMEOUT": "30", "EXTRA": "", "CERT": cert, "KEY": key,
                  "TEST_MODULE": f'LoadModule h2x_test_module "{TEST_SO}"' if have_test else ""}
        if not have_test:
            for w in workloads:
                if w.key == "post":
                    w.path = "/cgi-bin/discard.sh"
        def fresh(name: str):
            """(Re)start the server `name` (a module or NGINX), warm it up."""
            if name in servers:
                servers[name].stop()
            if name == NGINX:
                s: BaseServer = NginxServer(workdir, content["docroot"], values, name=NGINX)
            else:
                s = Server(name, workdir, content["docroot"], content["cgibin"], values,
                           so_path=so_paths[name], profile=opts.profile)
            servers[name] = s
            s.start()
            log(f"{name}: pid {s.pid}, h2c port {s.http_port}, h2 port {s.https_port}"
                f", cpu from {'cgroup + /proc' if s.cgroup else '/proc'}")
            warm_up(s)

        names = [MODULE_A, MODULE_B] + ([NGINX] if reference["version"] else [])
        for rep in range(reps):
            # Interleave: A B (N) in even repetitions, (N) B A in odd ones.
            order = names if rep % 2 == 0 else names[::-1]
            # Fresh servers for every repetition: after the 1000-connection
            # load, freed heap memory is reused and idle connections would
            # seem to cost (almost) nothing.
            for module in order:
                fresh(module)
            if do_memory:
                for ti, transport in enumerate(TRANSPORTS):
                    if ti:
                        # Every transport on fresh servers: closed idle
                        # connections leave their memory to the process
                        # (recycled connection pools keep their blocks, the
                        # heap keeps freed chunks, worker threads keep the
                        # stack pages they touched), and the next batch
                        # reuses it: measured after h2c, the h2 batch only
                        # showed what it needed beyond what h2c had left
                        # (mod_http2: 74 KiB h2c, then +0 for TLS).
                        for module in order:
                            fresh(module)
                    for module in order:
                        m = measure_memory(servers[module], transport, IDLE_CONNECTIONS)
                        m["rep"] = rep
                        memory.append(m)
                        log(f"rep {rep + 1}/{reps} memory {transport} {module}: "
                            f"{m['bytes_per_conn'] / 1024:.1f} KiB/conn")
            for wl in workloads:
                for transport in TRANSPORTS:
                    series = [name for name in order if wl.static or name != NGINX] \
                        + ([H1] if wl.h1 else [])
                    for name in series:
                        server = servers[MODULE_B if name == H1 else name]
                        res = measure(server, wl, transport, name, wl.n(opts.quick),
                                      content["upload"])
                        res["rep"] = rep
                        raw.append(res)
                        cpu = res["cpu_us_per_req"]
                        log(f"rep {rep + 1}/{reps} {wl.key:5} {transport:3} {name:17} "
                            f"{res['rps'] or 0:9.0f} req/s  "
                            f"{cpu if cpu is not None else float('nan'):8.1f} us/req  "
                            f"failed {res['failed']}"
                            + (f"  ERROR {res['error']}" if res.get("error") else ""))
    finally:
        for s in servers.values():
            s.stop()
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            log(f"kept {workdir}")

    stream_result = None
    if do_streaming:
        # bench/streaming's cases (issue 11, point 1), medians of 5 as the
        # issue asks (1 with --quick); its servers are not pinned.
        log("streaming cases (bench/streaming)")
        stream_result = streaming.run(1 if opts.quick else max(reps, 5))

    cmd = "bench/run" + ("".join(" " + a for a in (argv if argv is not None else sys.argv[1:])))
    meta = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": cmd,
        "quick": opts.quick,
        "profile": opts.profile,
        "reps": reps,
        "machine": machine_info(),
        "idle_connections": IDLE_CONNECTIONS,
        "cpu_source": "cgroup" if any(r.get("cpu_cgroup_s") is not None for r in raw)
        else "proc",
        "discard_handler": "h2x-echo?discard=1 (test module)" if have_test
        else "cgi-bin/discard.sh",
        "h1_server": MODULE_B,
        "reference": reference,
        "duration_s": round(time.monotonic() - t0, 1),
        "workloads": [{"key": w.key, "title": w.title, "path": w.path,
                       "args": w.args + (["-d", "<1 MB file>"] if w.upload else [])
                       + ["-n", str(w.n(opts.quick))], "h1": w.h1, "static": w.static}
                      for w in workloads],
    }
    summary = report.summarize(raw, memory, meta, MODULE_A, MODULE_B, H1,
                               NGINX if reference["version"] else None)
    os.makedirs(opts.out, exist_ok=True)
    md = report.markdown(summary)
    if stream_result:
        md += "\n## Streaming and big bodies (bench/streaming)\n\n" \
            + streaming.markdown(stream_result)
    with open(os.path.join(opts.out, "latest.md"), "w") as f:
        f.write(md)
    with open(os.path.join(opts.out, "latest.json"), "w") as f:
        json.dump({"meta": meta, "summary": summary["rows"], "memory": summary["memory"],
                   "targets": summary["targets"], "raw": raw, "raw_memory": memory,
                   "streaming": stream_result},
                  f, indent=1, default=str)
    chart = report.chart(summary, os.path.join(opts.out, "ratios.png"))
    print(md)
    log(f"done in {time.monotonic() - t0:.0f}s; results in {opts.out}"
        + ("" if chart else " (no chart: matplotlib missing)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
