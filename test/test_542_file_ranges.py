"""542: static files travel as file ranges (H2CopyFiles off, the default).

A file bucket's bytes are not copied by the worker: the stream's output
takes a range of a descriptor it owns and c1 reads it as it sends
(h2x_beam.h). What a client can see of that:

- Clients that never open their window (SETTINGS_INITIAL_WINDOW_SIZE=0)
  on many streams for a large file do not hold the workers: with
  H2MaxWorkers 2 in one child, a request that needs a worker on another
  connection is answered at once (issue 10, zero window; mod_http2 passes
  file handles too). With H2CopyFiles on the bytes are copied as before
  and downloads still arrive intact.
- A file that shrinks while its range waits to be sent is never passed
  off as whole: the stream is reset (INTERNAL_ERROR) and the error log
  names it (H2X10036); the other streams go on.
- Ranges, a file larger than the stream window and several files on one
  connection arrive byte-exact.
"""

import hashlib
import os
import time

import pytest

from h2x.frames import ErrorCodes
from h2x.httpd import ONE_CHILD as ONE_CHILD_MPM

pytestmark = [pytest.mark.h2]

BIG = 4_000_000
ONE_CHILD = ONE_CHILD_MPM + """
H2MinWorkers 1
H2MaxWorkers 2
Timeout 20
<Location /h2x/delay>
    SetHandler h2x-delay
</Location>
"""


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def big_file(httpd):
    httpd.make_file("t/big542.bin", BIG)
    with open(os.path.join(httpd.docroot, "t", "big542.bin"), "rb") as f:
        return f.read()


def test_h2x_542_01_zero_window_does_not_hold_workers(httpd, frame_client, big_file):
    """3 connections x 10 streams for a 4 MB file, window 0, never opened:
    every stream gets its head, no worker waits on them, so a handler
    request on a fresh connection is answered within 3 s (Timeout is
    20 s), and a download there arrives whole."""
    httpd.reconfigure(extra_global=ONE_CHILD)
    stallers = []
    for _ in range(3):
        c = frame_client(window=0)
        sids = [c.request("GET", "/t/big542.bin") for _ in range(10)]
        c.expect_open()  # never read: closed by the client at the end
        assert c.run(lambda cl: all(cl.stream(s).status is not None for s in sids),
                     timeout=10), [c.stream(s).frames_str() for s in sids]
        stallers.append(c)
    good = frame_client()
    t0 = time.monotonic()
    sid = good.request("GET", "/h2x/delay?s=0&n=100")
    assert good.wait_stream_end(sid, timeout=10)
    elapsed = time.monotonic() - t0
    assert good.stream(sid).status == 200, good.stream(sid).frames_str()
    assert elapsed < 3, f"a worker was free only after {elapsed:.1f}s"
    sid = good.request("GET", "/t/big542.bin")
    assert good.wait_stream_end(sid, timeout=30)
    assert good.stream(sid).ended_by == "END_STREAM", good.stream(sid).frames_str()
    assert _sha(good.stream(sid).body) == _sha(big_file)
    for c in stallers:
        assert not c.closed
        c.close()


def test_h2x_542_04_copy_files_on(httpd, frame_client, big_file):
    """H2CopyFiles on: the worker copies the file's bytes (the path taken
    by files under 16 KiB too); the download and a range arrive exact."""
    httpd.reconfigure(extra_global="H2CopyFiles on\n")
    c = frame_client()
    sid = c.request("GET", "/t/big542.bin")
    part = c.request("GET", "/t/big542.bin", headers=[("range", "bytes=10-20009")])
    small = c.request("GET", "/1k.txt")
    assert c.run(lambda cl: all(cl.stream(s).ended for s in (sid, part, small)), timeout=30)
    assert c.stream(sid).ended_by == "END_STREAM"
    assert _sha(c.stream(sid).body) == _sha(big_file)
    assert c.stream(part).body == big_file[10:20010]
    assert len(c.stream(small).body) == 1024


def test_h2x_542_02_file_shrinks_while_waiting(httpd, frame_client):
    """The file is truncated while its range waits for the client's window:
    the stream is reset with INTERNAL_ERROR, not ended as if complete; the
    connection's other streams carry on."""
    httpd.reconfigure(extra_global="Timeout 20\nEnableMMAP off\n")
    httpd.expect_log(r"H2X10036", required=True)
    path = httpd.make_file("t/shrink542.bin", 1_000_000)
    c = frame_client(window=0)
    sid = c.request("GET", "/t/shrink542.bin")
    assert c.run(lambda cl: cl.stream(sid).status is not None, timeout=10)
    time.sleep(0.5)  # the worker handed the range over and is gone
    with open(path, "r+b") as f:
        f.truncate(100_000)
    c.window_update(0, 2_000_000)
    c.window_update(sid, 2_000_000)
    assert c.wait_stream_end(sid, timeout=10), c.stream(sid).frames_str()
    st = c.stream(sid)
    assert st.ended_by == "RST_STREAM" and st.rst_code == ErrorCodes.INTERNAL_ERROR, \
        st.frames_str()
    assert len(st.body) <= 100_000
    ok = c.request("GET", "/1k.txt")
    c.window_update(ok, 65535)
    assert c.wait_stream_end(ok, timeout=10)
    assert c.stream(ok).status == 200 and len(c.stream(ok).body) == 1024


def test_h2x_542_03_ranges_and_many_files(httpd, frame_client, big_file):
    """Byte ranges and 8 parallel downloads of the file over one connection
    with a small window (16 KiB, updated as the client reads) arrive exact."""
    httpd.reconfigure()
    c = frame_client(window=16384)
    whole = [c.request("GET", "/t/big542.bin") for _ in range(8)]
    part = c.request("GET", "/t/big542.bin", headers=[("range", "bytes=1000000-2999999")])
    assert c.run(lambda cl: all(cl.stream(s).ended for s in whole + [part]), timeout=60)
    for s in whole:
        st = c.stream(s)
        assert st.ended_by == "END_STREAM" and st.status == 200, st.frames_str()
        assert _sha(st.body) == _sha(big_file)
    st = c.stream(part)
    assert st.status == 206 and st.body == big_file[1000000:3000000]
