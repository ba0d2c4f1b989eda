"""511: Expect: 100-continue and LimitRequestBody as httpd's HTTP/1.1 input does
(413 without a 100), and a proxied backend's own 100 passed on once, never
invented (Proxy100Continue)."""

import pytest

from test_510_interim import _expect_request, _server, _statuses, backends  # noqa: F401

pytestmark = [pytest.mark.h2]


def test_h2x_511_02_no_100_for_413(httpd, frame_client):
    """LimitRequestBody 1000, Content-Length 5000, Expect: 100-continue:
    httpd's HTTP_IN filter answers 413 before it would send the 100 (as
    mod_http2 does); the client never sends the body."""
    httpd.expect_log(r"AH00126|AH01587|413|Request body|h2x-echo: read error")
    c = frame_client()
    sid = _expect_request(c, "/h2x/limited", 5000)
    assert c.wait_stream_end(sid, timeout=5), repr(c.stream(sid))
    rec = c.stream(sid)
    assert _statuses(rec) == ["413"], repr(rec)


def test_h2x_511_10_limit_request_body(httpd, frame_client):
    """LimitRequestBody 1000 and a 5000-byte POST body (no Expect): 413."""
    httpd.expect_log(r"AH00126|AH01587|413|Request body|h2x-echo: read error")
    for cl in (True, False):
        c = frame_client()
        headers = [("content-length", "5000")] if cl else []
        sid = c.request("POST", "/h2x/limited", headers=headers, body=b"z" * 5000)
        assert c.wait_stream_end(sid, timeout=10), repr(c.stream(sid))
        rec = c.stream(sid)
        assert rec.status == 413, (cl, repr(rec))


def test_h2x_511_04_proxy_100_passed_on(frame_client, backends):
    """Backend answers 100: the proxy passes a 100 on to the client, then the
    body goes through."""
    c = frame_client()
    body = b"b" * 3000
    sid = _expect_request(c, "/be100/x", len(body))
    assert c.run(lambda c: len(c.stream(sid).headers) >= 1, timeout=10), repr(c.stream(sid))
    rec = c.stream(sid)
    assert _statuses(rec) == ["100"], repr(rec)
    c.send_data(sid, body, end_stream=True)
    assert c.wait_stream_end(sid, timeout=10)
    assert _statuses(rec) == ["100", "200"], repr(rec)
    assert rec.body == b"got 3000\n"
    assert rec.ended_by == "END_STREAM"


@pytest.mark.parametrize("name,status", [("417", 417), ("401", 401)])
def test_h2x_511_05_proxy_final_without_100(frame_client, backends, name, status):
    """Backend answers a final status without 100: the client gets no 100,
    only the final response, and never has to send the body."""
    c = frame_client()
    sid = _expect_request(c, f"/be{name}/x", 3000)
    assert c.wait_stream_end(sid, timeout=10), repr(c.stream(sid))
    rec = c.stream(sid)
    assert _statuses(rec) == [str(status)], repr(rec)
    assert rec.ended_by in ("END_STREAM", "RST_STREAM"), repr(rec)
    if rec.ended_by == "RST_STREAM":
        assert rec.rst_name == "NO_ERROR", repr(rec)
