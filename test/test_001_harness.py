"""Self-tests of the test harness (test/h2x, test/conftest.py).

The first group needs only HTTP/1.1 and must pass with any module that
loads.  The `h2` group exercises curl, nghttp, h2load and the raw-frame
client over HTTP/2; it runs against the module H2X_TEST_MODULE selects
(check it with H2X_TEST_MODULE=http2, Debian's mod_http2).
"""

import os
import time

import pytest

from h2x import logscan
from h2x.clients import curl, h2load, nghttp
from h2x.frames import ErrorCodes
from h2x.httpd import file_content

INDEX_TEXT = b"mod_h2x test site"

ECHO_CGI = """#!/usr/bin/python3
import sys
data = sys.stdin.buffer.read()
body = ("received %d bytes\\n" % len(data)).encode()
sys.stdout.buffer.write(b"Content-Type: text/plain\\r\\n")
sys.stdout.buffer.write(b"Content-Length: %d\\r\\n\\r\\n" % len(body))
sys.stdout.buffer.write(body)
"""


def _error_line(tag: str, level: str = "h2x:error") -> str:
    """An error-log line in httpd's default format."""
    stamp = time.strftime("%a %b %d %H:%M:%S.000000 %Y")
    return f"[{stamp}] [{level}] [pid {os.getpid()}:tid 1] {tag}: injected by test_001\n"


def _append(path: str, line: str):
    with open(path, "a") as f:
        f.write(line)


# -- HTTP/1.1: the server, the config, the logs -----------------------------

def test_h2x_001_01_module_loaded(httpd, env):
    assert httpd.running
    modules = httpd.loaded_modules()
    assert env.module_symbol(httpd.module) in modules
    assert "ssl_module" in modules
    assert f"mpm_{httpd.mpm}_module" in modules


def test_h2x_001_02_http11_plain(httpd):
    r = curl(httpd.url("/"), http="1.1")
    assert r.exit_code == 0, r
    assert r.status == 200
    assert r.http_version == "1.1"
    assert INDEX_TEXT in r.body
    assert r.header("content-type").startswith("text/html")


def test_h2x_001_03_http11_tls(httpd):
    r = curl(httpd.url("/index.html", tls=True), http="1.1")
    assert r.exit_code == 0, r
    assert r.status == 200
    assert r.http_version == "1.1"
    assert INDEX_TEXT in r.body


def test_h2x_001_04_http11_404(httpd):
    r = curl(httpd.url("/no/such/file"), http="1.1")
    assert r.status == 404
    assert r.body


def test_h2x_001_05_ssi(httpd):
    r = curl(httpd.url("/ssi.shtml"), http="1.1")
    assert r.status == 200
    assert b"hello" in r.body and b"ssi.shtml" in r.body


def test_h2x_001_06_cgi(httpd):
    httpd.make_cgi("harness/echo.py", ECHO_CGI)
    r = curl(httpd.url("/harness/echo.py"), http="1.1", data=b"x" * 1000)
    assert r.status == 200, r
    assert r.body == b"received 1000 bytes\n"


def test_h2x_001_07_make_file(httpd):
    httpd.make_file("harness/100k.bin", 100_000)
    r = curl(httpd.url("/harness/100k.bin", tls=True), http="1.1")
    assert r.status == 200
    assert r.body == file_content(100_000)
    assert file_content(40) == b"000000000000000\n000000000000016\n00000000"


def test_h2x_001_08_access_log(httpd):
    r = curl(httpd.url("/1k.txt"), http="1.1")
    assert r.status == 200
    lines = [l for l in httpd.access_log_lines() if '"GET /1k.txt HTTP/1.1" 200 1024' in l]
    assert lines, httpd.access_log_lines()[-5:]


def test_h2x_001_09_check_config(httpd):
    rc, out = httpd.check_config(extra_global="NoSuchDirective x")
    assert rc != 0
    assert "NoSuchDirective" in out
    rc, out = httpd.check_config(extra_vhost="    Timeout 7")
    assert rc == 0, out


