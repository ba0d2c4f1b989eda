#!/usr/bin/python3
"""Helper of scripts/upstream-test: runs mod_http2's own regression suite
(a snapshot of github icing/mod_h2 test/) against the module under test.

Subcommands:

  ports N                      print N distinct free TCP ports on 127.0.0.1
  prepare --tree DIR ...       write test/pyhttpd/config.ini and
                               test/clients/Makefile, then apply the
                               environment plumbing (see PLUMBING below)
  summary --junit FILE ...     read pytest's junit-xml, compare the failures
                               with the expected-failures file, print a
                               summary; exit 0 if every failure is expected
  cleanup --root DIR           stop every process whose command line names
                               DIR (the httpd, CGIs and helpers the suite
                               started from its temporary tree)

The plumbing only changes the environment (which module is loaded, where
httpd listens, one helper the env lacks); it never touches an assertion.
Every edit names the exact text it expects and how often: if the snapshot
changed and a pattern is missing, `prepare` fails instead of running the
suite half-patched.  Running `prepare` twice is harmless (an edit whose
result is already there is skipped).
"""

import argparse
import fnmatch
import os
import re
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

# The project harness's free-port helper (test/h2x/ports.py).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from h2x.ports import free_ports  # noqa: E402

DEBIAN_MODULE_DIR = "/usr/lib/apache2/modules"


class PlumbingError(Exception):
    pass


# ---------------------------------------------------------------- ports

# ---------------------------------------------------------------- prepare

def edit(root, rel, old, new, count=1):
    """Replace `old` by `new` in root/rel, expecting exactly `count`
    occurrences of `old`; skip if `new` already occurs `count` times
    (already applied, or old == new); fail loudly otherwise."""
    path = os.path.join(root, rel)
    if not os.path.isfile(path):
        raise PlumbingError(f"{rel}: file not found")
    with open(path) as f:
        text = f.read()
    if text.count(new) == count:
        return "ok" if old == new else "already applied"
    found = text.count(old)
    if found != count:
        raise PlumbingError(
            f"{rel}: expected {count} occurrence(s) of {old!r}, found {found}"
            " (the snapshot changed? adapt test/upstream/upstream.py)")
    with open(path, "w") as f:
        f.write(text.replace(old, new))
    return "applied"


CURL_IS_LESS_THAN = '''\
    def curl_is_less_than(self, minv):
        # added by mod_h2x's scripts/upstream-test: mirrors curl_is_at_least()
        if not self.curl_is_at_least('0'):
            return False  # curl version unknown
        return self._curl_version < self._versiontuple(minv)

'''


def plumbing(module_name, module_path, proxy_http2_path):
    """The list of edits: (number of the README point, file, old, new, count)."""
    t = "test/"
    h2 = t + "modules/http2/"
    return [
        # 1. test_101_ssl_reneg.py calls env.curl_is_less_than(), which
        #    pyhttpd/env.py does not define.
        (1, t + "pyhttpd/env.py",
         "    def has_nghttp(self):\n",
         CURL_IS_LESS_THAN + "    def has_nghttp(self):\n", 1),
        # 2. load the module under test (its own module name) instead of
        #    mod_http2 from a build tree, and Debian's mod_proxy_http2.
        (2, h2 + "env.py",
         'self.add_local_module("http2", "mod_http2/.libs/mod_http2.so")',
         f'self.add_local_module("{module_name}", "{module_path}")', 1),
        (2, h2 + "env.py",
         'self.add_local_module("proxy_http2", "mod_http2/.libs/mod_proxy_http2.so")',
         f'self.add_local_module("proxy_http2", "{proxy_http2_path}")', 1),
        # 3. httpd refuses a LogLevel for a module that is not loaded: name
        #    the module under test (proxy_http2 stays).
        (3, h2 + "env.py",
         'self.add_httpd_log_modules(["http2", "proxy_http2",',
         f'self.add_httpd_log_modules(["{module_name}", "proxy_http2",', 1),
        (3, h2 + "test_200_header_invalid.py",
         "LogLevel http2:debug",
         f"LogLevel {module_name}:debug", 2),
        # 4. listen on the loopback interface only.
        (4, t + "pyhttpd/conf/httpd.conf.template",
         "Listen ${http_port}\nListen ${https_port}\n",
         "Listen 127.0.0.1:${http_port}\nListen 127.0.0.1:${https_port}\n", 1),
        (4, t + "pyhttpd/conf/stop.conf.template",
         "Listen ${http_port}\nListen ${https_port}\n",
         "Listen 127.0.0.1:${http_port}\nListen 127.0.0.1:${https_port}\n", 1),
        (4, h2 + "test_502_proxy_port.py",
         "f'Listen {env.proxy_port}',",
         "f'Listen 127.0.0.1:{env.proxy_port}',", 1),
        (4, h2 + "test_503_proxy_fwd.py",
         "f'Listen {env.proxy_port}',",
         "f'Listen 127.0.0.1:{env.proxy_port}',", 1),
        (4, h2 + "test_600_h2proxy.py",
         "f'Listen {env.http_port2}',",
         "f'Listen 127.0.0.1:{env.http_port2}',", 1),
        # 5. a hard-coded 5004 where the test means http_port2.
        (5, h2 + "test_600_h2proxy.py",
         'port=5004, doc_root="htdocs/cgi")',
         'port=env.http_port2, doc_root="htdocs/cgi")', 1),
    ]


