"""One benchmark server instance, and what the benchmark measures on it.

BaseServer writes a config from a template into its own temporary server
root, starts the server in the foreground (so the parent's pid is the Popen
pid, and only that pid is ever signalled), pinned to CPU 0 with taskset
when available, and measures:

- cpu_snapshot(): user+system CPU time of every process of the server: the
  parent, its children (httpd's MPM children and mod_cgid daemon, nginx's
  worker) and their children (CGI processes), read from /proc/<pid>/stat
  (utime, stime and cutime, cstime, i.e. including waited-for children that
  already exited).  When a cgroup-v1 cpuacct hierarchy is writable, the
  server also runs in its own cpuacct cgroup, whose counter includes every
  descendant even when it exited without being waited for (mod_cgid's CGI
  processes); bench.py then prefers that figure.
- rss_bytes(): VmRSS summed over the same processes.

Server is an httpd (Debian's apache2) with mod_h2x or mod_http2, from
bench/httpd.conf.tmpl; NginxServer is Debian's nginx from
bench/nginx.conf.tmpl, the reference of the static workloads.

Shared pieces (ports, certificate, content) are plain functions.
"""

import bisect
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from typing import Dict, List, Optional, Tuple

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH_DIR)
TEMPLATE = os.path.join(BENCH_DIR, "httpd.conf.tmpl")
APACHE2 = os.environ.get("H2X_APACHE2", "/usr/sbin/apache2")
NGINX_TEMPLATE = os.path.join(BENCH_DIR, "nginx.conf.tmpl")
NGINX = os.environ.get("H2X_NGINX", "/usr/sbin/nginx")
MODDIR = "/usr/lib/apache2/modules"
H2X_SO = os.path.join(REPO, ".libs", "mod_h2x.so")
HTTP2_SO = os.path.join(MODDIR, "mod_http2.so")
TEST_SO = os.path.join(REPO, "test", "mod_h2x_test", ".libs", "mod_h2x_test.so")
CGROUP_ROOT = "/sys/fs/cgroup/cpuacct"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# The two modules compared: label -> (module symbol, shared object).
MODULES = {
    "mod_h2x": ("h2x_module", H2X_SO),
    "mod_http2": ("http2_module", HTTP2_SO),
}


def snapshot_modules(workdir: str) -> Dict[str, str]:
    """Copy the module .so files into `workdir` and return {label: path}.

    Others may rebuild .libs/mod_h2x.so while a benchmark runs; the copies
    keep every instance of one run on the same build."""
    out = {}
    for label, (_, so) in MODULES.items():
        dst = os.path.join(workdir, os.path.basename(so))
        shutil.copy2(so, dst)
        os.chmod(dst, 0o755)
        out[label] = dst
    return out


def load_module_line(label: str, path: Optional[str] = None) -> str:
    symbol, so = MODULES[label]
    return f'LoadModule {symbol} "{path or so}"'


# -- configuration profiles ----------------------------------------------------

PROFILES = ("minimal", "debian")
# "minimal": only what the workloads need; the HTTP/2 module is loaded last.
MINIMAL_MODULES = ["mpm_event", "authz_core", "mime", "dir", "alias", "cgid",
                   "socache_shmcb", "ssl"]
# "debian": what installing Debian's apache2 enables (mods-enabled), plus
# cgid and ssl (with socache_shmcb, its dependency) as a2enmod enables
# them: httpd reads mods-enabled/*.load in alphabetical order, so the
# HTTP/2 module's h2x.load or http2.load sorts after filter.load.
DEBIAN_MODULES = ["access_compat", "alias", "auth_basic", "authn_core", "authn_file",
                  "authz_core", "authz_host", "authz_user", "autoindex", "cgid",
                  "deflate", "dir", "env", "filter", None, "mime", "mpm_event",
                  "negotiation", "reqtimeout", "setenvif", "socache_shmcb", "ssl",
                  "status"]
DEBIAN_ETC = "/etc/apache2"
# The .conf files a2enmod enables with those modules (mpm_event.conf is
# left out: the template sizes the MPM for the 1000-connection workload;
# cgid.conf only sets ScriptSock, which the template sets) and Debian's
# conf-enabled set, without serve-cgi-bin.conf (its ScriptAlias /cgi-bin/
# points at /usr/lib/cgi-bin, not at the run's CGIs).
DEBIAN_MOD_CONFS = ["alias", "autoindex", "deflate", "dir", "mime", "negotiation",
                    "reqtimeout", "setenvif", "ssl", "status"]
