"""Error-log scan: a test fails if httpd logged something unexpected.

After every test, the lines each httpd wrote to its error log since the
previous scan are checked (the scanner remembers its file offset, so each
test sees only the lines written during it; start-up lines of a module's
server count for that module's first test).  A line is a problem if it

- shows a crash: `exit signal`, `Segmentation fault`, AH00052, AH00060,
  glibc/ASan/C++ abort messages, at any log level; or
- is logged at emerg, alert, crit, error or warn,

and matches neither BENIGN (below, always allowed) nor a pattern the test
declared with `httpd.expect_log(regex)` or `@pytest.mark.expect_log(regex, ...)`.

Under H2X_SANITIZE, every ASan report file that appears in the server's
sanitizer directory (or grows) is a problem too, always: no pattern makes
a sanitizer report expected.  UBSan reports (with ASan, GCC's UBSan runtime
ignores log_path) go to httpd's stderr, the error log: their "runtime
error:" line is a crash line, shown with the stack frames that follow it.
"""

import os
import re
import shutil
import subprocess
from typing import Dict, List, Optional, Pattern

# Lines that are allowed in every test.  Keep each with its reason.
BENIGN = [
    # mod_ssl: certificate name does not match a vhost ServerName.
    r"AH01909",
    # core: could not determine the server's FQDN (we set ServerName).
    r"AH00558",
    # mod_ssl: server certificate is a CA certificate (ours is not).
    r"AH01906",
]

# Patterns that mark a crash, whatever the level of the line.
CRASH = [
    r"exit signal",
    r"Segmentation fault",
    r"AH00052",          # child pid N exit signal ...
    r"AH00060",          # seg fault or similar nasty error in the parent
    r"double free",
    r"corrupted (size|double-linked|top size)",
    r"malloc\(\): ",
    r"free\(\): ",
    r"terminate called",
    r"Assertion .* failed",
    r"AddressSanitizer",
    r"LeakSanitizer",
    r"UndefinedBehaviorSanitizer",
    r"runtime error:",   # UBSan's report line when it writes to stderr
    r"stack smashing detected",
]

_LEVEL_RE = re.compile(
    r"^\[[^\]]*\] \[(?:[\w.-]*:)?(emerg|alert|crit|error|warn)\]")
_CRASH_RE = re.compile("|".join(f"(?:{p})" for p in CRASH))


class Expectations:
    """The log patterns the running test declared as expected.

    One instance is shared by all servers; conftest resets it before each
    test and adds the patterns of `@pytest.mark.expect_log`.
    """

    def __init__(self):
        self.patterns: List[Pattern] = []
        self.required: List[Pattern] = []
        self.seen = {}

    def reset(self):
        self.patterns.clear()
        self.required.clear()
        self.seen.clear()

    def add(self, pattern: str, required: bool = False):
        rx = re.compile(pattern)
        self.patterns.append(rx)
        if required:
            self.required.append(rx)

    def match(self, line: str) -> bool:
        for rx in self.patterns:
            if rx.search(line):
                self.seen[rx.pattern] = self.seen.get(rx.pattern, 0) + 1
                return True
        return False

    def missing(self) -> List[str]:
        """Required patterns that matched no line so far."""
        return [rx.pattern for rx in self.required if not self.seen.get(rx.pattern)]


# Shared by every LogScanner; reset per test by conftest.
EXPECTED = Expectations()
_BENIGN_RE = re.compile("|".join(f"(?:{p})" for p in BENIGN))


def classify(line: str) -> Optional[str]:
    """'crash', 'error' (emerg..warn) or None for an ordinary line."""
    if _CRASH_RE.search(line):
        return "crash"
    if _LEVEL_RE.match(line):
        return "error"
    return None


def is_problem(line: str, expectations: Optional[Expectations] = None,
               benign: Optional[Pattern] = None) -> bool:
    """True if `line` should fail the test.  `benign`: extra allowed lines."""
    if classify(line) is None:
        return False
    expectations = expectations or EXPECTED
    if expectations.match(line):
        return False
    if benign is not None and benign.search(line):
        return False
    return not _BENIGN_RE.search(line)