def check_leftovers(root, module_name):
    """After the edits: nothing the plumbing is about may be left in the
    tree (a new test with a bare `Listen N`, another LogLevel http2:...,
    a fixed port 500x, a module from a build tree)."""
    problems = []
    # what pytest runs: test/modules/http2 and the pyhttpd package it
    # imports (test/scoreboard.py, load_test.py... are standalone tools)
    walk = [os.walk(os.path.join(root, "test", d)) for d in ("pyhttpd", "modules")]
    for d, _dirs, files in (entry for w in walk for entry in w):
        for name in files:
            if not (name.endswith(".py") or name.endswith(".template")
                    or name.endswith(".conf")):
                continue
            path = os.path.join(d, name)
            rel = os.path.relpath(path, root)
            with open(path, errors="replace") as f:
                for no, line in enumerate(f, 1):
                    where = f"{rel}:{no}: {line.strip()}"
                    if re.search(r"\bListen\s+(?!127\.0\.0\.1:)[$\d{]", line):
                        problems.append(f"Listen not on 127.0.0.1: {where}")
                    if re.search(r"\b50(0[0-9]|100)\b", line) and "port" in line \
                            and not name.startswith("config"):
                        problems.append(f"fixed port: {where}")
                    if "mod_http2/.libs" in line:
                        problems.append(f"module from a build tree: {where}")
                    if module_name != "http2" and \
                            re.search(r"LogLevel\b.*(?<![\w])http2:", line):
                        problems.append(f"LogLevel for http2: {where}")
    if problems:
        raise PlumbingError("plumbing incomplete:\n  " + "\n  ".join(problems))


def apxs_query(var):
    return subprocess.run(["/usr/bin/apxs", "-q", var], capture_output=True,
                          text=True, check=True).stdout.strip()


def static_modules(httpd):
    """Modules compiled into httpd, as pyhttpd names them (core, so, http...)."""
    out = subprocess.run([httpd, "-l"], capture_output=True, text=True,
                         check=True).stdout
    names = []
    for line in out.splitlines():
        m = re.match(r"\s+(?:mod_)?(\w+?)(?:_core)?\.c$", line)
        if m:
            names.append(m.group(1))
    if "core" not in names:
        raise PlumbingError(f"unexpected output of {httpd} -l:\n{out}")
    return names


def write_config_ini(root, ports, httpd="/usr/sbin/apache2"):
    libexec = apxs_query("LIBEXECDIR") or DEBIAN_MODULE_DIR
    dso = sorted(n[4:-3] for n in os.listdir(libexec)
                 if n.startswith("mod_") and n.endswith(".so"))
    test_dir = os.path.join(root, "test", "pyhttpd")
    http_port, https_port, proxy_port, http_port2, ws_port = ports
    ini = f"""\
# written by mod_h2x's scripts/upstream-test for Debian's apache2
# (instead of configure's config.ini.in)
[global]
curl_bin = curl
nghttp = nghttp
h2load = h2load

prefix = /usr
exec_prefix = /usr
bindir = /usr/bin
sbindir = /usr/sbin
libdir = /usr/lib
libexecdir = {libexec}

apr_bindir = /usr/bin
apxs = /usr/bin/apxs
httpd = {httpd}

[httpd]
version = {apxs_query("HTTPD_VERSION")}
name = apache2
dso_modules = {" ".join(dso)}
static_modules = {" ".join(static_modules(httpd))}
mpm_modules = mpm_event mpm_worker

[test]
src_dir = {root}
gen_dir = {os.path.join(root, "test", "gen")}
http_port = {http_port}
https_port = {https_port}
proxy_port = {proxy_port}
http_port2 = {http_port2}
ws_port = {ws_port}
http_tld = tests.httpd.apache.org
test_dir = {test_dir}
test_src_dir = {test_dir}
"""
    with open(os.path.join(test_dir, "config.ini"), "w") as f:
        f.write(ini)