DEBIAN_CONF_CONFS = ["charset", "localized-error-pages", "other-vhosts-access-log",
                     "security"]


def module_lines(profile: str, h2_line: str, test_line: str = "") -> str:
    """The LoadModule lines of `profile`, with the HTTP/2 module's line
    `h2_line` where that profile loads it and the test module's last."""
    names = MINIMAL_MODULES + [None] if profile == "minimal" else DEBIAN_MODULES
    lines = [h2_line if name is None else
             f'LoadModule {name}_module "{MODDIR}/mod_{name}.so"' for name in names]
    return "\n".join(lines + ([test_line] if test_line else []))


def stock_conf(profile: str, root: str) -> str:
    """Include lines for Debian's stock configuration files (profile
    "debian"), with the variables its files use pointing into `root`, and
    the access log format its apache2.conf defines for
    other-vhosts-access-log.conf: every request is logged, as on a stock
    server."""
    if profile == "minimal":
        return "# (none: profile minimal)"
    lines = [f'Define APACHE_LOG_DIR "{root}/logs"', f'Define APACHE_RUN_DIR "{root}/run"',
             'LogFormat "%v:%p %h %l %u %t \\"%r\\" %>s %O \\"%{Referer}i\\" '
             '\\"%{User-Agent}i\\"" vhost_combined']
    lines += [f"Include {DEBIAN_ETC}/mods-available/{name}.conf" for name in DEBIAN_MOD_CONFS]
    lines += [f"Include {DEBIAN_ETC}/conf-available/{name}.conf" for name in DEBIAN_CONF_CONFS]
    return "\n".join(lines)


# -- shared pieces -------------------------------------------------------------

def free_ports(count: int) -> List[int]:
    """`count` distinct loopback ports the kernel just gave out (bind port 0)."""
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def make_cert(directory: str) -> Tuple[str, str]:
    """A self-signed EC certificate for localhost/127.0.0.1: (cert, key)."""
    cert, key = os.path.join(directory, "localhost.crt"), os.path.join(directory, "localhost.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-nodes", "-days", "30",
         "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-keyout", key, "-out", cert, "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "extendedKeyUsage=serverAuth"],
        check=True, capture_output=True)
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)   # a throw-away key, read by httpd as root anyway
    return cert, key


