"""005: the README's demo command comes up and serves its site over HTTP/1.1,
h2 (TLS, ALPN) and h2c (prior knowledge and Upgrade) (issue 2, issue 3)."""
import os
import subprocess


def test_h2x_005_01_demo_check(env):
    script = os.path.join(env.repo_root, "scripts", "demo")
    run_env = dict(os.environ, DEMO_REQUIRE_H2="1")
    p = subprocess.run([script, "--check", "--no-build"], capture_output=True, text=True,
                       timeout=120, env=run_env, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "check passed" in out, out
    assert "FAIL" not in out, out
