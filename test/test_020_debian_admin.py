"""020: a Debian admin switches from mod_http2 to mod_h2x and back with
Debian's own a2enmod/a2dismod and apache2ctl, mod_proxy_http2 in use
(ProxyPass to an h2c backend), as docs/migrating-from-mod_http2.md says
(issue 9).

The tools run for real on a scratch copy of /etc/apache2: a2enmod,
a2dismod and apache2ctl take the configuration directory from
APACHE_CONFDIR, and read APACHE_CONFDIR/envvars, which here points every
run-time path (pid file, logs, a2enmod's state markers) into the scratch
directory.  `make install-debian-conf` installs h2x.load, h2x.conf and
proxy_http2_h2x.load into its mods-available, as `make install` does on
Debian.  The machine's /etc/apache2 is only read.

In every state the admin can reach, `apache2ctl configtest`, a start,
`apache2ctl graceful` and `apache2ctl stop` work, and h2c is served by the
module the state promises (mod_http2 when both are enabled, with mod_h2x
saying so in the error log, H2X10001).
"""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from h2x import logscan
from h2x.clients import curl
from h2x.ports import free_port, port_accepts

pytestmark = [pytest.mark.h2]

ETC = "/etc/apache2"
SBIN = "/usr/sbin"
# Lines at these levels, or showing a crash, fail the test unless expected.
BAD_LEVEL = re.compile(r"\[[\w_]*:(emerg|alert|crit|error)\]")
CRASH = re.compile("|".join(logscan.CRASH))
SWITCH = "a2dismod proxy_http2 http2 && a2enmod h2x proxy_http2_h2x"
# What H2X10001 tells to run when mod_proxy_http2 is loaded: to use
# mod_h2x, to keep mod_http2.
FIX = "a2dismod proxy_http2 http2 && a2enmod proxy_http2_h2x"
KEEP = "a2dismod proxy_http2_h2x h2x && a2enmod proxy_http2"
ROLLBACK = "a2dismod proxy_http2_h2x h2x && a2enmod http2 proxy_http2"


