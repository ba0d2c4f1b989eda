"""551: with the default H2OutputBuffering on, each flushed line still
reaches the client promptly (within the short hold), never a line late."""

import pytest

from test_550_streaming import _run_lines

pytestmark = [pytest.mark.h2]


@pytest.mark.parametrize("tls", [False, True], ids=["h2c", "h2"])
def test_h2x_551_01_lines_latency_default(httpd, frame_client, tls):
    _run_lines(frame_client, tls)
