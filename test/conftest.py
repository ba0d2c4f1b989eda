"""pytest fixtures and options for mod_h2x's live-httpd tests.

Fixtures:
  env           (session)  h2x.env.Env: paths, module choice, tools, temp dir.
  session_dir   (session)  the session's temporary directory.
  httpd         (module)   h2x.httpd.Httpd with the default config, started;
                           stopped (and its last log lines scanned) at the
                           end of the module.  Tests needing other config call
                           httpd.reconfigure(...); for a whole module, use a
                           module-scoped autouse fixture that does so.
  frame_client  (function) factory for h2x.frames.FrameClient connected to
                           httpd; at teardown every stream a client opened
                           must have ended (END_STREAM or RST_STREAM).
  (autouse)                after every test, the error logs of all live
                           servers are scanned (h2x.logscan).

Options:
  --repeat N       run every selected test N times (e.g. -m repeat --repeat 50)
  --h2-module M    h2x or http2 (overrides H2X_TEST_MODULE)
  --mpm M          event (default), worker or prefork for the httpd fixture
"""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from h2x import logscan                       # noqa: E402
from h2x.env import Env, MODULES              # noqa: E402
from h2x.frames import FrameClient            # noqa: E402
from h2x.httpd import MPMS, Httpd             # noqa: E402


def pytest_addoption(parser):
    group = parser.getgroup("h2x")
    group.addoption("--repeat", type=int, default=None, metavar="N",
                    help="run each selected test N times")
    group.addoption("--h2-module", choices=MODULES, default=None,
                    help="HTTP/2 module to test (default: $H2X_TEST_MODULE or h2x)")
    group.addoption("--mpm", choices=MPMS, default="event",
                    help="MPM of the httpd fixture (default: event)")


def pytest_generate_tests(metafunc):
    """--repeat N, or @pytest.mark.repeat(N): parametrize with a repeat index."""
    count = metafunc.config.getoption("repeat")
    if count is None:
        marker = metafunc.definition.get_closest_marker("repeat")
        count = marker.args[0] if marker and marker.args else None
    if count and count > 1:
        metafunc.fixturenames.append("h2x_repeat")
        metafunc.parametrize("h2x_repeat", range(count),
                             ids=[f"rep{i}" for i in range(count)])


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item (item.rep_call etc.) for fixtures."""
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


_ENV = None


def _session_env(config) -> Env:
    global _ENV
    if _ENV is None:
        _ENV = Env(module=config.getoption("h2_module"))
    return _ENV


def pytest_unconfigure(config):
    """The session directory goes also when no test ran (--collect-only):
    the report header made it, and the env fixture never did its cleanup."""
    if _ENV is not None:
        _ENV.cleanup()


def pytest_report_header(config):
    env = _session_env(config)
    return [f"h2x: module={env.module} ({env.module_so()}), "
            f"test module={'yes' if env.has_test_module else 'no'}, "
            f"mpm={config.getoption('mpm')}, apache2={env.apache2}, "
            f"sanitizers={'ASan+UBSan (H2X_SANITIZE)' if env.sanitize else 'no'}, "
            f"session dir={env.session_dir}"]


@pytest.fixture(scope="session")
def env(pytestconfig):
    env = _session_env(pytestconfig)
    yield env
    for server in Httpd.live():      # servers a test started and forgot
        server.close()
    env.cleanup()


@pytest.fixture(scope="session")
def session_dir(env):
    return env.session_dir


@pytest.fixture(scope="module")
def httpd(env, request, pytestconfig):
    """The module's server, started with the default config."""
    server = Httpd(env, name=request.module.__name__, mpm=pytestconfig.getoption("mpm"))
    try:
        server.write_config()
        server.start()
    except Exception:
        Httpd._live.discard(server)
        raise
    yield server
    try:
        server.stop()
    finally:
        Httpd._live.discard(server)
    # Lines written after the module's last test (shutdown) count too.
    logscan.EXPECTED.reset()
    problems = server.log.scan()
    if problems:
        pytest.fail(f"{server.name}: unexpected error-log lines at shutdown:\n"
                    + "\n".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def _h2x_error_log_check(request):
    """Fail the test if a live server logged an unexpected error, warning or crash."""
    logscan.EXPECTED.reset()
    for marker in request.node.iter_markers("expect_log"):
        for pattern in marker.args:
            logscan.EXPECTED.add(pattern)
    yield
    problems = []
    for server in Httpd.live():
        for line in server.log.scan():
            problems.append(f"{server.name}: {line}")
    missing = logscan.EXPECTED.missing()
    logscan.EXPECTED.reset()
    msg = []
    if problems:
        msg.append("unexpected error-log lines (declare with httpd.expect_log(regex)):\n"
                   + "\n".join(problems))
    if missing:
        msg.append("required error-log lines not found: " + ", ".join(missing))
    if msg:
        pytest.fail("\n".join(msg), pytrace=False)


@pytest.fixture
def frame_client(request):
    """Factory: frame_client(tls=False, server=None, connect=True, **FrameClient kw).

    server defaults to the module's `httpd`.  At teardown, if the test
    passed, every stream each client opened must have ended with END_STREAM
    or RST_STREAM (streams get FrameClient.end_grace seconds to do so), was
    reset by the client, or was refused by GOAWAY; c.expect_open(sid)
    exempts a stream.  `frame_client.track(c)` adds a client built by hand.
    """
    clients = []

    def make(tls=False, server=None, connect=True, **kw) -> FrameClient:
        server = server or request.getfixturevalue("httpd")
        client = FrameClient.for_httpd(server, tls=tls, **kw)
        clients.append(client)
        if connect:
            client.connect()
        return client

    make.clients = clients
    make.track = clients.append
    yield make
    rep = getattr(request.node, "rep_call", None)
    problems = []
    try:
        if rep is not None and rep.passed:
            for client in clients:
                problems += client.check_ended()
    finally:
        for client in clients:
            client.close()
    if problems:
        pytest.fail("streams left open (DESIGN invariant 1):\n" + "\n".join(problems),
                    pytrace=False)


@pytest.fixture
def piddir():
    """A directory under /tmp that www-data can write pid files into."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="h2x-pids-", dir="/tmp")
    os.chmod(d, 0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)
