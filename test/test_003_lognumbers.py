"""003: every H2XLOGNO message tag is used at exactly one call site, and the
numbers below mod_h2x/next-lognumber are the ones handed out (httpd's
log-message-tags rules, STYLE.md §3.7)."""
import glob
import os
import re
from collections import Counter


def test_h2x_003_01_log_tags_unique(env):
    src = os.path.join(env.repo_root, "mod_h2x")
    tags = []
    for path in glob.glob(os.path.join(src, "*.cpp")) + glob.glob(os.path.join(src, "*.h")):
        with open(path) as f:
            tags += [int(n) for n in re.findall(r"H2XLOGNO\((\d+)\)", f.read())]
    dup = [t for t, n in Counter(tags).items() if n > 1]
    assert tags and not dup, f"tags used twice: {dup}"
    with open(os.path.join(src, "next-lognumber")) as f:
        next_free = int(f.read().strip())
    # 10001..next-1 for the engine; 10060..10079 handed out to the
    # sanitizer work (issue 10) beside next-lognumber; 10100..10199
    # reserved for h2x_config.
    stray = [t for t in tags if not (10001 <= t < next_free or 10060 <= t <= 10079
                                     or 10100 <= t <= 10199)]
    assert not stray, f"tags outside the handed-out ranges: {stray}"
