"""Running h2load and reading its summary.

run() starts h2load (pinned to CPU 1 with taskset when available) and
parse() turns its text summary into numbers:

    finished in 1.23s, 8130.08 req/s, 9.54MB/s
    requests: 10000 total, 10000 started, 10000 done, 10000 succeeded, 0 failed, ...
    status codes: 10000 2xx, 0 3xx, 0 4xx, 0 5xx
                         min         max         mean         sd        +/- sd
    time for request:      123us     12.34ms      1.23ms       456us    78.90%
"""

import re
import subprocess
from typing import Dict, List, Optional

from server import have_taskset, raise_nofile

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}   # to milliseconds


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if not m:
        raise ValueError(f"not a duration: {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse(out: str) -> Dict[str, Optional[float]]:
    """rps, total, done, succeeded, failed (every request without a 2xx),
    errored, lat_mean_ms, lat_max_ms; None where h2load did not say."""
    res: Dict[str, Optional[float]] = {"rps": None, "total": None, "done": None,
                                       "succeeded": None, "failed": None, "errored": None,
                                       "status_2xx": None, "lat_mean_ms": None,
                                       "lat_max_ms": None, "elapsed_s": None}
    m = re.search(r"finished in ([\d.]+)(us|ms|s), ([\d.]+) req/s", out)
    if m:
        res["elapsed_s"] = _ms(m.group(1) + m.group(2)) / 1e3
        res["rps"] = float(m.group(3))
    m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                  r"(\d+) failed, (\d+) errored", out)
    if m:
        res["total"], _, res["done"], res["succeeded"], failed, res["errored"] = \
            (int(x) for x in m.groups())
    m = re.search(r"status codes: (\d+) 2xx", out)
    if m:
        res["status_2xx"] = int(m.group(1))
    if res["total"] is not None:
        # A request failed unless it got a 2xx: h2load's own "failed" plus
        # requests that never finished or got another status.
        res["failed"] = res["total"] - (res["status_2xx"] or 0)
    m = re.search(r"time for request:\s+(\S+)\s+(\S+)\s+(\S+)", out)
    if m:
        res["lat_max_ms"] = _ms(m.group(2))
        res["lat_mean_ms"] = _ms(m.group(3))
    return res


def run(url: str, args: List[str], timeout: float, pin_cpu: Optional[int] = 1) -> Dict:
    """Run `h2load <args> <url>`; returns parse() plus 'cmd', 'rc' and, on
    trouble, 'error' (the tail of h2load's output)."""
    # -N: a connection that sees no traffic for 15 s is closed and its
    # requests count as failed, so a stalled server cannot hang the run.
    cmd = ["h2load", "-N", "15s"] + args + [url]
    if pin_cpu is not None and have_taskset():
        cmd = ["taskset", "-c", str(pin_cpu)] + cmd
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              preexec_fn=raise_nofile)
        out, rc = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode(errors="replace") if isinstance(e.stdout, bytes) \
            else (e.stdout or "")
        out, rc = out + f"\nh2load killed after {timeout:.0f}s", -9
    res = parse(out)
    res["cmd"] = " ".join(cmd)
    res["rc"] = rc
    if rc != 0 or res["rps"] is None:
        res["error"] = "\n".join(out.strip().splitlines()[-8:])
    return res
