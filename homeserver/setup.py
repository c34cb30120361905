"""Creating a data directory: the config file, the signing key and the TLS certificate.

`init` keeps the comments of `config.sample.yaml` by editing values in its text rather than
dumping a fresh YAML document, so operators get the documentation next to their settings.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import secrets
import string
from importlib import resources
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from homeserver.config import Config, parse_config
from homeserver.protocol.signing import generate_signing_key, write_signing_keys

CONFIG_FILE = "homeserver.yaml"


def sample_config_text() -> str:
    """config.sample.yaml, from the checkout or from the installed package data."""
    checkout = Path(__file__).resolve().parent.parent / "config.sample.yaml"
    if checkout.exists():
        return checkout.read_text()
    return resources.files("homeserver").joinpath("config.sample.yaml").read_text()


def set_value(text: str, dotted: str, value: Any) -> str:
    """Replace the value of `dotted` (e.g. listeners.client.port) in YAML text, keeping comments.

    Works on the block-style YAML of the sample file: each key on its own line, two-space indent.
    """
    parts = dotted.split(".")
    lines = text.splitlines()
    depth, start = 0, 0
    for i in range(start, len(lines)):
        stripped = lines[i].lstrip(" ")
        indent = len(lines[i]) - len(stripped)
        if stripped.startswith("#") or not stripped:
            continue
        if indent < depth * 2 and depth > 0:
            break
        if indent == depth * 2 and stripped.split(":", 1)[0] == parts[depth]:
            if depth == len(parts) - 1:
                lines[i] = " " * indent + f"{parts[depth]}: {json.dumps(value)}"
                return "\n".join(lines) + "\n"
            depth += 1
    raise KeyError(f"{dotted} is not in the configuration template")


def write_private_file(path: Path, data: bytes) -> None:
    """Write `data` to `path` readable by its owner only from the first byte on: a new file is
    created with mode 0600 (never 0644 then chmod'ed, which leaves a window for other local
    users to open it) and renamed over `path`, so an existing file is replaced whole."""
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def write_tls_certificate(cert_path: Path, key_path: Path, server_name: str) -> None:
    """A self-signed certificate for the federation listener (replace it for production)."""
    host = server_name.rsplit(":", 1)[0] if not server_name.endswith("]") else server_name
    host = host.strip("[]")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    try:
        san: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        san = x509.DNSName(host)
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(x509.SubjectAlternativeName([san]), critical=False)
        .sign(key, hashes.SHA256())
    )
    write_private_file(key_path, key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def init_data_dir(
    data_dir: Path, server_name: str, *, client_port: int = 8008, federation_port: int = 8448,
    metrics_port: int | None = None, database_url: str | None = None,
    open_registration: bool = False, rate_limits: bool = True,
    insecure_federation: bool = False, extra: dict[str, Any] | None = None,
) -> Path:
    """Write DATA_DIR/homeserver.yaml, signing.key, tls.crt and tls.key; return the config path.

    Existing keys are kept, so re-running init never changes a server's identity.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    text = sample_config_text()
    values: dict[str, Any] = {
        "server.server_name": server_name,
        "listeners.client.port": client_port,
        "listeners.federation.port": federation_port,
        "listeners.metrics.port": metrics_port,
        "database.url": database_url,
        "registration.enabled": open_registration,
        "rate_limits.enabled": rate_limits,
        # For servers federating on one machine: self-signed certificates, loopback peers.
        "federation.verify_certificates": not insecure_federation,
        "federation.allow_private_addresses": insecure_federation,
        **(extra or {}),
    }
    for dotted, value in values.items():
        text = set_value(text, dotted, value)
    config: Config = parse_config(text, data_dir)  # refuse to write a config we cannot read
    signing_key_path = config.path(config.server.signing_key_path)
    if not signing_key_path.exists():
        key = generate_signing_key("a_" + _key_suffix())
        write_private_file(signing_key_path, write_signing_keys([key]).encode())
    cert = config.path(config.listeners.federation.tls_certificate_path)
    tls_key = config.path(config.listeners.federation.tls_private_key_path)
    if not cert.exists() or not tls_key.exists():
        write_tls_certificate(cert, tls_key, server_name)
    config_path = data_dir / CONFIG_FILE
    write_private_file(config_path, text.encode())
    return config_path


def _key_suffix() -> str:
    return "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(4))