# Lines shown from each sanitizer report in a test failure.
REPORT_LINES = 60

# Sanitizer reports about httpd's own code, not the modules under test:
# regexes over the symbolized report, each with its reason.  A report that
# names mod_h2x anywhere never counts as known.
KNOWN_REPORTS = [
    # httpd 2.4.71 event MPM, ungraceful child stop (SIGTERM): the child's
    # main thread, in signal_threads() -> close_worker_sockets() ->
    # close_socket(), reads the socket of a connection that a worker thread
    # has just closed and whose pool it released (worker_sockets[] is
    # cleared only after process_socket() returns).  No module frame.
    r"SEGV on unknown address[^\n]*\n[^\n]*\n\s*#0 \S+ in apr_os_sock_get [^\n]*\n"
    r"\s*#1 \S+\s+\(\S*mod_mpm_event\.so\+0x[0-9a-f]+\)",
]
_KNOWN_RE = [re.compile(p) for p in KNOWN_REPORTS]

# Reports from inside a signal handler: only the handler's frames (those
# above the libc signal frame) must be free of mod_h2x; below it is the
# code the signal interrupted, whatever it was.
KNOWN_SIGNAL_REPORTS = [
    # httpd 2.4.71 prefork, child stop (SIGTERM): just_die() runs
    # clean_child_exit() inside the signal handler, which destroys the
    # child's pools; if the signal interrupted mod_ssl's SSL_free() (a
    # connection ending, e.g. a port probe closing during the handshake),
    # mod_ssl's pool cleanup frees the half-freed SSL again and crashes.
    # Plain httpd with mod_ssl does the same; no module frame in the handler.
    r"SEGV on unknown address[^\n]*\n(?:[^\n]*\n){1,3}"
    r"\s*#0 \S+\s+\(\S*mod_ssl\.so\+0x[0-9a-f]+\)\n"
    r"(?:\s*#\d+ \S+ in apr_pool_destroy [^\n]*\n)+"
    r"(?:\s*#\d+ \S+\s+\(\S*mod_mpm_prefork\.so\+0x[0-9a-f]+\)\n)+"
    r"\s*#\d+ \S+ in (?:__GI___sigaction|__restore_rt)\b",
]
_KNOWN_SIGNAL_RE = [re.compile(p) for p in KNOWN_SIGNAL_REPORTS]
_SIGNAL_FRAME_RE = re.compile(r"^\s*#\d+ \S+ in (?:__GI___sigaction|__restore_rt)\b", re.M)


def known_report(text: str) -> bool:
    """True if a (symbolized) sanitizer report is one of KNOWN_REPORTS, or
    one of KNOWN_SIGNAL_REPORTS with no mod_h2x frame in the handler."""
    if "mod_h2x" not in text and any(rx.search(text) for rx in _KNOWN_RE):
        return True
    m = _SIGNAL_FRAME_RE.search(text)
    if m is None or "mod_h2x" in text[:m.start()]:
        return False
    return any(rx.search(text) for rx in _KNOWN_SIGNAL_RE)

# A stack frame of a report written with symbolize=0:
#     #3 0x7f1b95d768a1  (/path/mod_h2x.so+0x308a1)
_FRAME_RE = re.compile(r"^(\s*#\d+ 0x[0-9a-f]+)\s+\(([^+()]+)\+(0x[0-9a-f]+)\)\s*$")


