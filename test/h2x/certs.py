"""The self-signed TLS certificate for a test session.

One EC P-256 key and certificate for `localhost` and 127.0.0.1, made with
the openssl command line tool in the session's temporary directory and
shared by every httpd of the session.  It is a leaf certificate
(CA:FALSE, serverAuth) so mod_ssl does not warn about a CA certificate
being used as a server certificate.  Clients do not verify it.
"""

import os
import subprocess
from typing import Tuple


def make_cert(directory: str, name: str = "localhost") -> Tuple[str, str]:
    """Create (once) `<name>.crt` and `<name>.key` in `directory`.

    Returns (cert_path, key_path).  Files that already exist are reused.
    """
    os.makedirs(directory, exist_ok=True)
    cert = os.path.join(directory, f"{name}.crt")
    key = os.path.join(directory, f"{name}.key")
    if os.path.exists(cert) and os.path.exists(key):
        return cert, key
    cmd = [
        "openssl", "req", "-x509", "-nodes", "-days", "30",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-keyout", key, "-out", cert,
        "-subj", f"/CN={name}",
        "-addext", f"subjectAltName=DNS:{name},IP:127.0.0.1",
        "-addext", "basicConstraints=critical,CA:FALSE",
        "-addext", "keyUsage=critical,digitalSignature",
        "-addext", "extendedKeyUsage=serverAuth",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"openssl failed to make a test certificate:\n{proc.stderr}")
    # httpd reads them as root before dropping privileges; 0644 is enough
    # for the key because it only protects a throw-away test certificate.
    os.chmod(cert, 0o644)
    os.chmod(key, 0o644)
    return cert, key
