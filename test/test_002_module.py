"""002: the built module itself: what it exports, how it stands aside for
mod_http2, what it registers for other modules (issue 2, issue 9)."""
import os
import subprocess
import time

import pytest
from h2.settings import SettingCodes

from h2x import logscan
from h2x.clients import curl
from h2x.frames import FrameClient
from h2x.httpd import Httpd

SETTINGS_MAX_STREAMS = int(SettingCodes.MAX_CONCURRENT_STREAMS)
SETTINGS_WINDOW = int(SettingCodes.INITIAL_WINDOW_SIZE)


def _module_so(env):
    return env.module_so()


def test_h2x_002_01_exports_only_the_module(env):
    """Hidden visibility: the only dynamic symbol mod_h2x defines is h2x_module."""
    out = subprocess.run(["nm", "-D", "--defined-only", _module_so(env)],
                         capture_output=True, text=True, check=True).stdout
    names = {line.split()[-1] for line in out.splitlines() if line.strip()}
    names = {n for n in names if not n.startswith("_")}
    assert names == {"h2x_module"}, names


# Both loaded: mod_http2 serves, whichever LoadModule line comes first.
# httpd gives a directive to every module that defines it until one fails
# it: "65536junk" passes mod_http2 (atoi) but not mod_h2x, which must
# leave it alone (DECLINE_CMD) while inactive.
COLOAD_CONF = """
H2MaxSessionStreams 7
H2WindowSize 65536junk
<Location /index.html>
    <If "%{HTTP2} == 'on'">
        Header set X-H2-Expr on
    </If>
</Location>
"""


@pytest.mark.parametrize("last", ["http2", "h2x"])
def test_h2x_002_02_inactive_beside_mod_http2(env, last):
    """With mod_http2 loaded too (before or after it), mod_h2x stands aside
    instead of refusing to start: httpd starts, restarts and stops,
    mod_http2 serves h2 and h2c, gets the H2* directives and answers the
    optional functions (%{HTTP2}); H2X10001 says so at each start."""
    http2 = os.path.join(env.module_dir, "mod_http2.so")
    assert os.path.exists(http2), "Debian's apache2 package ships mod_http2.so"
    if last == "http2":     # mod_h2x's line first, as Debian's h2x.load < http2.load
        server = Httpd(env, name="test_002_coload_h2x_first", module="h2x")
        extra = f"LoadModule http2_module {http2}\n" + COLOAD_CONF
    else:
        server = Httpd(env, name="test_002_coload_http2_first", module="http2")
        extra = f"LoadModule h2x_module {env.module_so('h2x')}\n" + COLOAD_CONF
    try:
        rc, out = server.check_config(extra_global=extra)
        assert rc == 0 and "Syntax OK" in out, out
        assert "H2X10001: mod_h2x is inactive: mod_http2 is loaded too" in out, out
        server.expect_log(r"H2X10001: mod_h2x is inactive", required=True)
        server.write_config(extra_global=extra, loglevel="warn h2x:trace1 http2:debug")
        server.start()
        server.graceful()
        mark = len(server.error_log_lines())
        for url, http in ((server.url("/index.html"), "2-prior"),
                          (server.url("/index.html", tls=True), "2")):
            r = curl(url, http=http)
            assert r.status == 200 and r.http_version == "2", r
            assert r.header("x-h2-expr") == "on", r.headers
        c = FrameClient.for_httpd(server)
        try:
            c.connect()
            sid = c.request("GET", "/index.html")
            assert c.wait_stream_end(sid) and c.stream(sid).status == 200
            assert c.settings and c.settings[0].get(SETTINGS_MAX_STREAMS) == 7, c.settings
            assert c.settings[0].get(SETTINGS_WINDOW) == 65536, c.settings
        finally:
            c.close()
        r = curl(server.url("/server-status?auto"), http="1.1")
        assert r.status == 200 and "H2xSessions" not in r.text, r.text
        time.sleep(0.2)
        log = "\n".join(server.error_log_lines()[mark:])
        assert "AH03200" in log and "h2x_session(" not in log, log
        server.stop()
        notes = [line for line in server.error_log_lines() if "H2X10001" in line]
        assert len(notes) == 2, notes       # the start and the graceful restart
        assert f"LoadModule http2_module {http2}" in notes[0], notes[0]
        assert f"LoadModule h2x_module {env.module_so('h2x')}" in notes[0], notes[0]
        assert "(Debian: a2dismod http2)" in notes[0], notes[0]
        assert "(Debian: a2dismod h2x)" in notes[0], notes[0]
        problems = server.log.scan()
        assert not problems and not logscan.EXPECTED.missing(), problems
    finally:
        server.close()


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
