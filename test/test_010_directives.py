"""mod_http2's directives in mod_h2x: accepted values, rejected values, contexts.

Self-contained (no harness fixtures): every test writes a minimal httpd.conf
into tmp_path and runs `apache2 -t -f <conf>`, which reads the configuration
and stops. A rejected directive makes it exit non-zero with a message that
names the directive and the offending value.

Module path: $H2X_MODULE_PATH, else <repo>/.libs/mod_h2x.so.
"""

import os
import re
import socket
import subprocess
import tempfile

import pytest

from h2x import logscan

APACHE = os.environ.get("APACHE2", "/usr/sbin/apache2")
MODULES_DIR = os.environ.get("APACHE_MODULES_DIR", "/usr/lib/apache2/modules")
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H2X_SO = os.environ.get("H2X_MODULE_PATH", os.path.join(REPO, ".libs", "mod_h2x.so"))
HTTP2_SO = os.path.join(MODULES_DIR, "mod_http2.so")

# name, where it may appear ("server": server config/vhost only, "any": also
# <Directory>/<Location>/.htaccess), valid argument strings, and a bad
# argument string with the text the error message must repeat.
DIRECTIVES = [
    ("H2Direct", "server", ["on", "Off"], ("maybe", "maybe")),
    ("H2Upgrade", "any", ["on", "OFF"], ("yes", "yes")),
    ("H2MaxSessionStreams", "server", ["1", "100"], ("0", "'0'")),
    ("H2WindowSize", "server", ["1", "65535", "2147483647"], ("2147483648", "2147483648")),
    ("H2MinWorkers", "server", ["1", "10"], ("0", "'0'")),
    ("H2MaxWorkers", "server", ["1", "50"], ("-3", "-3")),
    ("H2MaxWorkerIdleSeconds", "server", ["600", "2min", "0"], ("soon", "soon")),
    ("H2StreamMaxMemSize", "server", ["1", "65536"], ("64k", "64k")),
    ("H2SerializeHeaders", "server", ["on", "off"], ("perhaps", "perhaps")),
    ("H2SessionExtraFiles", "server", ["5"], ("many", "many")),
    ("H2ModernTLSOnly", "server", ["on", "off"], ("1", "'1'")),
    ("H2TLSWarmUpSize", "server", ["0", "1048576"], ("-1", "-1")),
    ("H2TLSCoolDownSecs", "server", ["0", "1"], ("1.5", "1.5")),
    ("H2Push", "any", ["on", "off"], ("sometimes", "sometimes")),
    ("H2PushPriority", "server",
     ["text/css Before", "* After 16", "image/jpeg 32", "application/json Interleaved 256"],
     ("text/css Sideways", "Sideways")),
    ("H2PushDiarySize", "server", ["0", "256", "32768"], ("100", "100")),
    ("H2PushResource", "any", ["/style.css", "add /a.js critical", "/b.js critical"],
     ("/c.js important", "important")),
    ("H2CopyFiles", "any", ["on", "off"], ("copy", "copy")),
    ("H2EarlyHints", "server", ["on", "off"], ("early", "early")),
    ("H2EarlyHint", "any", ['Link "</s.css>;rel=preload;as=style"'], ('"Bad Name" x', "Bad Name")),
    ("H2Padding", "server", ["0", "8"], ("9", "'9'")),
    ("H2OutputBuffering", "server", ["on", "off"], ("buffered", "buffered")),
    ("H2StreamTimeout", "server", ["30", "500ms", "2min"], ("abc", "abc")),
    ("H2MaxDataFrameLen", "server", ["0", "16384"], ("-1", "-1")),
    ("H2MaxHeaderBlockLen", "server", ["0", "65536"], ("100abc", "100abc")),
    ("H2MaxStreamErrors", "server", ["0", "8"], ("many", "many")),
    ("H2ProxyRequests", "any", ["on", "off"], ("proxy", "proxy")),
    ("H2WebSockets", "server", ["on", "off"], ("ws", "ws")),
]
NAMES = [d[0] for d in DIRECTIVES]
SERVER_ONLY = [d[0] for d in DIRECTIVES if d[1] == "server"]
ANYWHERE = [d[0] for d in DIRECTIVES if d[1] == "any"]
OBSOLETE = ["H2SerializeHeaders", "H2SessionExtraFiles"]
BY_NAME = {d[0]: d for d in DIRECTIVES}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", autouse=True)
def module_built():
    assert os.path.isfile(H2X_SO), f"{H2X_SO} missing: build mod_h2x first (make)"
    assert os.path.isfile(APACHE), f"{APACHE} missing"


