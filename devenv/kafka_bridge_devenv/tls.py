"""A throw-away certificate authority and broker certificate for devenv.

Made with the ``openssl`` command line tool at every start, so nothing
secret is ever committed or reused between environments.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

from kafka_bridge_devenv.processes import DevenvError


@dataclasses.dataclass(frozen=True)
class BrokerTLS:
    """Paths of the generated PEM files."""

    ca_cert: Path
    #: the broker's PKCS#8 private key followed by its certificate, the form
    #: Kafka reads with ``ssl.keystore.type=PEM``
    broker_keystore: Path


def make_broker_tls(directory: Path) -> BrokerTLS:
    """Create a CA and a broker certificate valid for 127.0.0.1 and localhost.

    Raises DevenvError if openssl is missing or fails.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise DevenvError("openssl not found: install it (apt-get install openssl)"
                          " to use --kafka-security sasl_ssl")
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "broker.key", directory / "broker.csr", directory / "broker.pem"
    ext = directory / "broker.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n"
                   "extendedKeyUsage=serverAuth\n")
    steps = [
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
         "-subj", "/CN=kafka-bridge devenv CA", "-keyout", ca_key, "-out", ca_cert],
        [openssl, "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost",
         "-keyout", key, "-out", csr],
        [openssl, "x509", "-req", "-in", csr, "-CA", ca_cert, "-CAkey", ca_key,
         "-CAcreateserial", "-days", "30", "-extfile", ext, "-out", cert],
    ]
    for argv in steps:
        result = subprocess.run([str(a) for a in argv], capture_output=True, text=True,
                                check=False)
        if result.returncode != 0:
            raise DevenvError(f"openssl failed making the devenv certificates: "
                              f"{result.stderr.strip()}")
    keystore = directory / "broker-keystore.pem"
    keystore.write_text(key.read_text() + cert.read_text())
    for secret in (ca_key, key, keystore):
        secret.chmod(0o600)
    return BrokerTLS(ca_cert=ca_cert, broker_keystore=keystore)
