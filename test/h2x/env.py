"""What the test machine offers: paths, the module under test, client tools.

Environment variables:

- H2X_TEST_MODULE   which HTTP/2 module httpd loads: `h2x` (default, this
                    project's mod_h2x) or `http2` (Debian's mod_http2, for
                    comparison runs).
- H2X_MODULE_PATH   path of mod_h2x.so.  Default: the first that exists of
                    <repo>/mod_h2x/.libs/mod_h2x.so and <repo>/.libs/mod_h2x.so
                    (where the top-level libtool build puts it).
- H2X_APACHE2       the httpd binary (default /usr/sbin/apache2).
- H2X_KEEP_TMP      if set to 1, the session temp dir is not removed.
- H2X_SANITIZE      1: run httpd with the ASan and UBSan runtimes preloaded
                    (for a module built with ./configure --enable-sanitizers,
                    docs/sanitizers.md); any sanitizer report fails the test.
                    0: never.  Unset: on when mod_h2x.so (or the test
                    module) was built with sanitizers, which cannot load
                    into httpd without the runtimes.

No Debian /etc/apache2 file is used: every httpd gets its own config.
"""

import os
import shutil
import subprocess
import tempfile
from typing import Dict, List, Optional

from . import certs

MODULES = ("h2x", "http2")


