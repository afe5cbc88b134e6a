"""The network operator's secrets: the token secret, the local CA, the server's certificate,
and the kits made from them.

All of it lives in the sync server's own volume (`credentials/` in its data folder), made on
the first start and kept across restarts, so kits stay valid: never in the repository or the
image. An operator may bring its own certificate and key (`TLS_CERT_FILE`, `TLS_KEY_FILE`,
`TLS_CA_FILE`: what clients should trust) instead of the local CA.

Replacing a leaked kit: `federation invite EMAIL --replace` records the moment in
`revoked.json`; the server's guard refuses every token of that email issued before it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from federation.common.files import atomic_write
from federation.common.kit import Kit, KitError, make_token, parse_kit, verify_token

log = logging.getLogger(__name__)

# The names the server's certificate is valid for: the compose service, this machine, and the
# host seen from another docker network (a remote owner reaching the published port).
DEFAULT_NAMES = ("syftbox", "localhost", "127.0.0.1", "host.docker.internal")
CERT_DAYS = 825


@dataclass(frozen=True)
class ServerCredentials:
    folder: Path

    @property
    def secret_file(self) -> Path:
        return self.folder / "jwt_secret"

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.pem"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def server_cert(self) -> Path:
        return self.folder / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.folder / "server.key"

    @property
    def revoked_file(self) -> Path:
        return self.folder / "revoked.json"

    def secret(self) -> str:
        return self.secret_file.read_text().strip()

    def revoked(self) -> dict[str, float]:
        try:
            return json.loads(self.revoked_file.read_text())
        except (OSError, ValueError):
            return {}

    def revoke_before(self, email: str, when: float) -> None:
        revoked = self.revoked() | {email.lower(): when}
        atomic_write(self.revoked_file, json.dumps(revoked, indent=2) + "\n")


def _private(path: Path, text: str | bytes) -> None:
    atomic_write(path, text)
    path.chmod(0o600)


def _key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _san(names: tuple[str, ...]):
    from cryptography import x509

    entries = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _certificate(subject: str, key, issuer_name, issuer_key, *, ca: bool, names: tuple[str, ...] = ()):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
               .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(
                   (issuer_key or key).public_key()), critical=False))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
            decipher_only=False), critical=True)
    else:
        builder = builder.add_extension(_san(names), critical=False).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def certificate_names(path: Path) -> set[str]:
    """The DNS names and IP addresses a PEM certificate is valid for."""
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(path.read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def ensure(folder: Path, names: tuple[str, ...] = DEFAULT_NAMES) -> ServerCredentials:
    """The server's secret, CA and certificate, made where missing (first start), kept otherwise.
    A certificate that lacks one of `names` is made again (same CA: kits stay valid)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    creds = ServerCredentials(folder)
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    if not creds.secret_file.exists():
        _private(creds.secret_file, secrets.token_hex(32) + "\n")
        log.info("made the token secret %s", creds.secret_file)
    if not (creds.ca_cert.exists() and creds.ca_key.exists()):
        ca_key = _key()
        ca = _certificate("federation local CA", ca_key, None, None, ca=True)
        _private(creds.ca_key, _pem_key(ca_key))
        atomic_write(creds.ca_cert, ca.public_bytes(serialization.Encoding.PEM))
        creds.server_cert.unlink(missing_ok=True)  # signed by the old CA, if any
        log.info("made the local CA %s", creds.ca_cert)
    if not creds.server_cert.exists() or not set(names) <= certificate_names(creds.server_cert):
        ca_key = serialization.load_pem_private_key(creds.ca_key.read_bytes(), None)
        ca = x509.load_pem_x509_certificate(creds.ca_cert.read_bytes())
        key = _key()
        cert = _certificate(names[0], key, ca.subject, ca_key, ca=False, names=names)
        _private(creds.server_key, _pem_key(key))
        atomic_write(creds.server_cert, cert.public_bytes(serialization.Encoding.PEM))
        log.info("made the server certificate for %s", ", ".join(names))
    return creds


def issue(creds: ServerCredentials, email: str, server_url: str, ca_pem: str,
          expires_in: float | None = None, now: float | None = None) -> Kit:
    token = make_token(creds.secret(), email, expires_in=expires_in, now=now)
    return Kit(server_url=server_url, email=email, access_token=token, ca_pem=ca_pem)


def still_valid(creds: ServerCredentials, kit_file: Path, email: str, server_url: str, ca_pem: str) -> bool:
    """A kit already issued is kept when it is for this email and server, trusts this CA and
    its token verifies with this secret and is not revoked."""
    try:
        kit = parse_kit(kit_file.read_text())
        claims = verify_token(creds.secret(), kit.access_token)
    except (OSError, KitError):
        return False
    revoked_before = creds.revoked().get(email.lower(), 0)
    return (kit.email == email and kit.server_url == server_url and kit.ca_pem == ca_pem.strip()
            and claims.get("email") == email and claims.get("iat", 0) >= revoked_before)


def replace(creds: ServerCredentials, email: str) -> float:
    """Refuse from now on every token of `email` issued before this moment (a leaked kit)."""
    when = time.time()
    creds.revoke_before(email, when)
    time.sleep(1.01)  # the new token's iat (whole seconds) must be later than the cut
    return when


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a compose env file (comments and blank lines skipped)."""
    pairs = (line.split("=", 1) for line in path.read_text().splitlines()
             if "=" in line and not line.lstrip().startswith("#"))
    return {key.strip(): value.strip() for key, value in pairs}


def issue_party_kits(creds: ServerCredentials, parties: Path, kits: Path, server_url: str, ca_pem: str,
                     owner_uid: int | None = 1000) -> list[str]:
    """The demo's kits: for every folder `kits/NAME` (a volume only party NAME mounts), a kit
    for the SYFTBOX_EMAIL in `parties/NAME.env`. Kept when still valid. Returns what was done."""
    done = []
    for folder in sorted(p for p in kits.iterdir() if p.is_dir()):
        env_file = parties / f"{folder.name}.env"
        try:
            email = read_env_file(env_file).get("SYFTBOX_EMAIL", "")
        except OSError as e:
            raise KitError(f"no settings for party {folder.name}: {env_file}: {e.strerror}") from None
        if not email:
            raise KitError(f"{env_file} sets no SYFTBOX_EMAIL")
        kit_file = folder / "kit.json"
        if still_valid(creds, kit_file, email, server_url, ca_pem):
            done.append(f"{folder.name}: kept the kit for {email}")
            continue
        kit = issue(creds, email, server_url, ca_pem)
        atomic_write(kit_file, kit.to_json())
        kit_file.chmod(0o600)
        if owner_uid is not None and os.geteuid() == 0:
            os.chown(kit_file, owner_uid, owner_uid)
            os.chown(folder, owner_uid, owner_uid)
        done.append(f"{folder.name}: issued a kit for {email}")
    return done