class DebianConf:
    """A scratch copy of /etc/apache2 driven with Debian's tools."""

    def __init__(self, env, root: str):
        self.env = env
        self.root = root
        self.etc = os.path.join(root, "etc")
        shutil.copytree(ETC, self.etc, symlinks=True)
        for sub in ("run", "lock", "log", "state", "htdocs"):
            os.makedirs(os.path.join(root, sub), mode=0o755, exist_ok=True)
        os.chmod(root, 0o755)
        with open(os.path.join(root, "htdocs", "index.html"), "w") as f:
            f.write("<p>h2x debian admin test</p>\n")
        self.port = free_port()
        self._write_config()
        self._install_h2x_files()

    # -- setup ------------------------------------------------------------

    def _write_config(self):
        r = self.root
        with open(os.path.join(self.etc, "envvars"), "w") as f:
            f.write(f"""unset HOME
export APACHE_RUN_USER=www-data
export APACHE_RUN_GROUP=www-data
export APACHE_PID_FILE={r}/run/apache2.pid
export APACHE_RUN_DIR={r}/run
export APACHE_LOCK_DIR={r}/lock
export APACHE_LOG_DIR={r}/log
export APACHE_STATE_DIRECTORY={r}/state
export LANG=C
""")
        with open(os.path.join(self.etc, "ports.conf"), "w") as f:
            f.write(f"Listen 127.0.0.1:{self.port}\n")
        for name in os.listdir(os.path.join(self.etc, "sites-enabled")):
            os.unlink(os.path.join(self.etc, "sites-enabled", name))
        with open(os.path.join(self.etc, "sites-available", "h2x-test.conf"), "w") as f:
            f.write(f"""ServerName 127.0.0.1
DocumentRoot {r}/htdocs
<Directory {r}/htdocs>
    Require all granted
</Directory>
# The backend of the proxy is this server itself, over h2c.
<IfModule proxy_http2_module>
    ProxyPass /proxied/ h2c://127.0.0.1:{self.port}/
</IfModule>
""")
        os.symlink("../sites-available/h2x-test.conf",
                   os.path.join(self.etc, "sites-enabled", "h2x-test.conf"))
        # Which module starts an HTTP/2 session shows in the log:
        # h2x "h2x_session(N): h2c starts", mod_http2 "AH03200: h2_session(...)".
        with open(os.path.join(self.etc, "conf-enabled", "zz-h2x-test.conf"), "w") as f:
            f.write("<IfModule h2x_module>\n    LogLevel h2x:trace1\n</IfModule>\n"
                    "<IfModule http2_module>\n    LogLevel http2:debug\n</IfModule>\n")

    def _install_h2x_files(self):
        repo = self.env.repo_root
        if not os.path.exists(os.path.join(repo, "Makefile")):
            pytest.skip("no Makefile: run scripts/build (the test uses make install-debian-conf)")
        p = subprocess.run(["make", "-s", "-C", repo, "install-debian-conf",
                            f"MODS_AVAILABLE={self.etc}/mods-available",
                            f"H2X_SO={self.env.module_so('h2x')}"],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, p.stdout + p.stderr
        for name in ("h2x.load", "h2x.conf", "proxy_http2_h2x.load"):
            assert os.path.exists(os.path.join(self.etc, "mods-available", name)), name

    # -- tools ------------------------------------------------------------

    def _tool_env(self):
        env = {"PATH": f"{SBIN}:/usr/bin:/sbin:/bin", "LANG": "C",
               "APACHE_CONFDIR": self.etc}
        for var in ("ASAN_OPTIONS", "UBSAN_OPTIONS", "LSAN_OPTIONS"):
            if var in os.environ:
                env[var] = os.environ[var]
        # A sanitizer build (H2X_SANITIZE) loads only with the runtimes
        # preloaded; their reports go to a directory of this test.
        env.update(self.env.sanitizer_environment(self.sanitizer_dir))
        return env

    @property
    def sanitizer_dir(self) -> str:
        path = os.path.join(os.path.dirname(self.etc), "sanitizers")
        os.makedirs(path, mode=0o777, exist_ok=True)
        os.chmod(path, 0o777)
        return path

    def sanitizer_reports(self):
        return [n for n in os.listdir(self.sanitizer_dir)
                if os.path.getsize(os.path.join(self.sanitizer_dir, n)) > 0]

    def sh(self, command: str) -> subprocess.CompletedProcess:
        """Run an admin's shell command line (a2enmod, a2dismod, apache2ctl)."""
        p = subprocess.run(["sh", "-c", command], env=self._tool_env(), capture_output=True,
                           text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert not self.sanitizer_reports(), \
            f"sanitizer reports in {self.sanitizer_dir}: {self.sanitizer_reports()}"
        return p

    def enabled(self):
        """Names of the enabled modules of interest."""
        names = {n[:-5] for n in os.listdir(os.path.join(self.etc, "mods-enabled"))
                 if n.endswith(".load")}
        return names & {"http2", "proxy_http2", "h2x", "proxy_http2_h2x"}

    # -- the server -------------------------------------------------------

    @property
    def error_log(self) -> str:
        return os.path.join(self.root, "log", "error.log")

    def log_size(self) -> int:
        try:
            return os.path.getsize(self.error_log)
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with open(self.error_log, errors="replace") as f:
                f.seek(offset)
                return f.read()
        except FileNotFoundError:
            return ""

    @property
    def pid(self):
        try:
            with open(os.path.join(self.root, "run", "apache2.pid")) as f:
                return int(f.read().strip())
        except (OSError, ValueError):
            return None

    def start(self):
        """/usr/sbin/apache2 -d ETC -f ETC/apache2.conf -k start, with envvars."""
        p = self.sh(f". {self.etc}/envvars && exec {SBIN}/apache2 -d {self.etc} "
                    f"-f {self.etc}/apache2.conf -k start")
        assert p.returncode == 0, p.stdout + p.stderr + self.log_since(0)
        self._wait(lambda: port_accepts(self.port), "accepting connections")
        return p

    def stop(self):
        pid = self.pid
        p = self.sh("apache2ctl stop")
        assert p.returncode == 0, p.stdout + p.stderr
        if pid:
            self._wait(lambda: not _alive(pid), f"pid {pid} gone")

    def graceful(self):
        offset = self.log_size()
        p = self.sh("apache2ctl graceful")
        assert p.returncode == 0, p.stdout + p.stderr
        self._wait(lambda: "resuming normal operations" in self.log_since(offset)
                   and port_accepts(self.port), "graceful restart done")

    def kill(self):
        """Cleanup only: SIGKILL the parent of this scratch server, by pid."""
        pid = self.pid
        if pid and _alive(pid):
            os.kill(pid, signal.SIGKILL)

    @staticmethod
    def _wait(cond, what, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if cond():
                return
            time.sleep(0.05)
        raise AssertionError(f"not {what} within {timeout}s")

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="module")
def debian(env):
    if env.module != "h2x":
        pytest.skip("the Debian switch to mod_h2x (H2X_TEST_MODULE=h2x only)")
    for tool in ("a2enmod", "a2dismod", "apache2ctl"):
        if not os.path.exists(os.path.join(SBIN, tool)):
            pytest.skip(f"{SBIN}/{tool} is missing (Debian package apache2)")
    if not os.path.isdir(ETC):
        pytest.skip(f"{ETC} is missing (Debian package apache2)")
    conf = DebianConf(env, os.path.join(env.session_dir, "debian-admin"))
    # Whatever this machine's /etc/apache2 had: mod_h2x off to begin with.
    p = conf.sh("a2dismod -q -f proxy_http2_h2x h2x")
    assert p.returncode == 0, p.stdout + p.stderr
    try:
        yield conf
    finally:
        conf.kill()


def _check_state(d: DebianConf, serving: str, coload: bool = False):
    """configtest, start, h2c and the proxy, graceful, again, stop."""
    offset = d.log_size()
    p = d.sh("apache2ctl configtest")
    assert p.returncode == 0 and "Syntax OK" in p.stderr, p.stdout + p.stderr
    assert ("H2X10001" in p.stderr) == coload, p.stderr
    d.start()
    for round_ in ("start", "graceful"):
        if round_ == "graceful":
            d.graceful()
        mark = d.log_size()
        r = curl(d.url("/index.html"), http="2-prior")
        assert r.status == 200 and r.http_version == "2", r
        assert b"h2x debian admin test" in r.body
        # mod_proxy_http2 to the h2c backend (this server), over HTTP/1.1.
        r = curl(d.url("/proxied/index.html"), http="1.1")
        assert r.status == 200 and b"h2x debian admin test" in r.body, r
        r = curl(d.url("/server-status?auto"), http="1.1")
        assert r.status == 200, r
        assert ("H2xSessions:" in r.text) == (serving == "h2x"), r.text
        time.sleep(0.2)     # the log lines of the sessions
        log = d.log_since(mark)
        if serving == "h2x":
            assert "h2x_session(" in log and "AH03200" not in log, log
        else:
            assert "AH03200" in log and "h2x_session(" not in log, log
    d.stop()
    log = d.log_since(offset)
    # Said once per start and once per graceful restart, with the way out.
    notes = [line for line in log.splitlines() if "H2X10001" in line]
    assert len(notes) == (2 if coload else 0), log
    for line in notes:
        assert "[h2x:error]" in line and "LoadModule http2_module" in line, line
        assert "LoadModule h2x_module" in line and f"(Debian: {FIX})" in line, line
        assert f"(Debian: {KEEP})" in line, line
    bad = [line for line in log.splitlines()
           if (BAD_LEVEL.search(line) and "H2X10001" not in line) or CRASH.search(line)]
    assert not bad, "\n".join(bad)
    return notes


def test_h2x_020_01_stock_mod_http2_with_proxy(debian):
    """Before: Debian's mod_http2 and mod_proxy_http2 (proxy_http2 depends on http2)."""
    d = debian
    p = d.sh("a2enmod -q http2 proxy_http2 status")
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"http2", "proxy_http2"}
    _check_state(d, serving="http2")


def test_h2x_020_02_h2x_refused_beside_http2(debian):
    """a2enmod h2x refuses while http2 is enabled (h2x.load: Conflicts);
    a2dismod http2 refuses while proxy_http2 depends on it."""
    d = debian
    p = d.sh("a2enmod h2x")
    assert p.returncode != 0 and "conflicts" in p.stderr, p.stdout + p.stderr
    p = d.sh("a2enmod proxy_http2_h2x")
    assert p.returncode != 0, p.stdout + p.stderr
    p = d.sh("a2dismod http2")
    assert p.returncode != 0 and "proxy_http2" in p.stderr, p.stdout + p.stderr
    assert d.enabled() == {"http2", "proxy_http2"}


def test_h2x_020_03_documented_switch(debian):
    """The switch in docs/migrating-from-mod_http2.md: mod_h2x serves h2c,
    Debian's mod_proxy_http2 still proxies, without mod_http2."""
    d = debian
    p = d.sh(SWITCH)
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"h2x", "proxy_http2_h2x"}
    _check_state(d, serving="h2x")


