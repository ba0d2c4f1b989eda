"""curl, nghttp and h2load, run as subprocesses, with parsed results.

curl() works with any URL from Httpd.url().  For https://localhost:<port>
URLs a `--resolve` pins localhost to 127.0.0.1 (httpd listens on IPv4
only).  nghttp() and h2load() skip the calling test, naming the tool, when
the tool is not installed (Debian package nghttp2-client).
"""

import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union
from urllib.parse import urlsplit

HTTP_MODES = {
    "2": ["--http2"],                       # ALPN h2 on https, Upgrade: h2c on http
    "h2c-upgrade": ["--http2"],             # http:// only: HTTP/1.1 Upgrade to h2c
    "2-prior": ["--http2-prior-knowledge"],  # h2c without upgrade (or h2 without ALPN fallback)
    "1.1": ["--http1.1"],
}


def require_tool(name: str) -> str:
    """Path of `name`, or skip the running test naming the missing tool."""
    path = shutil.which(name)
    if path is None:
        import pytest
        pytest.skip(f"{name} is not installed (Debian package nghttp2-client)"
                    if name in ("nghttp", "h2load") else f"{name} is not installed")
    return path


def _resolve_args(url: str) -> List[str]:
    parts = urlsplit(url)
    if parts.hostname == "localhost" and parts.port:
        return ["--resolve", f"localhost:{parts.port}:127.0.0.1"]
    return []


# -- curl ------------------------------------------------------------------

@dataclass
class CurlResult:
    """What curl saw.  Header names are lower-case; values keep their order."""
    exit_code: int
    status: Optional[int]
    headers: Dict[str, List[str]]
    body: bytes
    http_version: Optional[str]          # "1.1", "2", ...
    stderr: str
    time_total: Optional[float]
    header_blocks: List[Dict[str, List[str]]] = field(default_factory=list)
    json: dict = field(default_factory=dict)     # curl's -w '%{json}'
    args: List[str] = field(default_factory=list)

    def header(self, name: str) -> Optional[str]:
        """The first value of header `name`, or None."""
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def __repr__(self):
        return (f"CurlResult(exit={self.exit_code}, status={self.status}, "
                f"http={self.http_version}, body={len(self.body)}B, stderr={self.stderr[-200:]!r})")


def _parse_header_file(raw: bytes) -> List[Dict[str, List[str]]]:
    """Split curl's -D output into one dict per response (1xx, 101, final)."""
    blocks: List[Dict[str, List[str]]] = []
    current: Optional[Dict[str, List[str]]] = None
    for line in raw.decode("latin-1").split("\r\n" if b"\r\n" in raw else "\n"):
        line = line.rstrip("\r\n")
        if line.startswith("HTTP/"):
            current = {}
            blocks.append(current)
        elif line and current is not None and ":" in line:
            name, value = line.split(":", 1)
            current.setdefault(name.strip().lower(), []).append(value.strip())
    return blocks


def curl(url: str, *args: str, http: str = "2", data: Union[bytes, str, None] = None,
         headers: Union[Dict[str, str], Sequence, None] = None, method: Optional[str] = None,
         timeout: float = 20.0) -> CurlResult:
    """Run curl once and return a CurlResult.

    http: "2" (ALPN h2 for https; Upgrade to h2c for http), "h2c-upgrade",
    "2-prior" (prior knowledge) or "1.1".  data is sent as the request body
    (curl then uses POST unless `method` says otherwise).  Extra curl
    arguments go in `args`.  timeout is curl's --max-time.
    """
    if http not in HTTP_MODES:
        raise ValueError(f"http must be one of {list(HTTP_MODES)}, not {http!r}")
    with tempfile.TemporaryDirectory(prefix="h2x-curl-") as tmp:
        hfile = os.path.join(tmp, "headers")
        bfile = os.path.join(tmp, "body")
        cmd = ["curl", "-sS", "-k", "-D", hfile, "-o", bfile, "-w", "%{json}",
               "--max-time", str(timeout), *HTTP_MODES[http], *_resolve_args(url)]
        if method:
            cmd += ["-X", method]
        items = headers.items() if isinstance(headers, dict) else (headers or [])
        for name, value in items:
            cmd += ["-H", f"{name}: {value}"]
        if data is not None:
            dfile = os.path.join(tmp, "data")
            with open(dfile, "wb") as f:
                f.write(data.encode() if isinstance(data, str) else data)
            cmd += ["--data-binary", f"@{dfile}"]
        cmd += [*args, url]
        proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
        try:
            info = json.loads(proc.stdout.decode("utf-8", errors="replace") or "{}")
        except ValueError:
            info = {}
        raw_headers = open(hfile, "rb").read() if os.path.exists(hfile) else b""
        body = open(bfile, "rb").read() if os.path.exists(bfile) else b""
    blocks = _parse_header_file(raw_headers)
    status = info.get("response_code") or None
    return CurlResult(
        exit_code=proc.returncode,
        status=status,
        headers=blocks[-1] if blocks else {},
        body=body,
        http_version=info.get("http_version") or None,
        stderr=proc.stderr.decode("utf-8", errors="replace"),
        time_total=info.get("time_total"),
        header_blocks=blocks,
        json=info,
        args=cmd,
    )