def pattern_bytes(size: int) -> bytes:
    """Deterministic file content of `size` bytes."""
    return (b"0123456789abcdef" * (size // 16 + 1))[:size]


def nginx_version() -> Optional[str]:
    """'nginx/1.22.1' (what `nginx -v` says), None if nginx is not installed."""
    if not os.access(NGINX, os.X_OK):
        return None
    try:
        proc = subprocess.run([NGINX, "-v"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    m = re.search(r"nginx/\S+", proc.stderr + proc.stdout)
    return m.group(0) if m else None


def have_taskset() -> bool:
    return shutil.which("taskset") is not None and os.cpu_count() and os.cpu_count() >= 2


def raise_nofile():
    """Raise the soft open-files limit to the hard one (for 1000 connections);
    used as a preexec_fn, so httpd and h2load inherit it."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# -- /proc ------------------------------------------------------------------------

def _read_stat(pid: int) -> Optional[Tuple[int, int]]:
    """(ppid, utime+stime+cutime+cstime in ticks) of `pid`, None if gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            rest = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    # rest[0] is field 3 (state): ppid is field 4, utime..cstime 14..17.
    return int(rest[1]), sum(int(x) for x in rest[11:15])


def process_tree(root: int) -> Dict[int, int]:
    """{pid: cpu ticks} for `root` and all its descendants."""
    info = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _read_stat(int(name))
            if st is not None:
                info[int(name)] = st
    children: Dict[int, List[int]] = {}
    for pid, (ppid, _) in info.items():
        children.setdefault(ppid, []).append(pid)
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in info:
            out[pid] = info[pid][1]
            todo.extend(children.get(pid, []))
    return out


def _rss_of(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _stack_rss_of(pid: int) -> int:
    """Resident bytes of the thread stacks of `pid`: the mappings that hold a
    thread's stack pointer (from /proc/<pid>/task/<tid>/syscall; a thread
    that is running at that moment is missed, an idle server has none).

    A thread's stack grows the first time a job reaches deeper than any
    job before, and keeps those pages: with the bench's 2 x 600 MPM threads
    the first few hundred connections each touch one or two threads for
    the first time (see measure_memory() in bench.py)."""
    sps = []
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/syscall") as f:
                parts = f.read().split()
        except OSError:
            continue
        if len(parts) >= 3 and parts[0] != "running":
            sps.append(int(parts[-2], 16))
    sps.sort()
    total, inside = 0, False
    try:
        with open(f"/proc/{pid}/smaps") as f:
            for line in f:
                m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) ", line)
                if m:
                    lo, hi = int(m.group(1), 16), int(m.group(2), 16)
                    i = bisect.bisect_left(sps, lo)
                    inside = i < len(sps) and sps[i] < hi
                elif inside and line.startswith("Rss:"):
                    total += int(line.split()[1]) * 1024
    except OSError:
        return 0
    return total


# -- the server ------------------------------------------------------------------

class ServerError(Exception):
    pass


class BaseServer:
    """A server process of the benchmark in its own temporary root.

    Subclasses set `program` (what messages call the server), `template`
    (the config template), `config_name` (the config file written under
    conf/) and `error_log_name` (its error log under logs/), and implement
    config_values() (their template placeholders besides ROOT, HTTP_PORT and
    HTTPS_PORT) and command() (the argv that runs the server in the
    foreground with a config).  `values` fills the template placeholders
    that are the same for every instance of a run (e.g. CERT, KEY).
    """

    program = ""
    template = ""
    config_name = ""
    error_log_name = ""

    def __init__(self, name: str, workdir: str, values: Dict[str, str],
                 pin_cpu: Optional[int] = 0, prefix: Optional[str] = None):
        """name: the label of the server in results and messages; prefix:
        of its root's directory name (default: name)."""
        self.name = name
        self.root = tempfile.mkdtemp(prefix=f"{prefix or name}-", dir=workdir)
        os.chmod(self.root, 0o755)
        for sub in ("conf", "logs", "run"):
            os.makedirs(os.path.join(self.root, sub), mode=0o755)
        self.values = dict(values)
        self.pin_cpu = pin_cpu
        self.proc: Optional[subprocess.Popen] = None
        self.cgroup: Optional[str] = None
        self.http_port = self.https_port = 0

    def config_values(self) -> Dict[str, str]:
        raise NotImplementedError

    def command(self, conf: str) -> List[str]:
        raise NotImplementedError

    @property
    def error_log(self) -> str:
        return os.path.join(self.root, "logs", self.error_log_name)

    def url(self, tls: bool, path: str = "/") -> str:
        return (f"https://localhost:{self.https_port}{path}" if tls
                else f"http://127.0.0.1:{self.http_port}{path}")

    def write_config(self) -> str:
        values = dict(self.values, ROOT=self.root, HTTP_PORT=str(self.http_port),
                      HTTPS_PORT=str(self.https_port), **self.config_values())
        with open(self.template) as f:
            text = f.read()
        for key, value in values.items():
            text = text.replace(f"@{key}@", value)
        path = os.path.join(self.root, "conf", self.config_name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def _make_cgroup(self):
        """A cpuacct cgroup of our own, if the hierarchy is writable."""
        path = os.path.join(CGROUP_ROOT, f"h2xbench-{os.getpid()}-{os.path.basename(self.root)}")
        try:
            os.mkdir(path)
            self.cgroup = path
        except OSError:
            self.cgroup = None

    def start(self, attempts: int = 3):
        """Start the server and wait until both ports accept connections."""
        for _ in range(attempts):
            self.http_port, self.https_port = free_ports(2)
            conf = self.write_config()
            if self.cgroup is None:
                self._make_cgroup()
            cmd = self.command(conf)
            if self.pin_cpu is not None and have_taskset():
                cmd = ["taskset", "-c", str(self.pin_cpu)] + cmd
            cgroup = self.cgroup

            def preexec():
                raise_nofile()
                os.setsid()   # its own process group: our Ctrl-C does not hit it
                if cgroup:
                    try:
                        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
                            f.write(str(os.getpid()))
                    except OSError:
                        pass

            self.proc = subprocess.Popen(cmd, env={"PATH": "/usr/sbin:/usr/bin:/bin",
                                                   "LANG": "C"},
                                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=open(os.path.join(self.root, "logs", "stderr"),
                                                     "w"),
                                         preexec_fn=preexec)
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self._accepts(self.http_port) and self._accepts(self.https_port):
                    time.sleep(0.3)   # let all worker processes come up
                    return
                time.sleep(0.1)
            log = self.log_tail()
            self.stop()
            if "Address already in use" not in log:
                raise ServerError(f"{self.name}: {self.program} did not start:\n{log}")
        raise ServerError(f"{self.name}: no free ports after {attempts} attempts")

    @staticmethod
    def _accepts(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            return False

    def log_tail(self, lines: int = 20) -> str:
        out = []
        for path in (os.path.join(self.root, "logs", "stderr"), self.error_log):
            try:
                with open(path, errors="replace") as f:
                    out += f.readlines()[-lines:]
            except OSError:
                pass
        return "".join(out)

    def stop(self, timeout: float = 15):
        """SIGTERM the parent (ours, by pid); SIGKILL it if it hangs."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.cgroup:
            # The cgroup empties once every process of the server is gone.
            for _ in range(50):
                try:
                    os.rmdir(self.cgroup)
                    break
                except OSError:
                    time.sleep(0.1)
            self.cgroup = None

    # -- measurements ---------------------------------------------------------

    @property
    def pid(self) -> int:
        return self.proc.pid

    def pids(self) -> List[int]:
        return list(process_tree(self.pid))

    def proc_cpu_seconds(self) -> float:
        return sum(process_tree(self.pid).values()) / CLK_TCK

    def cgroup_cpu_seconds(self) -> Optional[float]:
        if not self.cgroup:
            return None
        try:
            with open(os.path.join(self.cgroup, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        except (OSError, ValueError):
            return None

    def cpu_snapshot(self) -> Dict[str, Optional[float]]:
        return {"proc": self.proc_cpu_seconds(), "cgroup": self.cgroup_cpu_seconds()}

    def rss_bytes(self) -> int:
        return sum(_rss_of(pid) for pid in self.pids())

    def stack_rss_bytes(self) -> int:
        """The part of rss_bytes() in thread stacks (_stack_rss_of())."""
        return sum(_stack_rss_of(pid) for pid in self.pids())


class Server(BaseServer):
    """An httpd with `module` ('mod_h2x' or 'mod_http2') in its own root.

    docroot and cgibin are shared by all instances of a run (read-only);
    `values` fills the template placeholders that are the same for every
    instance (TIMEOUT, EXTRA, TEST_MODULE, CERT, KEY).
    """

    program = "httpd"
    template = TEMPLATE
    config_name = "httpd.conf"
    error_log_name = "error_log"

    def __init__(self, module: str, workdir: str, docroot: str, cgibin: str,
                 values: Dict[str, str], pin_cpu: Optional[int] = 0,
                 so_path: Optional[str] = None, profile: str = "minimal"):
        """so_path: the module's shared object (default: the build tree's /
        Debian's, see snapshot_modules()); profile: one of PROFILES (the
        modules and stock configuration files, see module_lines())."""
        super().__init__(module, workdir, values, pin_cpu)
        if profile not in PROFILES:
            raise ValueError(f"profile must be one of {PROFILES}, not {profile!r}")
        self.so_path = so_path
        self.profile = profile
        self.docroot, self.cgibin = docroot, cgibin

    @property
    def module(self) -> str:
        return self.name

    def config_values(self) -> Dict[str, str]:
        return {"MODDIR": MODDIR, "DOCROOT": self.docroot, "CGIBIN": self.cgibin,
                "MODULES": module_lines(self.profile, load_module_line(self.module, self.so_path),
                                        self.values.get("TEST_MODULE", "")),
                "STOCK_CONF": stock_conf(self.profile, self.root)}

    def command(self, conf: str) -> List[str]:
        return [APACHE2, "-d", self.root, "-f", conf, "-DFOREGROUND"]


class NginxServer(BaseServer):
    """Debian's nginx serving `docroot` (bench/nginx.conf.tmpl): a private
    instance whose pid file, error log and temporary directories are all in
    its own root; `values` has CERT and KEY."""

    program = "nginx"
    template = NGINX_TEMPLATE
    config_name = "nginx.conf"
    error_log_name = "error.log"

    def __init__(self, workdir: str, docroot: str, values: Dict[str, str],
                 name: str = "nginx", pin_cpu: Optional[int] = 0):
        super().__init__(name, workdir, values, pin_cpu, prefix="nginx")
        self.docroot = docroot

    def config_values(self) -> Dict[str, str]:
        return {"DOCROOT": self.docroot}

    def command(self, conf: str) -> List[str]:
        # -e: the error log from the very start, before the config is read
        # (not the compiled-in /var/log/nginx/error.log).
        return [NGINX, "-p", self.root + "/", "-c", conf, "-e", self.error_log]


def stop_all(servers, backend: Optional[subprocess.Popen], workdir: str):
    """The end of a side-by-side run: stop the servers (by pid) and the
    backend process the run started, remove the run's temporary tree."""
    for s in servers:
        s.stop()
    if backend:
        backend.terminate()
        backend.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)