def symbolize(text: str) -> str:
    """Turn a sanitizer report's `(module+0xoffset)` frames into
    `in function file:line` with addr2line (binutils); frames it cannot
    resolve stay as they are."""
    lines = text.splitlines()
    wanted: Dict[str, List[str]] = {}
    for line in lines:
        m = _FRAME_RE.match(line)
        if m:
            wanted.setdefault(m.group(2), []).append(m.group(3))
    addr2line = shutil.which("addr2line")
    if not wanted or not addr2line:
        return text
    resolved: Dict[tuple, str] = {}
    for module, offsets in wanted.items():
        offsets = sorted(set(offsets))
        try:
            out = subprocess.run([addr2line, "-f", "-C", "-e", module, *offsets],
                                 capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            continue
        result = out.stdout.splitlines()
        if out.returncode != 0 or len(result) != 2 * len(offsets):
            continue
        for i, off in enumerate(offsets):
            func, where = result[2 * i], result[2 * i + 1]
            if func != "??":
                where = "" if where.startswith("??") else " " + where
                resolved[(module, off)] = f"in {func}{where} ({os.path.basename(module)}+{off})"
    out_lines = []
    for line in lines:
        m = _FRAME_RE.match(line)
        sym = resolved.get((m.group(2), m.group(3))) if m else None
        out_lines.append(f"{m.group(1)} {sym}" if sym else line)
    return "\n".join(out_lines)


class LogScanner:
    """Reads a log file incrementally; each scan() returns the new problems.

    With `sanitizer_dir`, also the report files ASan/UBSan write there
    (log_path=<dir>/asan gives asan.<pid>): new content in any of them is
    a problem, shown as the file name and the report's first lines.
    """

    def __init__(self, path: str, sanitizer_dir: Optional[str] = None):
        self.path = path
        self.offset = 0
        self.benign: Optional[Pattern] = None   # lines allowed for this server only
        self.sanitizer_dir = sanitizer_dir
        self._report_offsets = {}                # report file -> bytes already shown

    def set_benign(self, patterns: List[str]):
        """Allow lines matching any of `patterns` in this log (config-specific
        warnings, e.g. mod_http2 refusing prefork)."""
        self.benign = re.compile("|".join(f"(?:{p})" for p in patterns)) if patterns else None

    def _new_lines(self, consume: bool) -> List[str]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1          # only complete lines
        if consume:
            self.offset += end
        return data[:end].decode("utf-8", errors="replace").splitlines()

    def _sanitizer_reports(self, consume: bool) -> List[str]:
        if not self.sanitizer_dir:
            return []
        try:
            names = sorted(os.listdir(self.sanitizer_dir))
        except FileNotFoundError:
            return []
        problems = []
        for name in names:
            path = os.path.join(self.sanitizer_dir, name)
            start = self._report_offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    data = f.read()
            except OSError:
                continue
            if not data:
                continue
            if consume:
                self._report_offsets[path] = start + len(data)
            text = symbolize(data.decode("utf-8", errors="replace"))
            if known_report(text):
                continue
            lines = text.splitlines()
            shown = "\n    ".join(lines[:REPORT_LINES])
            more = f"\n    ... ({len(lines) - REPORT_LINES} more lines)" \
                if len(lines) > REPORT_LINES else ""
            problems.append(f"sanitizer report {path}:\n    {shown}{more}")
        return problems

    def _problems(self, lines: List[str]) -> List[str]:
        """The problem lines; a UBSan report in the log ("runtime error:",
        written to httpd's stderr) comes with the stack frames after it."""
        problems = []
        for i, line in enumerate(lines):
            if not is_problem(line, benign=self.benign):
                continue
            if self.sanitizer_dir and line.strip() == "AddressSanitizer:DEADLYSIGNAL":
                continue    # the report itself is in sanitizer_dir, judged there
            if "runtime error:" in line:
                frames = []
                for nxt in lines[i + 1:i + 1 + REPORT_LINES]:
                    if not re.match(r"^\s+#\d+ ", nxt):
                        break
                    frames.append(nxt)
                if frames:
                    line += "\n" + symbolize("\n".join(frames))
            problems.append(line)
        return problems

    def scan(self) -> List[str]:
        """Consume the lines written since the last scan; return the problems."""
        return self._problems(self._new_lines(consume=True)) \
            + self._sanitizer_reports(consume=True)

    def peek(self) -> List[str]:
        """Like scan(), but the lines stay for the next scan()."""
        return self._problems(self._new_lines(consume=False)) \
            + self._sanitizer_reports(consume=False)

    def new_lines(self) -> List[str]:
        """All lines written since the last scan, without consuming them."""
        return self._new_lines(consume=False)

    def skip_to_end(self):
        """Ignore everything written so far (sanitizer reports excepted)."""
        try:
            self.offset = os.path.getsize(self.path)
        except FileNotFoundError:
            self.offset = 0
