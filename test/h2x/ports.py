"""Free TCP ports on the loopback interface.

The kernel picks the port (bind to port 0); nothing here uses fixed port
numbers.  A port is free when returned, but another process may take it
before httpd binds it, so Httpd.start() retries with new ports when the
error log says the address is in use.
"""

import socket
from typing import List


def free_ports(count: int, host: str = "127.0.0.1") -> List[int]:
    """Return `count` distinct TCP ports on `host` that were free just now.

    All sockets are held open until every port is chosen, so the kernel
    cannot hand out the same port twice.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port(host: str = "127.0.0.1") -> int:
    """Return one TCP port on `host` that was free just now."""
    return free_ports(1, host)[0]


def port_accepts(port: int, host: str = "127.0.0.1", timeout: float = 0.5) -> bool:
    """True if a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
