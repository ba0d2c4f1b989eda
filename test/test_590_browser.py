"""590: a real browser (Debian's headless Chromium) over h2.

Chromium loads a page over TLS whose script fetches, all at once, 40
static files of the sizes that sit on frame and window edges, then text
files that mod_deflate compresses on the way (Debian's deflate.conf), a HEAD,
a conditional GET that the server answers with 304, a 1 MiB POST to a CGI and
a 204 from a CGI, and writes what it got (status, length and SHA-256 of
every body, the protocol of every fetch) into the page. The test reads
the page back (--dump-dom) and compares with what the server holds.
"""

import hashlib
import html
import json
import os
import re

import pytest

from h2x.clients import chromium_dump_dom
from h2x.httpd import file_content

pytestmark = pytest.mark.h2

SIZES = [0, 1, 1000, 16383, 16384, 16385, 65535, 65536, 100_000, 2 << 20]
# Text types, which the standard server's mod_deflate (Debian's deflate.conf)
# compresses for a browser: the browser inflates them back.
TEXTS = [("t-1.js", 1), ("t-20000.css", 20_000), ("t-100000.txt", 100_000),
         ("t-300000.html", 300_000)]

PAGE = """<!doctype html>
<html><head><title>h2x browser test</title></head><body>
<pre id="result">pending</pre>
<script>
const FILES = %(files)s;
const TEXTS = %(texts)s;
const hex = (buf) => Array.from(new Uint8Array(buf))
  .map((b) => b.toString(16).padStart(2, "0")).join("");
const sha = async (buf) => hex(await crypto.subtle.digest("SHA-256", buf));
(async () => {
  const out = {};
  try {
    out.files = await Promise.all(FILES.map(async (path) => {
      const r = await fetch(path, {cache: "no-store"});
      const b = await r.arrayBuffer();
      return {path, status: r.status, size: b.byteLength, sha: await sha(b)};
    }));
    out.texts = await Promise.all(TEXTS.map(async (path) => {
      const r = await fetch(path, {cache: "no-store"});
      const b = await r.arrayBuffer();
      return {path, status: r.status, size: b.byteLength, sha: await sha(b),
              encoding: r.headers.get("content-encoding")};
    }));
    const h = await fetch("/b590/f-100000.bin", {method: "HEAD", cache: "no-store"});
    out.head = {status: h.status, length: h.headers.get("content-length"),
                body: (await h.arrayBuffer()).byteLength};
    const r1 = await fetch("/b590/reval.txt", {cache: "no-store"});
    await r1.text();
    const rv = await fetch("/b590/reval.txt", {cache: "no-store",
                                               headers: {"If-None-Match": r1.headers.get("etag")}});
    out.revalidate = {status: rv.status, body: await rv.text()};
    const up = new Uint8Array(1 << 20);
    for (let i = 0; i < up.length; i++) up[i] = (i * 7 + (i >> 8)) & 255;
    const pr = await fetch("/cgi-bin/echo.py?sha=1", {method: "POST", body: up});
    out.post = {status: pr.status, body: await pr.text(), expect: await sha(up)};
    const nc = await fetch("/cgi-bin/nocontent.py", {cache: "no-store"});
    out.nocontent = {status: nc.status, body: (await nc.arrayBuffer()).byteLength};
    out.protocols = performance.getEntriesByType("resource").map((e) => e.nextHopProtocol);
    out.navigation = performance.getEntriesByType("navigation")[0].nextHopProtocol;
  } catch (e) {
    out.error = String(e);
  }
  document.getElementById("result").textContent = JSON.stringify(out);
})();
</script>
</body></html>
"""


def test_h2x_590_01_chromium_page(httpd, tmp_path):
    files = []
    for size in SIZES:
        httpd.make_file(f"/b590/f-{size}.bin", size)
        files += [f"/b590/f-{size}.bin?copy={i}" for i in range(4)]
    texts = []
    for name, size in TEXTS:
        httpd.make_file(f"/b590/{name}", size)
        texts += [f"/b590/{name}?copy={i}" for i in range(2)]
    with open(os.path.join(httpd.docroot, "b590", "reval.txt"), "w") as f:
        f.write("revalidated\n")
    with open(os.path.join(httpd.docroot, "b590", "page.html"), "w") as f:
        f.write(PAGE % {"files": json.dumps(files), "texts": json.dumps(texts)})
    dom, stderr = chromium_dump_dom(httpd.url("/b590/page.html", tls=True), str(tmp_path),
                                    budget_ms=30000)
    m = re.search(r'<pre id="result">(.*?)</pre>', dom, re.S)
    assert m and m.group(1) != "pending", (dom[-2000:], stderr[-2000:])
    out = json.loads(html.unescape(m.group(1)))
    assert "error" not in out, out
    assert len(out["files"]) == len(files)
    for got in out["files"]:
        size = int(got["path"].split("f-")[1].split(".")[0])
        assert got["status"] == 200, got
        assert got["size"] == size, got
        assert got["sha"] == hashlib.sha256(file_content(size)).hexdigest(), got
    assert len(out["texts"]) == len(texts)
    for got in out["texts"]:
        size = int(got["path"].split("-")[1].split(".")[0])
        assert got["status"] == 200, got
        assert got["size"] == size, got
        assert got["sha"] == hashlib.sha256(file_content(size)).hexdigest(), got
        if size >= 20_000:
            assert got["encoding"] == "gzip", got
    assert out["head"] == {"status": 200, "length": "100000", "body": 0}, out["head"]
    assert out["revalidate"] == {"status": 304, "body": ""}, out["revalidate"]
    assert out["post"]["status"] == 200
    assert out["post"]["body"] == "%s %d\n" % (out["post"]["expect"], 1 << 20), out["post"]
    assert out["nocontent"] == {"status": 204, "body": 0}, out["nocontent"]
    assert out["navigation"] == "h2"
    assert out["protocols"] and set(out["protocols"]) == {"h2"}, out["protocols"]
    log = "\n".join(httpd.access_log_lines())
    # The conditional GET was answered 304 over h2 (Chromium keeps no HTTP
    # cache for a site whose certificate it was told to ignore, so the
    # page sends If-None-Match itself).
    assert re.search(r'"GET /b590/reval.txt HTTP/2.0" 304 ', log), log[-3000:]
    assert re.search(r'"HEAD /b590/f-100000.bin HTTP/2.0" 200 ', log), log[-3000:]