# H2X_SANITIZE: apache2 runs with the sanitizer runtimes (docs/sanitizers.md).
RUN_ENV = None


@pytest.fixture(autouse=True)
def sanitizers(env):
    """Under H2X_SANITIZE, run apache2 with the runtimes preloaded and fail
    on any sanitizer report it wrote."""
    global RUN_ENV
    if not env.sanitize:
        yield
        return
    log_dir = env.make_sanitizer_dir(tempfile.mkdtemp(prefix="010-", dir=env.session_dir))
    RUN_ENV = dict(os.environ, **env.sanitizer_environment(log_dir))
    try:
        yield
    finally:
        RUN_ENV = None
    reports = logscan.LogScanner(os.devnull, sanitizer_dir=log_dir).scan()
    assert not reports, "\n".join(reports)


class Conf:
    """A minimal httpd.conf in tmp_path with mod_h2x loaded."""

    def __init__(self, root, module=H2X_SO, module_id="h2x_module"):
        self.root = str(root)
        self.docroot = os.path.join(self.root, "htdocs")
        os.makedirs(self.docroot, exist_ok=True)
        self.path = os.path.join(self.root, "httpd.conf")
        self.base = [
            f"ServerRoot {self.root}",
            "ServerName localhost",
            f"PidFile {self.root}/httpd.pid",
            f"ErrorLog {self.root}/error.log",
            f"Listen 127.0.0.1:{free_port()}",
            f"LoadModule mpm_event_module {MODULES_DIR}/mod_mpm_event.so",
            f"LoadModule authz_core_module {MODULES_DIR}/mod_authz_core.so",
            f"LoadModule {module_id} {module}",
            f"DocumentRoot {self.docroot}",
        ]

    def run(self, *lines, args=("-t",)):
        with open(self.path, "w") as f:
            f.write("\n".join(self.base + list(lines)) + "\n")
        p = subprocess.run([APACHE, *args, "-f", self.path], capture_output=True,
                           text=True, timeout=60, env=RUN_ENV)
        return p.returncode, p.stdout + p.stderr


@pytest.fixture
def conf(tmp_path):
    return Conf(tmp_path)


def in_section(section, line, conf):
    if section == "server":
        return [line]
    if section == "vhost":
        return ["<VirtualHost *:*>", "ServerName v1.example", line, "</VirtualHost>"]
    if section == "directory":
        return [f'<Directory "{conf.docroot}">', line, "</Directory>"]
    if section == "location":
        return ["<Location /x>", line, "</Location>"]
    raise ValueError(section)


def valid_cases():
    for name, where, good, _ in DIRECTIVES:
        sections = ["server", "vhost"] + (["directory", "location"] if where == "any" else [])
        for sec in sections:
            for value in good:
                yield pytest.param(name, sec, value, id=f"{name}-{sec}-{value}")


# 01: every directive takes each of its valid values in each allowed context.
@pytest.mark.parametrize("name,section,value", list(valid_cases()))
def test_h2x_010_01_valid_value_accepted(conf, name, section, value):
    rc, out = conf.run(*in_section(section, f"{name} {value}", conf))
    assert rc == 0, out
    assert "Syntax OK" in out, out


# 02: a bad value fails `apache2 -t`, naming the directive and the value.
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("section", ["server", "vhost"])
def test_h2x_010_02_bad_value_rejected(conf, name, section):
    args, shown = BY_NAME[name][3]
    rc, out = conf.run(*in_section(section, f"{name} {args}", conf))
    assert rc != 0, out
    assert name in out, out
    assert shown in out, out


# 03: a server-only directive inside <Location> or <Directory> is rejected.
@pytest.mark.parametrize("name", SERVER_ONLY)
@pytest.mark.parametrize("section", ["location", "directory"])
def test_h2x_010_03_wrong_context_rejected(conf, name, section):
    value = BY_NAME[name][2][0]
    rc, out = conf.run(*in_section(section, f"{name} {value}", conf))
    assert rc != 0, out
    assert re.search(rf"{name} not allowed", out), out