def test_h2x_001_10_logscan_flags_injected_error(httpd):
    _append(httpd.error_log_path, _error_line("H2X99901"))
    assert any("H2X99901" in l for l in httpd.log.peek())
    httpd.expect_log(r"H2X99901", required=True)
    assert not httpd.log.peek()


def test_h2x_001_11_logscan_flags_crash_at_notice(httpd):
    line = _error_line("AH00052", level="core:notice").replace(
        "injected by test_001", "child pid 4711 exit signal Segmentation fault (11)")
    _append(httpd.error_log_path, line)
    assert logscan.classify(line) == "crash"
    assert httpd.log.peek()
    httpd.expect_log(r"child pid 4711 exit signal")


def test_h2x_001_12_logscan_levels():
    assert logscan.classify(_error_line("X", "ssl:warn")) == "error"
    assert logscan.classify(_error_line("X", "core:crit")) == "error"
    assert logscan.classify(_error_line("X", "h2x:debug")) is None
    assert logscan.classify(_error_line("X", "mpm_event:notice")) is None
    exp = logscan.Expectations()
    exp.add("H2X0", required=True)
    assert exp.missing() == ["H2X0"]
    assert not logscan.is_problem(_error_line("H2X0123"), exp)
    assert exp.missing() == []
    assert not logscan.is_problem(_error_line("AH01909", "ssl:warn"), exp)


def test_h2x_001_16_logscan_sanitizer_reports(tmp_path):
    """H2X_SANITIZE: a sanitizer report file (or a report in the error log)
    is a problem no expect_log pattern can excuse; each report once."""
    log = tmp_path / "error_log"
    log.write_text("")
    reports = tmp_path / "sanitizers"
    reports.mkdir()
    scanner = logscan.LogScanner(str(log), sanitizer_dir=str(reports))
    assert scanner.scan() == []
    (reports / "asan.4711").write_text(
        "==4711==ERROR: AddressSanitizer: heap-use-after-free on address 0x1\n")
    exp = logscan.Expectations()
    exp.add("AddressSanitizer")
    problems = scanner.peek()
    assert len(problems) == 1 and "asan.4711" in problems[0] \
        and "heap-use-after-free" in problems[0], problems
    assert len(scanner.scan()) == 1
    assert scanner.scan() == []           # shown once
    with open(reports / "asan.4711", "a") as f:
        f.write("==4711==ERROR: AddressSanitizer: another one\n")
    assert len(scanner.scan()) == 1       # the file grew: a new report
    assert logscan.classify("mod_h2x/h2x_mplx.cpp:42:7: runtime error: "
                            "signed integer overflow") == "crash"
    assert logscan.classify("==1==ERROR: AddressSanitizer: SEGV on unknown address") == "crash"
    # UBSan writes to the error log: the report line and its frames.
    with open(log, "a") as f:
        f.write("h2x_mplx.cpp:42:7: runtime error: signed integer overflow\n"
                "    #0 0x7f0000000001  (/nonexistent/mod.so+0x10)\n"
                "[Mon Nov 30 00:00:00.000000 2026] [core:notice] [pid 1] next\n")
    problems = scanner.scan()
    assert len(problems) == 1 and "runtime error:" in problems[0] \
        and "mod.so+0x10" in problems[0], problems
    # httpd's own known reports (KNOWN_REPORTS) do not count, unless mod_h2x
    # appears in them; the error log's DEADLYSIGNAL line defers to the file.
    known = ("==1==ERROR: AddressSanitizer: SEGV on unknown address 0x7f0000000000 (pc 0x1 T0)\n"
             "==1==The signal is caused by a READ memory access.\n"
             "    #0 0x7f0000000001 in apr_os_sock_get (libapr-1.so.0+0x28180)\n"
             "    #1 0x7f0000000002  (/usr/lib/apache2/modules/mod_mpm_event.so+0x606b)\n")
    assert logscan.known_report(known)
    assert not logscan.known_report(known + "    #2 0x3 in h2x::Mplx::c2_done(int)"
                                            " (mod_h2x.so+0x10)\n")
    # A known report from a signal handler: only the handler's frames (above
    # the libc signal frame) must be free of mod_h2x.
    handler = ("==1==ERROR: AddressSanitizer: SEGV on unknown address 0x000000000058 (pc 0x1 T0)\n"
               "==1==The signal is caused by a READ memory access.\n"
               "==1==Hint: address points to the zero page.\n"
               "    #0 0x7f0000000001  (/usr/lib/apache2/modules/mod_ssl.so+0x17ba2)\n"
               "    #1 0x7f0000000002 in apr_pool_destroy (libapr-1.so.0+0x225dd)\n"
               "    #2 0x7f0000000003  (/usr/lib/apache2/modules/mod_mpm_prefork.so+0x3e26)\n"
               "    #3 0x7f0000000004 in __GI___sigaction :? (libc.so.6+0x3c04f)\n")
    interrupted = ("    #4 0x7f0000000005 in SSL_free (libssl.so.3+0x3b464)\n"
                   "    #5 0x7f0000000006 in c1_process_connection h2x_c1.cpp:73 (mod_h2x.so+0x2c95a3)\n")
    assert logscan.known_report(handler + interrupted)
    assert not logscan.known_report(handler.replace("mod_mpm_prefork.so+0x3e26",
                                                    "mod_h2x.so+0x3e26") + interrupted)
    assert not logscan.known_report(handler.replace("__GI___sigaction", "f") + interrupted)
    (reports / "asan.4712").write_text(known)
    with open(log, "a") as f:
        f.write("AddressSanitizer:DEADLYSIGNAL\n")
    assert scanner.scan() == []
    # Frames are written as module+offset (symbolize=0) and resolved here;
    # what addr2line cannot resolve stays as it was.
    frame = "    #1 0x7f0000000001  (/nonexistent/mod.so+0x10)"
    assert logscan.symbolize(frame) == frame


