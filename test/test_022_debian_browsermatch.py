"""022: Debian's stock BrowserMatch lines (mods-available/setenvif.conf).

A stock Debian httpd sets `nokeepalive`, `downgrade-1.0`,
`force-response-1.0` and `redirect-carefully` for some old User-Agents.
Those are HTTP/1.x settings: over HTTP/2 a request that triggers them is
answered as any other, as HTTP/2 (`%H` in the access log), and the
connection - not the request's to close - carries on.
"""

import pytest

pytestmark = pytest.mark.h2

# The lines of Debian's setenvif.conf (apache2 2.4.71), verbatim.
SETENVIF_CONF = r"""
BrowserMatch "Mozilla/2" nokeepalive
BrowserMatch "MSIE 4\.0b2;" nokeepalive downgrade-1.0 force-response-1.0
BrowserMatch "RealPlayer 4\.0" force-response-1.0
BrowserMatch "Java/1\.0" force-response-1.0
BrowserMatch "JDK/1\.0" force-response-1.0
BrowserMatch "Microsoft Data Access Internet Publishing Provider" redirect-carefully
BrowserMatch "MS FrontPage" redirect-carefully
BrowserMatch "^WebDrive" redirect-carefully
BrowserMatch "^WebDAVFS/1\.[012]" redirect-carefully
BrowserMatch "^gnome-vfs/1\.0" redirect-carefully
BrowserMatch "^gvfs/1" redirect-carefully
BrowserMatch "^XML Spy" redirect-carefully
BrowserMatch "^Dreamweaver-WebDAV-SCM1" redirect-carefully
BrowserMatch " Konqueror/4" redirect-carefully
"""

AGENTS = ["Mozilla/2.02 (Win95; I)",                   # nokeepalive
          "Mozilla/4.0 (compatible; MSIE 4.0b2; Windows 95)",  # + downgrade, force 1.0
          "RealPlayer 4.0",                             # force-response-1.0
          "Java/1.0.2",                                 # force-response-1.0
          "gvfs/1.50.2"]                                # redirect-carefully


@pytest.fixture(scope="module")
def server(httpd):
    httpd.reconfigure(extra_global=SETENVIF_CONF)
    yield httpd
    httpd.reconfigure()


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_022_01_old_agents_over_h2(server, frame_client, tls):
    """Each agent twice on one connection, with a directory (the
    redirect-carefully case) and a file: complete answers as over any
    HTTP/2 request, no GOAWAY, and the connection serves more."""
    c = frame_client(tls=tls)
    for ua in AGENTS:
        for path, status in (("/1k.txt", 200), ("/dir", 301), ("/1k.txt", 200)):
            sid = c.request("GET", path, headers=[("user-agent", ua)])
            assert c.wait_stream_end(sid, timeout=10), (ua, c.stream(sid).frames_str())
            s = c.stream(sid)
            assert s.ended_by == "END_STREAM" and s.status == status, (ua, s.frames_str())
            if status == 200:
                assert len(s.body) == 1024, (ua, len(s.body))
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid, timeout=10) and c.stream(sid).status == 200
    assert not c.goaways and not c.closed, c.goaways
    lines = [ln for ln in server.access_log_lines() if "GET /1k.txt" in ln]
    assert lines and all('HTTP/2.0" 200' in ln for ln in lines[-12:]), lines[-12:]
