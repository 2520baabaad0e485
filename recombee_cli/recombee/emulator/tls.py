"""TLS for the emulator (optional): the SDK sends Batch over https whatever the protocol option says."""

from __future__ import annotations

import shutil
import ssl
import subprocess
import tempfile
from pathlib import Path

from recombee_cli.private import create_private


def server_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def self_signed_cert(host: str) -> tuple[str, str]:
    """A throwaway certificate for ``host`` (and localhost): cryptography if installed, else the
    openssl command. Clients trust it with e.g. ``httpx.Client(verify=emu.cert_path)`` or
    ``REQUESTS_CA_BUNDLE=emu.cert_path`` for the official SDK."""
    folder = Path(tempfile.mkdtemp(prefix="recombee-emulator-"))   # 0700: only its owner reads the key
    cert, key = folder / "cert.pem", folder / "key.pem"
    try:
        create_private(str(key))   # 0600 from the start (openssl keeps an existing file's mode)
        try:
            cert_with_cryptography(host, cert, key)
        except ImportError:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-keyout", str(key), "-out", str(cert), "-subj", f"/CN={host}",
                            "-addext", f"subjectAltName=IP:{host},DNS:localhost"],
                           check=True, capture_output=True)
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)   # no key left behind by a failure or a signal
        raise
    return str(cert), str(key)


def cert_with_cryptography(host: str, cert_path: Path, key_path: Path) -> None:
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host)),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