def test_h2x_001_17_sanitize_mode_matches_build(env, httpd):
    """A module built with --enable-sanitizers only loads with the runtimes
    preloaded: the harness must be in sanitize mode for it (H2X_SANITIZE)."""
    if env.module == "h2x" and env.is_sanitized(env.module_so()):
        assert env.sanitize
        assert httpd.sanitizer_dir and os.path.isdir(httpd.sanitizer_dir)
    if env.sanitize:
        preload = httpd.sanitizer_environment()["LD_PRELOAD"]
        assert "libasan" in preload and "libubsan" in preload
        pid = httpd.pid
        with open(f"/proc/{pid}/maps") as f:
            assert "libasan" in f.read()
    else:
        assert httpd.sanitizer_dir is None and httpd.sanitizer_reports() == []


@pytest.mark.expect_log(r"H2X99902")
def test_h2x_001_13_expect_log_marker(httpd):
    _append(httpd.error_log_path, _error_line("H2X99902"))


def test_h2x_001_14_graceful_restart(httpd):
    pid = httpd.pid
    httpd.graceful()
    assert httpd.pid == pid
    assert curl(httpd.url("/"), http="1.1").status == 200


def test_h2x_001_15_reconfigure(httpd):
    httpd.reconfigure(extra_global='Header always set X-H2X-Harness "yes"')
    try:
        r = curl(httpd.url("/"), http="1.1")
        assert r.header("x-h2x-harness") == "yes"
    finally:
        httpd.reconfigure()
    assert curl(httpd.url("/"), http="1.1").header("x-h2x-harness") is None


# -- HTTP/2: clients and the raw-frame client --------------------------------

@pytest.mark.h2
def test_h2x_001_20_curl_h2_tls(httpd):
    r = curl(httpd.url("/", tls=True))
    assert r.exit_code == 0, r
    assert r.http_version == "2"
    assert r.status == 200
    assert INDEX_TEXT in r.body


@pytest.mark.h2
def test_h2x_001_21_curl_h2c_prior_knowledge(httpd):
    r = curl(httpd.url("/"), http="2-prior")
    assert r.exit_code == 0, r
    assert r.http_version == "2"
    assert r.status == 200


@pytest.mark.h2
def test_h2x_001_22_curl_h2c_upgrade(httpd):
    r = curl(httpd.url("/"), http="h2c-upgrade")
    assert r.exit_code == 0, r
    assert r.http_version == "2"
    assert r.status == 200
    assert INDEX_TEXT in r.body