class Env:
    """Facts about the machine and the run, shared by the whole session."""

    def __init__(self, session_dir: Optional[str] = None, module: Optional[str] = None):
        here = os.path.dirname(os.path.abspath(__file__))
        self.test_dir = os.path.dirname(here)
        self.repo_root = os.path.dirname(self.test_dir)
        self.conf_template_dir = os.path.join(here, "conf")
        self.htdocs_src = os.path.join(self.test_dir, "htdocs")
        self.cgi_src = os.path.join(self.test_dir, "cgi-bin")

        self.apache2 = os.environ.get("H2X_APACHE2", "/usr/sbin/apache2")
        self.module_dir = self._apxs_query("LIBEXECDIR") or "/usr/lib/apache2/modules"

        self.module = module or os.environ.get("H2X_TEST_MODULE", "h2x")
        if self.module not in MODULES:
            raise ValueError(f"H2X_TEST_MODULE must be one of {MODULES}, not {self.module!r}")
        self.h2x_module_path = os.environ.get("H2X_MODULE_PATH") or self._default_h2x_path()
        self.test_module_path = os.path.join(
            self.test_dir, "mod_h2x_test", ".libs", "mod_h2x_test.so")

        self.curl = shutil.which("curl")
        self.nghttp = shutil.which("nghttp")
        self.h2load = shutil.which("h2load")
        self.openssl = shutil.which("openssl")

        self.sanitize = self._want_sanitize()
        self._sanitizer_runtimes: Optional[List[str]] = None

        self._own_session_dir = session_dir is None
        self.session_dir = session_dir or tempfile.mkdtemp(prefix="h2x-test-")
        # httpd children run as www-data and must traverse into server roots.
        os.chmod(self.session_dir, 0o755)
        self._cert = None

    # -- module under test -------------------------------------------------

    def _default_h2x_path(self) -> str:
        candidates = [
            os.path.join(self.repo_root, "mod_h2x", ".libs", "mod_h2x.so"),
            os.path.join(self.repo_root, ".libs", "mod_h2x.so"),
        ]
        for path in candidates:
            if os.path.exists(path):
                return path
        return candidates[0]

    def module_so(self, module: Optional[str] = None) -> str:
        """Path of the .so for `module` ('h2x' or 'http2')."""
        module = module or self.module
        if module == "h2x":
            return self.h2x_module_path
        return os.path.join(self.module_dir, "mod_http2.so")

    def module_symbol(self, module: Optional[str] = None) -> str:
        """The LoadModule symbol, e.g. 'h2x_module'."""
        return f"{module or self.module}_module"

    def module_log_name(self, module: Optional[str] = None) -> str:
        """The module's name for LogLevel, e.g. 'h2x' in 'LogLevel h2x:debug'."""
        return module or self.module

    @property
    def has_test_module(self) -> bool:
        """True if test/mod_h2x_test has been built (it is loaded if so)."""
        return os.path.exists(self.test_module_path)

    def apache_module(self, name: str) -> Optional[str]:
        """Path of mod_<name>.so in httpd's module dir, or None if absent."""
        path = os.path.join(self.module_dir, f"mod_{name}.so")
        return path if os.path.exists(path) else None

    # -- sanitizers (H2X_SANITIZE) ------------------------------------------

    def _want_sanitize(self) -> bool:
        value = os.environ.get("H2X_SANITIZE", "")
        if value not in ("", "0", "1"):
            raise ValueError(f"H2X_SANITIZE must be 0 or 1, not {value!r}")
        if value:
            return value == "1"
        paths = [self.test_module_path]
        if self.module == "h2x":
            paths.append(self.h2x_module_path)
        return any(self.is_sanitized(p) for p in paths)

    @staticmethod
    def is_sanitized(path: str) -> bool:
        """True if the shared object at `path` was built with ASan."""
        try:
            with open(path, "rb") as f:
                return b"__asan_init" in f.read()
        except OSError:
            return False

    def sanitizer_runtimes(self) -> List[str]:
        """Paths of the ASan and UBSan runtimes to LD_PRELOAD into httpd
        (httpd itself is not instrumented; the runtimes must come first)."""
        if self._sanitizer_runtimes is None:
            libs = []
            for name in ("libasan.so", "libubsan.so"):
                try:
                    out = subprocess.run(["gcc", f"-print-file-name={name}"],
                                         capture_output=True, text=True, timeout=10)
                    path = os.path.realpath(out.stdout.strip())
                except (OSError, subprocess.TimeoutExpired):
                    path = ""
                if not path or not os.path.isabs(path) or not os.path.exists(path):
                    raise RuntimeError(f"H2X_SANITIZE: {name} not found "
                                       f"(gcc -print-file-name={name}); install g++")
                libs.append(path)
            self._sanitizer_runtimes = libs
        return self._sanitizer_runtimes

    @staticmethod
    def make_sanitizer_dir(parent: str) -> str:
        """<parent>/sanitizers, writable for httpd children (www-data)."""
        path = os.path.join(parent, "sanitizers")
        os.makedirs(path, exist_ok=True)
        os.chmod(path, 0o1777)
        return path

    def sanitizer_environment(self, log_dir: str) -> Dict[str, str]:
        """Environment for an apache2 whose modules were built with
        --enable-sanitizers (docs/sanitizers.md): the runtimes preloaded,
        ASan reports written to files in `log_dir` (asan.<pid>), UBSan's to
        the error log; the log scan turns both into test failures.  Options the caller
        set in ASAN_OPTIONS/UBSAN_OPTIONS come last and win.  Empty when
        not self.sanitize."""
        if not self.sanitize:
            return {}
        asan = ":".join([
            f"log_path={log_dir}/asan",
            "detect_leaks=0",            # httpd leaves its pools to the exit
            "halt_on_error=0",           # report everything (-fsanitize-recover=address)
            "abort_on_error=0",
            "quarantine_size_mb=64",     # several children per server: keep memory modest
            "detect_stack_use_after_return=0",
            # httpd installs its own handlers for SIGSEGV, SIGBUS, SIGABRT,
            # ... (core dumps); keep ASan's, which print the stack.
            "handle_abort=1",
            "handle_sigbus=1",
            "handle_sigfpe=1",
            "handle_sigill=1",
            "allow_user_segv_handler=0",
            "print_summary=1",
            # Frames as module+offset; the log scan symbolizes them.  Spawning
            # a symbolizer inside an httpd child is slow enough that another
            # thread's crash (often the follow-up of the same bug) kills the
            # process before the report's stacks are written.
            "symbolize=0",
        ])
        # UBSan beside ASan ignores log_path (GCC 12's runtimes): its reports
        # go to stderr, which is httpd's error log, where the scan finds
        # "runtime error:" and the frames after it.
        ubsan = ":".join([
            f"log_path={log_dir}/ubsan",     # honoured by a UBSan-only runtime
            "print_stacktrace=1",
            "halt_on_error=0",
            "symbolize=0",
        ])
        user_asan = os.environ.get("ASAN_OPTIONS")
        user_ubsan = os.environ.get("UBSAN_OPTIONS")
        return {
            "LD_PRELOAD": ":".join(self.sanitizer_runtimes()),
            "ASAN_OPTIONS": asan + (f":{user_asan}" if user_asan else ""),
            "UBSAN_OPTIONS": ubsan + (f":{user_ubsan}" if user_ubsan else ""),
        }

    # -- session resources -------------------------------------------------

    def cert(self):
        """(cert_path, key_path) of the session's localhost certificate."""
        if self._cert is None:
            self._cert = certs.make_cert(os.path.join(self.session_dir, "ca"))
        return self._cert

    def has_tool(self, name: str) -> bool:
        return getattr(self, name, None) is not None

    def cleanup(self):
        """Remove the session dir (unless H2X_KEEP_TMP=1 or it was given to us)."""
        if self._own_session_dir and os.environ.get("H2X_KEEP_TMP") != "1":
            shutil.rmtree(self.session_dir, ignore_errors=True)

    @staticmethod
    def _apxs_query(var: str) -> Optional[str]:
        apxs = shutil.which("apxs") or shutil.which("apxs2")
        if not apxs:
            return None
        try:
            out = subprocess.run([apxs, "-q", var], capture_output=True, text=True,
                                 timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        value = out.stdout.strip()
        return value if out.returncode == 0 and value else None

    def __repr__(self):
        return (f"Env(module={self.module}, so={self.module_so()}, "
                f"test_module={self.has_test_module}, sanitize={self.sanitize}, "
                f"session_dir={self.session_dir})")
