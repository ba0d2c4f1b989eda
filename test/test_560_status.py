"""Issue 4: mod_status with ExtendedStatus on shows the HTTP/2 connections.

/server-status (one child: ServerLimit 1, so the status request sees the
process serving the h2 connections) has a mod_h2x section listing each
session (connection id, protocol, client, streams) with its open streams
as `<id>: <METHOD> <path> [<state>]`, and the worker threads; ?auto gives
H2xSessions / H2xWorkers / H2xWorkersBusy / H2xQueued.
"""

import html
import re
import time

import pytest

from h2x.clients import curl
from h2x.httpd import ONE_CHILD

pytestmark = [pytest.mark.h2]

CONF = ONE_CHILD


@pytest.fixture(scope="module", autouse=True)
def _server(httpd):
    httpd.reconfigure(extra_global=CONF)
    yield


def _auto(httpd):
    r = curl(httpd.url("/server-status?auto"), http="1.1")
    assert r.status == 200, r
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^(H2x\w+): (\d+)$", r.text, re.M)}, r.text


def _page(httpd):
    r = curl(httpd.url("/server-status"), http="1.1")
    assert r.status == 200, r
    return html.unescape(r.text)


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_560_01_open_streams_listed(httpd, frame_client, tls):
    c = frame_client(tls=tls)
    s1 = c.request("GET", "/cgi-bin/slow.py?ms=200&s=30")
    s2 = c.request("GET", "/cgi-bin/slow.py?ms=300&s=30&x=2")
    # both are producing output
    assert c.run(lambda c: len(c.stream(s1).body) > 0 and len(c.stream(s2).body) > 0,
                 timeout=10)
    page = _page(httpd)
    auto, text = _auto(httpd)
    c.reset(s1)
    c.reset(s2)
    assert "mod_h2x" in page, page[-2000:]
    assert re.search(r"\b%d: GET /cgi-bin/slow\.py\?ms=200&s=30 \[[a-z ]+\]" % s1, page), \
        page[-2000:]
    assert re.search(r"\b%d: GET /cgi-bin/slow\.py\?ms=300&s=30&x=2 \[[a-z ]+\]" % s2, page), \
        page[-2000:]
    assert "[processing]" in page, page[-2000:]
    # the session row names the client and protocol
    proto = "h2" if tls else "h2c"
    assert re.search(r"<td>%s</td><td>127\.0\.0\.1</td>" % proto, page), page[-2000:]
    assert auto.get("H2xSessions", 0) >= 1, text
    assert auto.get("H2xWorkersBusy", 0) >= 2, text
    assert auto.get("H2xWorkers", 0) >= 2, text


def test_h2x_560_02_streams_leave_the_page(httpd, frame_client):
    """Finished and reset streams are no longer listed; a closed connection
    is no longer a session."""
    c = frame_client()
    sid = c.request("GET", "/cgi-bin/slow.py?ms=100&s=30&gone=1")
    assert c.run(lambda c: len(c.stream(sid).body) > 0, timeout=10)
    assert "gone=1 [" in _page(httpd)
    c.reset(sid)
    deadline = time.monotonic() + 5
    while "gone=1 [" in _page(httpd) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "gone=1 [" not in _page(httpd)
    c.close()
    deadline = time.monotonic() + 5
    auto, text = _auto(httpd)
    while auto.get("H2xSessions", 0) > 0 and time.monotonic() < deadline:
        time.sleep(0.2)
        auto, text = _auto(httpd)
    assert auto.get("H2xSessions") == 0, text


def test_h2x_560_03_status_over_h2(httpd, frame_client):
    """server-status requested over h2 lists its own stream."""
    c = frame_client()
    sid = c.request("GET", "/server-status")
    assert c.wait_stream_end(sid, timeout=10)
    s = c.stream(sid)
    assert s.status == 200 and s.ended_by == "END_STREAM"
    page = html.unescape(s.body.decode())
    assert "mod_h2x" in page
    assert re.search(r"\b%d: GET /server-status \[" % sid, page), page[-2000:]
    assert re.search(r"worker threads: \d+ \(\d+ busy", page), page[-2000:]