# -- nghttp ----------------------------------------------------------------

_NGHTTP_FRAME_RE = re.compile(
    r"^\[\s*([\d.]+)\] (send|recv) (\w+) frame <length=(\d+), flags=0x([0-9a-f]+), "
    r"stream_id=(\d+)>")
_NGHTTP_HEADER_RE = re.compile(r"^\[\s*[\d.]+\] recv \(stream_id=(\d+)\) (\S+): (.*)$")


@dataclass
class NghttpFrame:
    t: float
    direction: str       # "send" or "recv"
    type: str            # "HEADERS", "DATA", "RST_STREAM", ...
    length: int
    flags: int
    stream_id: int


@dataclass
class NghttpResult:
    exit_code: int
    stdout: str
    stderr: str
    frames: List[NghttpFrame]
    statuses: List[int]            # every :status received, in order
    headers: Dict[int, List[Tuple[str, str]]]   # received header fields per stream

    def recv(self, type_: Optional[str] = None) -> List[NghttpFrame]:
        return [f for f in self.frames if f.direction == "recv"
                and (type_ is None or f.type == type_)]


def nghttp(url: str, *args: str, timeout: float = 20.0) -> NghttpResult:
    """Run `nghttp -nv <args> <url>`; frames are parsed from the -v trace."""
    tool = require_tool("nghttp")
    cmd = [tool, "-nv", f"--timeout={int(timeout)}", *args, url]
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout + 10)
    out = proc.stdout.decode("utf-8", errors="replace")
    frames, statuses, headers = [], [], {}
    for line in out.splitlines():
        m = _NGHTTP_FRAME_RE.match(line)
        if m:
            frames.append(NghttpFrame(float(m.group(1)), m.group(2), m.group(3),
                                      int(m.group(4)), int(m.group(5), 16), int(m.group(6))))
            continue
        m = _NGHTTP_HEADER_RE.match(line)
        if m:
            headers.setdefault(int(m.group(1)), []).append((m.group(2), m.group(3)))
            if m.group(2) == ":status":
                statuses.append(int(m.group(3)))
    return NghttpResult(proc.returncode, out, proc.stderr.decode("utf-8", errors="replace"),
                        frames, statuses, headers)


# -- h2load ----------------------------------------------------------------

_H2LOAD_REQ_RE = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
    r"(\d+) failed, (\d+) errored, (\d+) timeout")
_H2LOAD_STATUS_RE = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")


@dataclass
class H2loadResult:
    exit_code: int
    stdout: str
    stderr: str
    requests: Dict[str, int]      # total, started, done, succeeded, failed, errored, timeout
    status: Dict[str, int]        # 2xx, 3xx, 4xx, 5xx
    duration: float

    def __repr__(self):
        return f"H2loadResult(exit={self.exit_code}, requests={self.requests}, status={self.status})"


def h2load(url: str, n: int = 100, c: int = 1, m: int = 1, *args: str,
           timeout: float = 60.0) -> H2loadResult:
    """Run `h2load -n N -c C -m M <args> <url>` and parse its summary."""
    tool = require_tool("h2load")
    cmd = [tool, "-n", str(n), "-c", str(c), "-m", str(m), *args, url]
    start = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, timeout=timeout)
    out = proc.stdout.decode("utf-8", errors="replace")
    requests, status = {}, {}
    m_ = _H2LOAD_REQ_RE.search(out)
    if m_:
        keys = ("total", "started", "done", "succeeded", "failed", "errored", "timeout")
        requests = dict(zip(keys, map(int, m_.groups())))
    m_ = _H2LOAD_STATUS_RE.search(out)
    if m_:
        status = dict(zip(("2xx", "3xx", "4xx", "5xx"), map(int, m_.groups())))
    return H2loadResult(proc.returncode, out, proc.stderr.decode("utf-8", errors="replace"),
                        requests, status, time.monotonic() - start)


# -- chromium ---------------------------------------------------------------

def chromium_dump_dom(url: str, user_data_dir: str, budget_ms: int = 15000,
                      timeout: float = 120) -> Tuple[str, str]:
    """Headless Chromium (Debian's chromium) loads `url` over h2, ignoring
    the test certificate, lets the page run for up to `budget_ms` of virtual
    time and prints its DOM; returns (dom, stderr). Skips the running test
    when chromium is missing (scripts/install-deps installs it)."""
    chromium = shutil.which("chromium")
    if not chromium:
        import pytest
        pytest.skip("optional external tool missing: chromium (scripts/install-deps installs it)")
    proc = subprocess.run(
        [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--ignore-certificate-errors", f"--user-data-dir={user_data_dir}",
         f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
        capture_output=True, timeout=timeout)
    return (proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace"))