CLIENTS_MAKEFILE = """\
# written by mod_h2x's scripts/upstream-test (instead of automake's)
h2ws: h2ws.c
\tcc -g -std=c99 -D_GNU_SOURCE $$(apr-1-config --includes --cppflags) -o h2ws h2ws.c -lnghttp2
"""


def cmd_prepare(a):
    root = os.path.abspath(a.tree)
    if not os.path.isdir(os.path.join(root, "test", "modules", "http2")):
        raise PlumbingError(f"{root}: no test/modules/http2 (not the unpacked snapshot?)")
    if not re.fullmatch(r"\w+", a.module_name):
        raise PlumbingError(f"bad module name {a.module_name!r}")
    for p in (a.module_path, a.proxy_http2):
        if not os.path.isabs(p) or not os.path.isfile(p):
            raise PlumbingError(f"{p}: not an existing absolute path")
    ports = [int(p) for p in a.ports.split(",")]
    if len(ports) != 5 or len(set(ports)) != 5:
        raise PlumbingError(f"need 5 distinct ports, got {a.ports}")

    write_config_ini(root, ports, a.httpd)
    print(f"upstream: wrote test/pyhttpd/config.ini (ports http {ports[0]}, "
          f"https {ports[1]}, proxy {ports[2]}, http2 {ports[3]}, ws {ports[4]})")
    with open(os.path.join(root, "test", "clients", "Makefile"), "w") as f:
        f.write(CLIENTS_MAKEFILE)
    print("upstream: wrote test/clients/Makefile")
    for point, rel, old, new, count in plumbing(a.module_name, a.module_path, a.proxy_http2):
        result = edit(root, rel, old, new, count)
        print(f"upstream: plumbing {point}: {rel}: {result}")
    check_leftovers(root, a.module_name)
    print("upstream: plumbing complete")
    return 0


# ---------------------------------------------------------------- summary

def read_expected(path):
    """[(pattern, reason, line number)] from the expected-failures file."""
    entries = []
    with open(path) as f:
        for no, line in enumerate(f, 1):
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            pattern, sep, reason = stripped.partition("#")
            pattern, reason = pattern.strip(), reason.strip()
            if not sep or not reason or not pattern or " " in pattern:
                raise PlumbingError(
                    f"{path}:{no}: want `<node id or pattern>  # reason`, got {stripped!r}")
            entries.append((pattern, reason, no))
    return entries


def node_id(tests_root, classname, name):
    """pytest's node id from a junit testcase: classname is dotted
    (modules.http2.test_003_get.TestGet); the file is the longest prefix
    that exists as a .py file under tests_root."""
    parts = classname.split(".") if classname else []
    for i in range(len(parts), 0, -1):
        rel = "/".join(parts[:i]) + ".py"
        if os.path.isfile(os.path.join(tests_root, rel)):
            return "::".join([rel] + parts[i:] + [name])
    return "::".join(([classname] if classname else []) + [name])


def matches(pattern, nid):
    """A pattern matches a node id, or its last part (the test name with
    its parameters), or the test name without parameters."""
    name = nid.rsplit("::", 1)[-1]
    bare = name.split("[", 1)[0]
    return any(fnmatch.fnmatchcase(s, pattern) for s in (nid, name, bare))


def first_line(el):
    """One line saying why a test failed: the first line of the message,
    plus pytest's `assert ...` line when the message is only a repr."""
    msg = (el.get("message") or "").strip()
    head = msg.splitlines()[0] if msg else ""
    text = el.text or ""
    asserts = [line.strip() for line in text.splitlines() if line.startswith("assert ")]
    if asserts and asserts[0] not in head:
        head = (head[:100] + " ... " if head else "") + asserts[0]
    if not head and text.strip():
        head = text.strip().splitlines()[-1]
    return head[:240]


def read_junit(path, tests_root):
    results = []  # (node id, outcome, message)
    root = ET.parse(path).getroot()
    for tc in root.iter("testcase"):
        nid = node_id(tests_root, tc.get("classname", ""), tc.get("name", ""))
        outcome, msg = "passed", ""
        for child in tc:
            if child.tag in ("failure", "error"):
                outcome, msg = "failed", f"{child.tag}: {first_line(child)}"
                break
            if child.tag == "skipped":
                outcome, msg = "skipped", first_line(child)
        results.append((nid, outcome, msg))
    return results