@pytest.mark.h2
def test_h2x_001_23_frames_get_h2c(frame_client):
    c = frame_client()
    sid = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid), c.stream(sid)
    s = c.stream(sid)
    assert s.status == 200
    assert INDEX_TEXT in s.body
    assert s.ended_by == "END_STREAM"
    assert c.shape(sid) == "HEADERS DATA[ES]", s.frames_str()
    assert "END_HEADERS" in s.frames[0].flags
    assert s.header("content-type").startswith("text/html")
    times = [f.t for f in c.frames]
    assert times == sorted(times)
    assert c.settings, "server SETTINGS recorded"
    assert s.start_time <= s.frames[0].t <= s.end_time


@pytest.mark.h2
def test_h2x_001_24_frames_get_tls(frame_client):
    c = frame_client(tls=True)
    assert c.alpn == "h2"
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid)
    assert c.stream(sid).status == 200
    assert c.stream(sid).body == open(os.path.join(os.path.dirname(__file__),
                                                   "htdocs", "1k.txt"), "rb").read()


@pytest.mark.h2
def test_h2x_001_25_frames_404(frame_client):
    c = frame_client()
    sid = c.request("GET", "/no/such/file")
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    assert s.status == 404
    assert s.body
    assert c.shape(sid).endswith("[ES]")


@pytest.mark.h2
def test_h2x_001_26_frames_head(frame_client):
    c = frame_client()
    sid = c.request("HEAD", "/index.html")
    assert c.wait_stream_end(sid)
    assert c.shape(sid) == "HEADERS[ES]", c.stream(sid).frames_str()


@pytest.mark.h2
def test_h2x_001_27_frames_large_body(httpd, frame_client):
    httpd.make_file("harness/1m.bin", 1_000_000)
    c = frame_client()
    sid = c.request("GET", "/harness/1m.bin")
    assert c.wait_stream_end(sid, timeout=20)
    s = c.stream(sid)
    assert s.body == file_content(1_000_000)
    assert len([f for f in s.frames if f.type == "DATA"]) > 10
    assert c.shape(sid) == "HEADERS DATA[ES]"


@pytest.mark.h2
def test_h2x_001_28_frames_window_stall(httpd, frame_client):
    httpd.make_file("harness/200k.bin", 200_000)
    c = frame_client(auto_window_update=False)
    sid = c.request("GET", "/harness/200k.bin")
    c.run(lambda c: len(c.stream(sid).body) >= 65535, timeout=5)
    c.run(timeout=0.5)                    # nothing more may come
    s = c.stream(sid)
    assert len(s.body) == 65535
    assert not s.ended
    c.window_update(0, 1_000_000)
    c.window_update(sid, 1_000_000)
    assert c.wait_stream_end(sid)
    assert s.body == file_content(200_000)


@pytest.mark.h2
def test_h2x_001_29_frames_client_reset(httpd, frame_client):
    httpd.make_file("harness/200k.bin", 200_000)
    c = frame_client(auto_window_update=False)
    sid = c.request("GET", "/harness/200k.bin")
    assert c.run(lambda c: c.stream(sid).status is not None, timeout=5)
    c.reset(sid, ErrorCodes.CANCEL)
    assert c.stream(sid).ended_by == "CLIENT_RST"
    assert c.sent[-1].type == "RST_STREAM" and c.sent[-1].error_code == ErrorCodes.CANCEL
    c.window_update(0, 1_000_000)
    sid2 = c.request("GET", "/index.html")
    assert c.wait_stream_end(sid2)
    assert c.stream(sid2).status == 200


@pytest.mark.h2
def test_h2x_001_30_frames_ping(frame_client):
    c = frame_client()
    c.ping(b"h2xtest!")
    assert c.run(lambda c: any("ACK" in p.flags and p.data == b"h2xtest!" for p in c.pings))


@pytest.mark.h2
def test_h2x_001_31_frames_post_body(httpd, frame_client):
    httpd.make_cgi("harness/echo.py", ECHO_CGI)
    c = frame_client()
    body = b"y" * 300_000                  # more than the default window
    sid = c.request("POST", "/harness/echo.py", body=body,
                    headers=[("content-type", "application/octet-stream")])
    assert c.wait_stream_end(sid, timeout=20), c.stream(sid)
    s = c.stream(sid)
    assert s.status == 200
    assert s.body == b"received 300000 bytes\n"


