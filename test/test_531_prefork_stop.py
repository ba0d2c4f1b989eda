"""531: a prefork child serving an h2 connection stops cleanly on SIGTERM."""

import time

import pytest

from h2x.clients import curl
from h2x.httpd import HttpdError

pytestmark = [pytest.mark.h2]


@pytest.mark.parametrize("rep", range(2))
def test_h2x_531_05_prefork_stop_with_h2_connection(httpd, frame_client, rep):
    """prefork; an h2c connection runs a CGI, a status request comes in over
    HTTP/1.1, the h2c client closes and the server is stopped at once: every
    child exits on the first SIGTERM (no AH00045 "still did not exit")."""
    httpd.reconfigure(mpm="prefork")
    c = frame_client()
    sid = c.request("GET", "/cgi-bin/env.py")
    assert c.wait_stream_end(sid, timeout=15)
    assert c.stream(sid).status == 200
    assert curl(httpd.url("/server-status?auto"), http="1.1").status == 200
    c.close()
    t0 = time.monotonic()
    try:
        httpd.stop(timeout=8, settle=0)
        error = None
    except HttpdError as e:
        error = str(e)
        httpd.expect_log(r"AH00045|AH00046")
    elapsed = time.monotonic() - t0
    httpd.start()
    assert error is None, f"stop took {elapsed:.1f}s: {error[-1500:]}"
    assert elapsed < 3, elapsed
    assert not [ln for ln in httpd.error_log_lines() if "AH00045" in ln]
