"""002: the built module itself: what it exports, what it refuses, what it
registers for other modules (issue 2)."""
import os
import subprocess

from h2x.clients import curl


def _module_so(env):
    return env.module_so()


def test_h2x_002_01_exports_only_the_module(env):
    """Hidden visibility: the only dynamic symbol mod_h2x defines is h2x_module."""
    out = subprocess.run(["nm", "-D", "--defined-only", _module_so(env)],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    names = {n for n in names if not n.startswith("_")}
    assert names == {"h2x_module"}, names


def test_h2x_002_02_refuses_mod_http2_beside_it(httpd, env):
    """Loading mod_http2 next to mod_h2x fails start-up with a clear message."""
    http2 = os.path.join(env.module_dir, "mod_http2.so")
    assert os.path.exists(http2), "Debian's apache2 package ships mod_http2.so"
    rc, out = httpd.check_config(extra_global=f"LoadModule http2_module {http2}")
    assert rc != 0
    assert "mod_h2x cannot be loaded together with mod_http2" in out, out
    assert "H2X10001" in out, out


def test_h2x_002_03_expr_http2_off_over_http11(httpd):
    """ap_expr's %{HTTP2} finds http2_is_h2: 'off' over HTTP/1.1, 'on' over h2."""
    httpd.reconfigure(extra_global="""
<Location /index.html>
    <If "%{HTTP2} == 'off'">
        Header set X-H2-Expr off
    </If>
    <Else>
        Header set X-H2-Expr on
    </Else>
</Location>
""")
    r = curl(httpd.url("/index.html"), http="1.1")
    assert r.status == 200 and r.header("x-h2-expr") == "off", r.headers
    r = curl(httpd.url("/index.html"), http="2-prior")
    assert r.status == 200 and r.http_version == "2"
    assert r.header("x-h2-expr") == "on", r.headers
    r = curl(httpd.url("/index.html", tls=True), http="2")
    assert r.status == 200 and r.http_version == "2"
    assert r.header("x-h2-expr") == "on", r.headers


def test_h2x_002_04_protocols_listed(httpd):
    """The module registers h2 and h2c: an Upgrade to h2c is answered with 101
    and HTTP/2, an HTTP/1.1 response advertises both ids in its Upgrade field."""
    r = curl(httpd.url("/index.html"), http="1.1")
    assert r.status == 200
    upgrade = (r.header("upgrade") or "").replace(" ", "").split(",")
    assert "h2c" in upgrade and "h2" in upgrade, r.headers
    r = curl(httpd.url("/index.html"), http="h2c-upgrade")
    assert r.status == 200 and r.http_version == "2"