@pytest.mark.h2
def test_h2x_001_32_frames_goaway_on_protocol_error(frame_client):
    c = frame_client()
    assert c.wait_settings()
    c.send_raw(bytes.fromhex("000004" "00" "00" "00000000") + b"oops")  # DATA on stream 0
    assert c.wait_goaway(), c.frames
    assert c.goaway.error_code == ErrorCodes.PROTOCOL_ERROR
    assert c.goaway.last_stream_id == 0


@pytest.mark.h2
def test_h2x_001_33_frames_uppercase_header(frame_client):
    c = frame_client()
    sid = c.request("GET", "/index.html", headers=[("X-Upper-Case", "1")])
    assert c.wait_stream_end(sid)
    s = c.stream(sid)
    # RFC 9113 §8.2.1: malformed; either a stream error or a 4xx answer.
    assert s.ended_by == "RST_STREAM" or 400 <= (s.status or 0) < 500, s


@pytest.mark.h2
def test_h2x_001_34_frames_continuation(frame_client):
    c = frame_client()
    sid = c.request("GET", "/index.html", headers=[("x-long", "v" * 3000)])
    assert c.wait_stream_end(sid)
    sid2 = c._next_sid
    c.send_headers(sid2, [(":method", "GET"), (":scheme", "http"),
                          (":authority", c.authority), (":path", "/index.html"),
                          ("x-long", "w" * 3000)], end_stream=True, fragment=500)
    assert [f.type for f in c.sent[-7:]].count("CONTINUATION") >= 5
    assert c.wait_stream_end(sid2)
    assert c.stream(sid2).status == 200


@pytest.mark.h2
def test_h2x_001_35_open_stream_detected(httpd, frame_client):
    httpd.make_file("harness/200k.bin", 200_000)
    c = frame_client(auto_window_update=False)
    sid = c.request("GET", "/harness/200k.bin")
    problems = c.check_ended(grace=0.5)
    assert len(problems) == 1 and f"stream {sid} got neither" in problems[0]
    c.expect_open(sid)
    assert c.check_ended(grace=0) == []
    c.reset(sid)


@pytest.mark.h2
@pytest.mark.repeat(3)
def test_h2x_001_36_repeat(frame_client, h2x_repeat):
    c = frame_client()
    sids = [c.request("GET", "/1k.txt") for _ in range(5)]
    assert c.wait_all_ended()
    assert all(c.stream(s).status == 200 for s in sids)


@pytest.mark.h2
def test_h2x_001_37_nghttp(httpd):
    r = nghttp(httpd.url("/", tls=True))
    assert r.exit_code == 0, r.stderr
    assert r.statuses == [200]
    assert r.recv("HEADERS") and r.recv("DATA")


@pytest.mark.h2
def test_h2x_001_38_h2load(httpd):
    r = h2load(httpd.url("/1k.txt"), 100, 2, 5)
    assert r.exit_code == 0, r.stdout
    assert r.requests["succeeded"] == 100, r
    assert r.status["2xx"] == 100


@pytest.mark.h2
def test_h2x_001_39_frames_settings(frame_client):
    c = frame_client(settings={0x3: 7}, auto_ack_settings=False)
    assert c.wait_settings()
    assert c.run(lambda c: c.settings_acks >= 1, timeout=5)   # server ACKs ours
    assert not [f for f in c.sent if f.type == "SETTINGS" and "ACK" in f.flags]
    c.send_settings(ack=True)
    sid = c.request("GET", "/")
    assert c.wait_stream_end(sid)


@pytest.mark.h2
def test_h2x_001_40_frames_client_goaway(frame_client):
    c = frame_client()
    sid = c.request("GET", "/1k.txt")
    assert c.wait_stream_end(sid)
    c.send_goaway(last_stream_id=0)
    assert c.sent[-1].type == "GOAWAY" and c.sent[-1].error_code == ErrorCodes.NO_ERROR
    c.run(timeout=0.2)
    assert not c.errors
