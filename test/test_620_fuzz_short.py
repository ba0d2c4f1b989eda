"""Fuzzing (issue 10 point 5), the short run inside the suite: about 15 s
of test/h2x/fuzz.py rounds with a fixed seed against one httpd (the
standard config plus the mod_h2x_test handlers).  No round may crash httpd,
leave a validly opened stream without END_STREAM or RST_STREAM (DESIGN.md
invariant 1), make the server send frames after a stream's end, or stop it
from answering a fresh client.  Longer runs: scripts/fuzz (docs/fuzzing.md).
"""

import pytest

from core_helpers import TEST_HANDLER_CONF
from h2x import fuzz
from h2x.httpd import Httpd

pytestmark = [pytest.mark.h2, pytest.mark.slow]

SEED = 620
SECONDS = 15


def test_h2x_620_01_fuzz_short(env, pytestconfig):
    mpm = pytestconfig.getoption("mpm")
    if env.module == "http2" and mpm == "prefork":
        pytest.skip("mod_http2 does not serve HTTP/2 under prefork")
    server = Httpd(env, name="fuzz620", mpm=mpm)
    # The fuzz loop reads this server's log itself: the hostile rounds make
    # it log warnings and errors on purpose; crashes and sanitizer reports
    # fail the run.
    Httpd._live.discard(server)
    lines = []
    try:
        server.write_config(extra_global=TEST_HANDLER_CONF)
        server.start()
        failure, stats = fuzz.fuzz(server, SEED, seconds=SECONDS, module=server.module,
                                   out=lines.append)
    finally:
        server.stop()
    crash, _ = fuzz.scan_log(server)
    print("\n".join(lines))
    print(f"fuzz: {stats}")
    assert failure is None, failure
    assert not crash, "crash or sanitizer report at shutdown:\n" + "\n".join(crash)
    assert stats.rounds >= 5, stats
