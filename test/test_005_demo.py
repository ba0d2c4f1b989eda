"""005: the README's demo command comes up and serves its site over HTTP/1.1,
h2 (TLS, ALPN) and h2c (prior knowledge and Upgrade) (issue 2, issue 3)."""
import os
import shlex
import subprocess
import tempfile

from h2x import logscan


def test_h2x_005_01_demo_check(env):
    script = os.path.join(env.repo_root, "scripts", "demo")
    run_env = dict(os.environ, DEMO_REQUIRE_H2="1")
    log_dir = None
    if env.sanitize:
        # Only the demo's httpd gets the sanitizer runtimes (docs/sanitizers.md),
        # through a wrapper given as its H2X_APACHE2.
        tmp = tempfile.mkdtemp(prefix="005-", dir=env.session_dir)
        log_dir = env.make_sanitizer_dir(tmp)
        wrapper = os.path.join(tmp, "apache2")
        with open(wrapper, "w") as f:
            f.write("#!/bin/sh\n")
            for name, value in env.sanitizer_environment(log_dir).items():
                f.write(f"export {name}={shlex.quote(value)}\n")
            f.write(f'exec {shlex.quote(env.apache2)} "$@"\n')
        os.chmod(wrapper, 0o755)
        run_env["H2X_APACHE2"] = wrapper
    p = subprocess.run([script, "--check", "--no-build"], capture_output=True, text=True,
                       timeout=120, env=run_env, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "check passed" in out, out
    assert "FAIL" not in out, out
    if log_dir:
        reports = logscan.LogScanner(os.devnull, sanitizer_dir=log_dir).scan()
        assert not reports, "\n".join(reports)
