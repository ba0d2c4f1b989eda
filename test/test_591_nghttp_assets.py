"""591: nghttp fetching a page and its assets (-a), RFC 7540 priorities.

nghttp -a parses the HTML and fetches every image, script and stylesheet
on the same connection, giving each stream a dependency and weight by
type (RFC 7540 §5.3, PRIORITY and HEADERS priority fields), as browsers
did before RFC 9218. mod_h2x keeps no closed streams for the priority
tree (docs/differences-from-mod_http2.md): dependencies on finished
streams must simply fall back. Every asset is served, with small flow
control windows too (-w/-W 14: 16 KiB), and nghttp exits cleanly.
"""

import pytest

from h2x.clients import nghttp

pytestmark = pytest.mark.h2

ASSETS = ([("img", f"/a591/img-{i}.bin", 3000 * i + 1) for i in range(12)]
          + [("script", f"/a591/s-{i}.js", 20_000 + i) for i in range(8)]
          + [("css", f"/a591/c-{i}.css", 70_000 + i) for i in range(6)])


@pytest.fixture(scope="module")
def page(httpd):
    tags = []
    for kind, path, size in ASSETS:
        httpd.make_file(path, size)
        if kind == "img":
            tags.append(f'<img src="{path}">')
        elif kind == "script":
            tags.append(f'<script src="{path}"></script>')
        else:
            tags.append(f'<link rel="stylesheet" href="{path}">')
    with open(f"{httpd.docroot}/a591/index.html", "w") as f:
        f.write("<!doctype html><html><head>" + "".join(t for t in tags if "<link" in t)
                + "</head><body>" + "".join(t for t in tags if "<link" not in t)
                + "</body></html>\n")
    return "/a591/index.html"


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
@pytest.mark.parametrize("windows", [[], ["-w", "14", "-W", "14"]], ids=["default", "16k"])
def test_h2x_591_01_page_and_assets(httpd, page, tls, windows):
    r = nghttp(httpd.url(page, tls=tls), "-a", *windows, timeout=30)
    assert r.exit_code == 0, (r.stderr[-2000:], r.stdout[-2000:])
    assert r.statuses.count(200) == 1 + len(ASSETS), (r.statuses, r.stdout[-3000:])
    ended = [f for f in r.frames if f.direction == "recv" and f.type == "DATA"
             and f.flags & 0x1]
    assert len(ended) == 1 + len(ASSETS), r.stdout[-3000:]
    # nghttp's priority scheme: PRIORITY frames for its anchor streams,
    # and a dependency in each request's HEADERS.
    assert [f for f in r.frames if f.direction == "send" and f.type == "PRIORITY"], \
        r.stdout[:2000]
    assert "dep_stream_id=" in r.stdout
    assert not [f for f in r.frames if f.direction == "recv" and f.type == "RST_STREAM"]
    assert not [f for f in r.frames if f.direction == "recv" and f.type == "GOAWAY"]
