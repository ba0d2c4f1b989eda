"""One Apache httpd instance in its own temporary server root.

Httpd owns a directory under the session temp dir:

    <root>/conf/httpd.conf   written from conf/httpd.conf.tmpl
    <root>/logs/error_log, access_log
    <root>/run/              pid file, mutexes, cgid socket, SSL session cache
    <root>/htdocs/           a copy of test/htdocs (tests may add files)
    <root>/cgi-bin/          a copy of test/cgi-bin (kept executable)
    <root>/cache/            CacheRoot for mod_cache_disk
    <root>/logs/sanitizers/  ASan/UBSan reports (asan.<pid>, ubsan.<pid>),
                             only when env.sanitize (H2X_SANITIZE)

It listens on two free loopback ports: `http_port` (HTTP/1.1, h2c upgrade,
h2c prior knowledge) and `https_port` (TLS: h2 via ALPN and HTTP/1.1).
httpd runs as a daemon (`-k start`) with a clean environment; stop() and
friends act on the pid in its PidFile only.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import weakref
from typing import Dict, List, Optional, Tuple

from . import logscan
from .ports import free_ports, port_accepts

# Modules loaded when present, in this order (the MPM, CGI and HTTP/2
# modules are added separately).  The first part is what Debian enables by
# default (mods-enabled after installing apache2, with its
# RequestReadTimeout in the config template); the HTTP/2 module is loaded
# after all of them, where upstream httpd.conf and RHEL's conf.modules.d put
# it.  Built-ins of Debian's apache2 (log_config, logio, unixd, version,
# watchdog) must not appear here.
DEBIAN_DEFAULT_MODULES = [
    "access_compat", "alias", "auth_basic", "authn_core", "authn_file",
    "authz_core", "authz_host", "authz_user", "autoindex", "deflate", "dir",
    "env", "filter", "mime", "negotiation", "reqtimeout", "setenvif", "status",
]
STANDARD_MODULES = DEBIAN_DEFAULT_MODULES + [
    "ssl", "socache_shmcb", "rewrite", "include", "headers", "proxy",
    "proxy_http", "cache", "cache_disk", "expires",
]
MPMS = ("event", "worker", "prefork")
RESUMING = "resuming normal operations"
# One event MPM child of 25 threads: a request for /server-status meets the
# process that serves the test's connections.
ONE_CHILD = """
ServerLimit 1
StartServers 1
ThreadsPerChild 25
MaxRequestWorkers 25
MinSpareThreads 1
MaxSpareThreads 50
"""


class HttpdError(Exception):
    """httpd failed to start, stop or reload; the message has the log tail."""


def file_content(size: int) -> bytes:
    """Deterministic content of `size` bytes for Httpd.make_file().

    16-byte lines, each the zero-padded decimal offset of the line, so a
    truncated or shifted body shows where it went wrong.
    """
    lines = (b"%015d\n" % off for off in range(0, size + 15, 16))
    return b"".join(lines)[:size]


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)[:60] or "httpd"


def _alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state != "Z"
    except (OSError, IndexError):
        return False


class Httpd:
    """An httpd with its own server root, config and ports."""

    _live = weakref.WeakSet()     # every Httpd whose log the test scan reads

    def __init__(self, env, name: str = "default", mpm: str = "event",
                 module: Optional[str] = None, cgi: Optional[str] = None,
                 module_first: bool = False, skip_modules=()):
        """`module`: 'h2x' or 'http2' (default: env.module).  `cgi`: 'cgid'
        or 'cgi' (default: cgi for prefork, cgid otherwise).  `module_first`:
        load the HTTP/2 module right after the MPM, before the standard
        modules (Debian's a2enmod order puts h2x.load before reqtimeout.load),
        instead of last.  `skip_modules`: standard modules not to load (a test
        that needs a bare server says why)."""
        self.module_first = module_first
        self.skip_modules = set(skip_modules)
        self.env = env
        self.name = name
        self.mpm = mpm
        self.module = module or env.module
        self.cgi = cgi
        self._check_choices()
        self.root = tempfile.mkdtemp(prefix=_safe_name(name) + "-", dir=env.session_dir)
        os.chmod(self.root, 0o755)
        for sub in ("conf", "logs", "run", "cache"):
            os.makedirs(os.path.join(self.root, sub), mode=0o755, exist_ok=True)
        try:    # mod_cache_disk writes here as www-data
            shutil.chown(os.path.join(self.root, "cache"), "www-data", "www-data")
        except (OSError, LookupError):
            pass
        self._copy_tree(env.htdocs_src, self.docroot, executable=False)
        self._copy_tree(env.cgi_src, os.path.join(self.root, "cgi-bin"), executable=True)
        self.conf_path = os.path.join(self.root, "conf", "httpd.conf")
        self.http_port, self.https_port = free_ports(2)
        self.sanitizer_dir = None
        if env.sanitize:
            self.sanitizer_dir = env.make_sanitizer_dir(os.path.join(self.root, "logs"))
        self.log = logscan.LogScanner(self.error_log_path, sanitizer_dir=self.sanitizer_dir)
        self._config_kw = None
        # Environment variables for apache2 beside the clean default (a
        # test that needs one sets and removes it; see _apache2()).
        self.extra_env: Dict[str, str] = {}
        Httpd._live.add(self)

    # -- paths and urls ---------------------------------------------------

    @property
    def docroot(self) -> str:
        return os.path.join(self.root, "htdocs")

    @property
    def cgi_bin(self) -> str:
        return os.path.join(self.root, "cgi-bin")

    @property
    def error_log_path(self) -> str:
        return os.path.join(self.root, "logs", "error_log")

    @property
    def access_log_path(self) -> str:
        return os.path.join(self.root, "logs", "access_log")

    @property
    def pid_path(self) -> str:
        return os.path.join(self.root, "run", "httpd.pid")

    @property
    def pid(self) -> Optional[int]:
        """The parent's pid from the PidFile, or None if there is none."""
        try:
            with open(self.pid_path) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    @property
    def running(self) -> bool:
        pid = self.pid
        return pid is not None and _alive(pid)

    def url(self, path: str = "/", tls: bool = False) -> str:
        """http://127.0.0.1:<http_port>/path or https://localhost:<https_port>/path."""
        if not path.startswith("/"):
            path = "/" + path
        if tls:
            return f"https://localhost:{self.https_port}{path}"
        return f"http://127.0.0.1:{self.http_port}{path}"

    def authority(self, tls: bool = False) -> str:
        return f"localhost:{self.https_port}" if tls else f"127.0.0.1:{self.http_port}"

    # -- content ----------------------------------------------------------

    def make_file(self, relpath: str, size: int) -> str:
        """Write `size` bytes of file_content() to htdocs/relpath; return its path."""
        path = os.path.join(self.docroot, relpath.lstrip("/"))
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "wb") as f:
            f.write(file_content(size))
        os.chmod(path, 0o644)
        return path

    def make_cgi(self, relpath: str, source: str, in_cgi_bin: bool = False) -> str:
        """Write an executable script to htdocs/relpath (or cgi-bin/relpath)."""
        base = self.cgi_bin if in_cgi_bin else self.docroot
        path = os.path.join(base, relpath.lstrip("/"))
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        with open(path, "w") as f:
            f.write(source)
        os.chmod(path, 0o755)
        return path

    # -- logs -------------------------------------------------------------

    def expect_log(self, pattern: str, required: bool = False):
        """Declare error-log lines matching `pattern` expected in this test.

        With required=True the test also fails if no line matches it.
        """
        logscan.EXPECTED.add(pattern, required=required)

    def error_log_lines(self) -> List[str]:
        try:
            with open(self.error_log_path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def access_log_lines(self) -> List[str]:
        try:
            with open(self.access_log_path, errors="replace") as f:
                return f.read().splitlines()
        except FileNotFoundError:
            return []

    def error_log_tail(self, n: int = 30) -> str:
        return "\n".join(self.error_log_lines()[-n:])

    def _log_size(self) -> int:
        try:
            return os.path.getsize(self.error_log_path)
        except FileNotFoundError:
            return 0

    def _log_since(self, offset: int) -> str:
        try:
            with open(self.error_log_path, "rb") as f:
                f.seek(offset)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    # -- configuration ----------------------------------------------------

    def write_config(self, extra_global: str = "", extra_vhost: str = "",
                     extra_tls_vhost: str = "", loglevel: Optional[str] = None,
                     mpm: Optional[str] = None, module: Optional[str] = None,
                     cgi: Optional[str] = None) -> str:
        """Write conf/httpd.conf; return its path.  Takes effect on (re)start.

        extra_global is placed at server level after the defaults, so it can
        override them and is inherited by both vhosts (the place for
        <Location> blocks and H2* directives meant for both ports).
        extra_vhost goes into the plain vhost, extra_tls_vhost into the TLS
        one.  loglevel defaults to 'warn <module>:debug'.  mpm, module and
        cgi, when given, change this server's choice from now on.
        """
        if mpm:
            self.mpm = mpm
        if module:
            self.module = module
        if cgi:
            self.cgi = cgi
        self._check_choices()
        # mod_http2 warns that it disables itself under prefork (AH10034).
        self.log.set_benign(["AH10034"] if (self.module, self.mpm) == ("http2", "prefork")
                            else [])
        self._config_kw = dict(extra_global=extra_global, extra_vhost=extra_vhost,
                               extra_tls_vhost=extra_tls_vhost, loglevel=loglevel)
        self._render(self.conf_path, **self._config_kw)
        return self.conf_path

    def check_config(self, extra_global: str = "", extra_vhost: str = "",
                     extra_tls_vhost: str = "") -> Tuple[int, str]:
        """Run `apache2 -t` on a config with these extra lines.

        Returns (returncode, stdout+stderr).  The running server (if any) and
        its config are not touched.
        """
        path = os.path.join(self.root, "conf", "check.conf")
        self._render(path, extra_global=extra_global, extra_vhost=extra_vhost,
                     extra_tls_vhost=extra_tls_vhost, loglevel=None)
        proc = self._apache2("-t", conf=path)
        return proc.returncode, proc.stdout + proc.stderr

    def loaded_modules(self) -> List[str]:
        """Module names httpd loads with the current config ('h2x_module', ...),
        from `apache2 -t -D DUMP_MODULES`."""
        proc = self._apache2("-t", "-D", "DUMP_MODULES")
        if proc.returncode != 0:
            raise HttpdError(f"{self.name}: DUMP_MODULES failed:\n{proc.stdout}{proc.stderr}")
        return [m.group(1) for m in re.finditer(r"^\s*(\w+) \((?:static|shared)\)",
                                                 proc.stdout, re.M)]

    def _check_choices(self):
        if self.mpm not in MPMS:
            raise ValueError(f"mpm must be one of {MPMS}, not {self.mpm!r}")
        if self.cgi not in (None, "cgi", "cgid"):
            raise ValueError(f"cgi must be 'cgi' or 'cgid', not {self.cgi!r}")

    def _cgi_module(self) -> str:
        if self.cgi:
            return self.cgi
        return "cgi" if self.mpm == "prefork" else "cgid"

    def _load_lines(self) -> str:
        env = self.env
        lines = [f"LoadModule mpm_{self.mpm}_module {env.module_dir}/mod_mpm_{self.mpm}.so"]
        so = env.module_so(self.module)
        if not os.path.exists(so):
            raise HttpdError(
                f"the HTTP/2 module '{self.module}' is not at {so}: build it, set "
                f"H2X_MODULE_PATH, or run with H2X_TEST_MODULE=http2")
        h2_line = f"LoadModule {env.module_symbol(self.module)} {so}"
        if self.module_first:
            lines.append(h2_line)
        for name in STANDARD_MODULES + [self._cgi_module()]:
            if name in self.skip_modules:
                continue
            path = env.apache_module(name)
            if path:
                lines.append(f"LoadModule {name}_module {path}")
        if not self.module_first:
            lines.append(h2_line)
        if env.has_test_module:
            lines.append(f"LoadModule h2x_test_module {env.test_module_path}")
        return "\n".join(lines)

    def _render(self, path: str, extra_global: str, extra_vhost: str,
                extra_tls_vhost: str, loglevel: Optional[str]):
        cert, key = self.env.cert()
        cgi = self._cgi_module()
        cgi_conf = (f'<IfModule cgid_module>\n    ScriptSock "{self.root}/run/cgisock"\n'
                    f'</IfModule>' if cgi == "cgid" else "")
        values = {
            "ROOT": self.root,
            "HTTP_PORT": str(self.http_port),
            "HTTPS_PORT": str(self.https_port),
            "CERT": cert,
            "KEY": key,
            "LOAD_MODULES": self._load_lines(),
            "LOGLEVEL": loglevel or f"warn {self.env.module_log_name(self.module)}:debug",
            "CGI_CONFIG": cgi_conf + f'\n<IfModule cache_disk_module>\n'
                                     f'    CacheRoot "{self.root}/cache"\n</IfModule>',
            "EXTRA_GLOBAL": extra_global,
            "EXTRA_VHOST": extra_vhost,
            "EXTRA_TLS_VHOST": extra_tls_vhost,
        }
        tmpl_path = os.path.join(self.env.conf_template_dir, "httpd.conf.tmpl")
        with open(tmpl_path) as f:
            text = f.read()

        def subst(m):
            key_ = m.group(1)
            if key_ not in values:
                raise KeyError(f"{tmpl_path}: unknown placeholder @{key_}@")
            return values[key_]
        text = re.sub(r"@([A-Z_]+)@", subst, text)
        with open(path, "w") as f:
            f.write(text)

    # -- process control --------------------------------------------------

    def _apache2(self, *args, conf: Optional[str] = None, timeout: float = 30):
        """Run the apache2 binary on our config with a clean environment."""
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C",
               "APACHE_RUN_USER": "www-data", "APACHE_RUN_GROUP": "www-data"}
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if var in os.environ:
                env[var] = os.environ[var]
        if self.env.sanitize:
            env.update(self.sanitizer_environment())
        env.update(self.extra_env)
        cmd = [self.env.apache2, "-d", self.root, "-f", conf or self.conf_path, *args]
        return subprocess.run(cmd, env=env, capture_output=True, text=True,
                              timeout=timeout)

    def sanitizer_environment(self) -> dict:
        """LD_PRELOAD and *SAN_OPTIONS for this server (env.sanitizer_environment)."""
        return self.env.sanitizer_environment(self.sanitizer_dir)

    def sanitizer_reports(self) -> List[str]:
        """Paths of the sanitizer report files written so far (empty
        without H2X_SANITIZE)."""
        if not self.sanitizer_dir or not os.path.isdir(self.sanitizer_dir):
            return []
        return sorted(os.path.join(self.sanitizer_dir, f)
                      for f in os.listdir(self.sanitizer_dir))

    def start(self, timeout: float = 10.0):
        """Start httpd and wait until both ports accept connections.

        Writes the default config first if none was written.  If another
        process took one of our ports meanwhile, new ports are chosen and the
        start is retried.  Raises HttpdError with the error-log tail.
        """
        if self._config_kw is None:
            self.write_config()
        if self.running:
            raise HttpdError(f"{self.name}: already running as pid {self.pid}")
        if os.path.exists(self.pid_path):     # stale, from a killed server
            os.unlink(self.pid_path)
        attempts = 3
        for attempt in range(1, attempts + 1):
            offset = self._log_size()
            proc = self._apache2("-k", "start")
            if proc.returncode == 0 and self._wait_ready(timeout):
                return
            # A bind failure shows on stderr (before daemonizing) or in the log.
            output = f"{proc.stdout}{proc.stderr}\n-- error_log:\n{self._log_since(offset)}"
            if proc.returncode == 0:
                self._kill_all()
            if "Address already in use" in output and attempt < attempts:
                self.http_port, self.https_port = free_ports(2)
                self._render(self.conf_path, **self._config_kw)
                continue
            what = (f"apache2 -k start exited {proc.returncode}" if proc.returncode
                    else f"not ready within {timeout}s")
            raise HttpdError(f"{self.name}: {what} (ports {self.http_port}/"
                             f"{self.https_port}):\n{output}")

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.pid
            if pid is not None:
                if not _alive(pid):
                    return False
                if port_accepts(self.http_port) and port_accepts(self.https_port):
                    return True
            time.sleep(0.05)
        return False

    def _busy_workers(self) -> Optional[int]:
        """BusyWorkers from /server-status?auto (the asking request counts),
        or None if it cannot be had."""
        try:
            with socket.create_connection(("127.0.0.1", self.http_port), timeout=1) as sock:
                sock.sendall(b"GET /server-status?auto HTTP/1.1\r\nHost: localhost\r\n"
                             b"Connection: close\r\n\r\n")
                data = b""
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    data += chunk
        except OSError:
            return None
        m = re.search(rb"\nBusyWorkers: (\d+)", data)
        return int(m.group(1)) if m else None

    def _settle(self, settle: float):
        """Give connections still being served up to `settle` seconds to end
        before the stop. httpd 2.4.71's event MPM can crash a child on an
        ungraceful stop while workers are still closing connections (its
        main thread reads a socket a worker just released, see
        logscan.KNOWN_REPORTS); tests that stop a server right after their
        clients left would otherwise see that httpd bug now and then."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            busy = self._busy_workers()
            if busy is None or busy <= 1:
                break
            time.sleep(0.1)
        # Our own probe's connection must be gone too: a connection in
        # lingering close when the stop comes makes the event MPM log
        # AH03092 (apr_pollset_add: Bad file descriptor).
        time.sleep(0.3)

    def stop(self, timeout: float = 10.0, settle: float = 2.0):
        """Stop httpd (SIGTERM to the parent) and wait until it is gone.

        First up to `settle` seconds for busy workers to finish (0: stop at
        once, for tests that time the stop itself).  After `timeout` the
        process group is killed with SIGKILL.
        """
        pid = self.pid
        if pid is None or not _alive(pid):
            return
        if settle > 0:
            self._settle(settle)
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        if not self._wait_gone(pid, timeout):
            self._kill_all()
            raise HttpdError(f"{self.name}: pid {pid} did not stop within {timeout}s; "
                             f"killed\n-- error_log:\n{self.error_log_tail()}")

    def restart(self, timeout: float = 10.0):
        """Full stop and start (a fresh parent, so MPM and module changes apply)."""
        self.stop()
        self.start(timeout=timeout)

    def reconfigure(self, timeout: float = 10.0, **kw):
        """write_config(**kw), then restart().  No kw means the default config."""
        self.write_config(**kw)
        self.restart(timeout=timeout)

    def graceful(self, timeout: float = 10.0):
        """`apache2 -k graceful`; wait until the new generation is serving."""
        pid = self.pid
        if pid is None or not _alive(pid):
            raise HttpdError(f"{self.name}: graceful restart of a server that is not running")
        offset = self._log_size()
        proc = self._apache2("-k", "graceful")
        if proc.returncode != 0:
            raise HttpdError(f"{self.name}: apache2 -k graceful exited {proc.returncode}:\n"
                             f"{proc.stdout}{proc.stderr}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if RESUMING in self._log_since(offset) and \
                    port_accepts(self.http_port) and port_accepts(self.https_port):
                return
            if not _alive(pid):
                break
            time.sleep(0.05)
        raise HttpdError(f"{self.name}: graceful restart did not complete within "
                         f"{timeout}s\n-- error_log:\n{self._log_since(offset)}")

    def graceful_stop(self, timeout: float = 30.0, wait: bool = True):
        """`apache2 -k graceful-stop`; with wait, until the parent is gone."""
        pid = self.pid
        if pid is None or not _alive(pid):
            return
        proc = self._apache2("-k", "graceful-stop")
        if proc.returncode != 0:
            raise HttpdError(f"{self.name}: apache2 -k graceful-stop exited "
                             f"{proc.returncode}:\n{proc.stdout}{proc.stderr}")
        if wait and not self._wait_gone(pid, timeout):
            raise HttpdError(f"{self.name}: pid {pid} still there {timeout}s after "
                             f"graceful-stop")

    @staticmethod
    def _wait_gone(pid: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _alive(pid):
                return True
            time.sleep(0.05)
        return not _alive(pid)

    def _our_processes(self) -> List[int]:
        """Pids of live apache2 processes running on this server root (the
        parent and children; CGIs are not included)."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if argv and argv[0] == self.env.apache2.encode() and \
                    self.root.encode() in argv and _alive(int(entry)):
                pids.append(int(entry))
        return pids

    def _kill_all(self):
        """SIGKILL every apache2 process of this server root, by pid."""
        pids = self._our_processes()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for pid in pids:
            self._wait_gone(pid, 5.0)

    def close(self):
        """Stop the server and stop scanning its log."""
        try:
            self.stop()
        finally:
            Httpd._live.discard(self)

    @classmethod
    def live(cls) -> List["Httpd"]:
        """All Httpd objects whose error logs the per-test scan reads."""
        return list(cls._live)

    # -- helpers ----------------------------------------------------------

    @staticmethod
    def _copy_tree(src: str, dst: str, executable: bool):
        os.makedirs(dst, mode=0o755, exist_ok=True)
        if not os.path.isdir(src):
            return
        shutil.copytree(src, dst, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        for base, dirs, files in os.walk(dst):
            os.chmod(base, 0o755)
            for fn in files:
                os.chmod(os.path.join(base, fn), 0o755 if executable else 0o644)

    def __repr__(self):
        return (f"Httpd({self.name}, module={self.module}, mpm={self.mpm}, "
                f"ports={self.http_port}/{self.https_port}, root={self.root})")