def test_h2x_020_04_both_enabled(debian):
    """a2enmod proxy_http2 after the switch brings mod_http2 back beside
    mod_h2x (Debian's proxy_http2.load depends on http2). httpd starts,
    restarts and stops; mod_http2 serves as before; mod_h2x logs H2X10001
    with the command to run, and that command gets mod_h2x back."""
    d = debian
    p = d.sh("a2enmod proxy_http2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"h2x", "proxy_http2_h2x", "http2", "proxy_http2"}
    notes = _check_state(d, serving="http2", coload=True)
    assert f"(Debian: {FIX})" in notes[0]
    p = d.sh(FIX)
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"h2x", "proxy_http2_h2x"}
    _check_state(d, serving="h2x")


def test_h2x_020_05_rollback(debian):
    """Back to mod_http2, as the migration guide says."""
    d = debian
    p = d.sh(ROLLBACK)
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"http2", "proxy_http2"}
    _check_state(d, serving="http2")


def test_h2x_020_06_both_enabled_keep_mod_http2(debian):
    """The other way out of both enabled, as H2X10001 says: keep mod_http2."""
    d = debian
    p = d.sh(f"{SWITCH} && a2enmod proxy_http2")
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"h2x", "proxy_http2_h2x", "http2", "proxy_http2"}
    p = d.sh("apache2ctl configtest")
    assert p.returncode == 0 and f"(Debian: {KEEP})" in p.stderr, p.stdout + p.stderr
    p = d.sh(KEEP)
    assert p.returncode == 0, p.stdout + p.stderr
    assert d.enabled() == {"http2", "proxy_http2"}
    _check_state(d, serving="http2")
