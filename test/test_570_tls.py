"""Issue 4: TLS per-location client certificates over h2.

A `<Location /cert>` with `SSLVerifyClient require` inside the TLS vhost
(the vhost itself does not verify clients) needs a renegotiation / post-
handshake auth, which HTTP/2 forbids (RFC 9113 §9.2.1): the stream is
answered with RST_STREAM(HTTP_1_1_REQUIRED) (0xd), as mod_http2 does, and
the connection carries on.
"""

import pytest

pytestmark = [pytest.mark.h2]

HTTP_1_1_REQUIRED = 0xd


@pytest.fixture(scope="module", autouse=True)
def _server(httpd, env):
    cert, _ = env.cert()
    httpd.make_file("cert/x.txt", 100)
    httpd.make_file("open/x.txt", 100)
    httpd.reconfigure(extra_tls_vhost=f"""
    SSLCACertificateFile "{cert}"
    <Location /cert>
        SSLVerifyClient require
        SSLVerifyDepth 1
    </Location>
""")
    yield


def test_h2x_570_01_client_cert_location_rst_http11_required(httpd, frame_client):
    c = frame_client(tls=True)
    sid = c.request("GET", "/cert/x.txt")
    assert c.wait_stream_end(sid, timeout=10), repr(c.stream(sid))
    s = c.stream(sid)
    assert s.ended_by == "RST_STREAM", repr(s)
    assert s.rst_code == HTTP_1_1_REQUIRED, repr(s)
    assert s.status is None, repr(s)            # no response before the reset
    # the connection carries on
    sid2 = c.request("GET", "/open/x.txt")
    assert c.wait_stream_end(sid2, timeout=10)
    assert c.stream(sid2).status == 200
    assert not c.goaways


def test_h2x_570_02_client_cert_among_other_streams(httpd, frame_client):
    """Concurrent streams around the refused one complete normally."""
    c = frame_client(tls=True)
    before = [c.request("GET", f"/open/x.txt?{i}") for i in range(3)]
    bad = c.request("GET", "/cert/x.txt")
    after = [c.request("GET", f"/open/x.txt?b{i}") for i in range(3)]
    assert c.wait_all_ended(timeout=10)
    assert c.stream(bad).rst_code == HTTP_1_1_REQUIRED, repr(c.stream(bad))
    for sid in before + after:
        s = c.stream(sid)
        assert s.status == 200 and s.ended_by == "END_STREAM", repr(s)