def cmd_summary(a):
    expected = read_expected(a.expected)
    if not os.path.isfile(a.junit):
        print(f"upstream: no junit report {a.junit}: pytest did not run to its end")
        return 1
    results = read_junit(a.junit, a.tests_root)
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    unexpected, expected_failed, now_pass = [], [], []
    used = set()
    for nid, outcome, msg in results:
        counts[outcome] += 1
        hit = next((e for e in expected if matches(e[0], nid)), None)
        if hit:
            used.add(hit[0])
        if outcome == "failed":
            (expected_failed if hit else unexpected).append((nid, msg, hit))
        elif outcome == "passed" and hit:
            now_pass.append((nid, hit))

    print()
    print(f"== upstream suite ({a.module}): {counts['passed']} passed, "
          f"{counts['failed']} failed ({len(expected_failed)} expected, "
          f"{len(unexpected)} unexpected), {counts['skipped']} skipped, "
          f"{len(results)} in all")
    if expected_failed:
        print(f"== expected failures ({len(expected_failed)}):")
        for nid, _msg, hit in expected_failed:
            print(f"   {nid}   # {hit[1]}")
    if now_pass and a.brief_passes:
        print(f"== {len(now_pass)} tests listed in {os.path.basename(a.expected)} passed "
              f"(not counted against the module)")
    elif now_pass:
        # grouped by the line of the expected-failures file that lists them
        print(f"== listed as expected failures but PASSED ({len(now_pass)}; "
              f"if this is mod_h2x, consider removing them from "
              f"{os.path.basename(a.expected)}):")
        for pattern, _reason, no in expected:
            ids = [nid for nid, hit in now_pass if hit[0] == pattern]
            if not ids:
                continue
            print(f"   line {no}: {pattern}: {len(ids)} passed")
            for nid in ids:
                print(f"      {nid}")
    if unexpected:
        print(f"== UNEXPECTED failures ({len(unexpected)}):")
        for nid, msg, _hit in unexpected:
            print(f"   {nid}")
            if msg:
                print(f"      {msg}")
    if a.failed_list:
        with open(a.failed_list, "w") as f:
            for nid, _msg, _hit in unexpected:
                f.write(nid + "\n")
    if len(results) == 0:
        print("== no test ran")
        return 1
    return 1 if unexpected else 0


# ---------------------------------------------------------------- cleanup

def processes_under(root):
    """pids (not ours) whose command line mentions root."""
    me = {os.getpid(), os.getppid()}
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) in me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if root in cmd:
            found.append((int(pid), cmd.strip()))
    return found


def cmd_cleanup(a):
    root = os.path.abspath(a.root)
    if len(root) < 8 or root in ("/", "/tmp", "/work"):
        raise PlumbingError(f"refusing to clean up processes under {root}")
    # httpd first, through its pid file, so it stops its own children
    for d, _dirs, files in os.walk(root):
        if "httpd.pid" in files:
            try:
                pid = int(open(os.path.join(d, "httpd.pid")).read().strip())
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if root.encode() in f.read():
                        print(f"upstream: stopping httpd {pid} left running by the suite")
                        os.kill(pid, signal.SIGTERM)
            except (OSError, ValueError):
                pass
    deadline = time.time() + 10
    while time.time() < deadline:
        left = processes_under(root)
        if not left:
            return 0
        time.sleep(0.5)
        if time.time() > deadline - 5:
            for pid, cmd in left:
                print(f"upstream: killing leftover process {pid}: {cmd[:120]}")
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
    left = processes_under(root)
    for pid, cmd in left:
        print(f"upstream: process {pid} still running: {cmd[:120]}")
    return 1 if left else 0


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("ports")
    p.add_argument("n", type=int)
    p = sub.add_parser("prepare")
    p.add_argument("--tree", required=True)
    p.add_argument("--module-name", required=True)
    p.add_argument("--module-path", required=True)
    p.add_argument("--proxy-http2", default=os.path.join(DEBIAN_MODULE_DIR, "mod_proxy_http2.so"))
    p.add_argument("--ports", required=True, help="http,https,proxy,http2,ws")
    p.add_argument("--httpd", default="/usr/sbin/apache2",
                   help="the httpd binary the suite runs (a wrapper under --sanitize)")
    p = sub.add_parser("summary")
    p.add_argument("--junit", required=True)
    p.add_argument("--expected", required=True)
    p.add_argument("--tests-root", required=True, help="the directory pytest ran in")
    p.add_argument("--module", default="?")
    p.add_argument("--failed-list", help="write the unexpected failures' node ids here")
    p.add_argument("--brief-passes", action="store_true",
                   help="count listed tests that passed instead of naming them")
    p = sub.add_parser("cleanup")
    p.add_argument("--root", required=True)
    a = ap.parse_args()
    try:
        if a.cmd == "ports":
            print(" ".join(str(p) for p in free_ports(a.n)))
            return 0
        return {"prepare": cmd_prepare, "summary": cmd_summary,
                "cleanup": cmd_cleanup}[a.cmd](a)
    except PlumbingError as e:
        print(f"upstream: ERROR: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