# 04: the obsolete directives load with a tagged warning naming them.
@pytest.mark.parametrize("name", OBSOLETE)
def test_h2x_010_04_obsolete_accepted_with_warning(conf, name):
    value = BY_NAME[name][2][0]
    rc, out = conf.run(f"{name} {value}")
    assert rc == 0, out
    warning = [ln for ln in out.splitlines() if "H2X10100" in ln and name in ln]
    assert warning and "obsolete" in warning[0], out
    assert "warn" in warning[0], out


# 05: H2MaxWorkers below H2MinWorkers is rejected, in either order.
@pytest.mark.parametrize("lines,bad", [
    (["H2MinWorkers 8", "H2MaxWorkers 4"], ("H2MaxWorkers", "'4'")),
    (["H2MaxWorkers 4", "H2MinWorkers 8"], ("H2MinWorkers", "'8'")),
])
def test_h2x_010_05_max_workers_below_min_rejected(conf, lines, bad):
    rc, out = conf.run(*lines)
    assert rc != 0, out
    assert bad[0] in out and bad[1] in out, out
    rc, out = conf.run("H2MinWorkers 4", "H2MaxWorkers 4")
    assert rc == 0, out


# 06: numbers are whole decimal numbers within range, nothing else.
@pytest.mark.parametrize("line", [
    "H2MaxSessionStreams 100abc", "H2MaxSessionStreams ' 100'", "H2MaxSessionStreams +100",
    "H2MaxSessionStreams 0x10", "H2WindowSize 0", "H2WindowSize 99999999999999999999",
    "H2Padding -1", "H2PushDiarySize 65536", "H2PushPriority text/css After 257",
    "H2PushPriority text/css After 0", "H2StreamTimeout -5", "H2StreamTimeout ''",
    "H2PushResource add /a.js critical extra",
])
def test_h2x_010_06_malformed_numbers_rejected(conf, line):
    rc, out = conf.run(line)
    assert rc != 0, out
    assert line.split()[0] in out, out


# 07: all directives together with valid values, in a virtual host and the
# main server, and the dir-capable ones inside sections, load fine.
def test_h2x_010_07_full_config_accepted(conf):
    lines = [f"{name} {good[-1]}" for name, _, good, _ in DIRECTIVES]
    dir_lines = [f"{name} {BY_NAME[name][2][0]}" for name in ANYWHERE]
    rc, out = conf.run(
        *lines,
        "<VirtualHost *:*>", "ServerName v1.example", *lines,
        "<Location /x>", *dir_lines, "</Location>", "</VirtualHost>",
        f'<Directory "{conf.docroot}">', *dir_lines, "</Directory>",
    )
    assert rc == 0, out
    assert "Syntax OK" in out, out


def directive_contexts(conf_obj):
    """Parse `apache2 -L`: {directive: [context lines]} for H2* directives."""
    rc, out = conf_obj.run(args=("-L",))
    assert rc == 0, out
    result, current = {}, None
    for line in out.splitlines():
        m = re.match(r"^(H2\w+) \(", line)
        if m:
            current = m.group(1)
            result[current] = []
        elif current and line.startswith("\t"):
            result[current].append(line.strip())
        else:
            current = None
    # drop the one-line description, keep "Allowed in ..." lines
    return {k: [ln for ln in v if ln.startswith(("Allowed", "when"))] for k, v in result.items()}


# 08: mod_h2x registers exactly mod_http2's directives, each in its context
# (compared with the installed mod_http2 when there is one).
# mod_h2x's own directives (H2x*, docs/directives/README.md) come on top.
OWN = {"H2xInlineRequests", "H2xEventLoop"}


def test_h2x_010_08_same_directives_and_contexts_as_mod_http2(tmp_path):
    h2x = directive_contexts(Conf(tmp_path / "h2x"))
    assert {k for k in h2x if k.startswith("H2x")} == OWN
    for name in OWN:
        assert "only outside <Directory>" in " ".join(h2x.pop(name)), name
    assert sorted(h2x) == sorted(NAMES)
    for name, where, _, _ in DIRECTIVES:
        text = " ".join(h2x[name])
        if where == "server":
            assert "only outside <Directory>" in text, (name, text)
        else:
            assert "anywhere and in .htaccess" in text, (name, text)
    # Debian's apache2 package always ships mod_http2.so (scripts/install-deps).
    assert os.path.isfile(HTTP2_SO), f"{HTTP2_SO} missing: apache2 not installed?"
    http2 = directive_contexts(Conf(tmp_path / "http2", HTTP2_SO, "http2_module"))
    assert sorted(http2) == sorted(h2x)
    for name in NAMES:
        assert h2x[name] == http2[name], name
