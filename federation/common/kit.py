"""A party's credential for the network: its kit, and the access token inside it.

The network's operator issues each party a kit (`federation invite EMAIL`): one JSON file
with the sync server's URL, the party's email, an access token the server signed for that
email, and the CA certificate that signed the server's TLS certificate. Whoever holds a kit
*is* that party on the network. A container loads its kit at start and refuses to go on,
in one line naming the file, when the kit is missing, malformed, expired or for another email.

The tokens are the legacy SyftBox server's own (JWT, HS256, `type: access_token`); this
module makes and reads them with the standard library, so it runs in either venv.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import ssl
import time
from dataclasses import dataclass
from pathlib import Path

ACCESS_TOKEN = "access_token"  # the legacy server's token type for sync requests
KIT_FIELDS = ("server_url", "email", "access_token", "ca_pem")


class KitError(ValueError):
    """The kit cannot make this container the party it claims to be; the message says why."""


# ---------------------------------------------------------------- tokens


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signing_input: str) -> str:
    return _b64(hmac.new(secret.encode(), signing_input.encode(), hashlib.sha256).digest())


def make_token(secret: str, email: str, expires_in: float | None = None, now: float | None = None) -> str:
    """An access token for `email`, as the legacy server's PyJWT would sign it."""
    issued = int(time.time() if now is None else now)
    payload = {"email": email, "type": ACCESS_TOKEN, "iat": issued}
    if expires_in is not None:
        payload["exp"] = int(issued + expires_in)
    head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}, separators=(",", ":")).encode())
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    return f"{head}.{body}.{_sign(secret, f'{head}.{body}')}"


def token_claims(token: str) -> dict:
    """The token's payload, unverified (a party cannot check the server's signature); KitError
    when it is not a JWT at all."""
    parts = token.split(".") if isinstance(token, str) else []
    if len(parts) != 3:
        raise KitError("the access token is not a JWT (three dot-separated parts)")
    try:
        claims = json.loads(_unb64(parts[1]))
    except ValueError:
        raise KitError("the access token's payload is not base64 JSON") from None
    if not isinstance(claims, dict):
        raise KitError("the access token's payload is not a JSON object")
    return claims


def verify_token(secret: str, token: str, now: float | None = None) -> dict:
    """The claims of a token this secret signed, still valid; KitError otherwise (the operator's
    side: checking a kit it holds against the server's secret)."""
    claims = token_claims(token)
    head, body, signature = token.split(".")
    if not hmac.compare_digest(_sign(secret, f"{head}.{body}"), signature):
        raise KitError("the access token was not signed by this server's secret")
    _check_claims(claims, now)
    return claims


def _check_claims(claims: dict, now: float | None = None) -> None:
    if claims.get("type") != ACCESS_TOKEN:
        raise KitError(f"the token is of type {claims.get('type')!r}, not an access token")
    exp = claims.get("exp")
    if exp is not None and float(exp) <= (time.time() if now is None else now):
        raise KitError(f"the access token expired at {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(float(exp)))}")


# ---------------------------------------------------------------- kits


@dataclass(frozen=True)
class Kit:
    server_url: str
    email: str
    access_token: str
    ca_pem: str
    path: Path | None = None

    def to_json(self) -> str:
        return json.dumps({f: getattr(self, f) for f in KIT_FIELDS}, indent=2) + "\n"

    def ssl_context(self) -> ssl.SSLContext:
        """Verifies the server against this kit's CA only (not the system's)."""
        return ssl.create_default_context(cadata=self.ca_pem)


def parse_kit(text: str, where: str = "the kit") -> Kit:
    try:
        doc = json.loads(text)
    except ValueError as e:
        raise KitError(f"{where} is not JSON ({e})") from None
    if not isinstance(doc, dict):
        raise KitError(f"{where} is not a JSON object")
    missing = [f for f in KIT_FIELDS if not isinstance(doc.get(f), str) or not doc[f].strip()]
    if missing:
        raise KitError(f"{where} lacks {', '.join(missing)}")
    if not doc["server_url"].startswith("https://"):
        raise KitError(f"{where}: server_url {doc['server_url']!r} is not https:// (the network serves TLS only)")
    try:
        ssl.create_default_context(cadata=doc["ca_pem"])
    except (ssl.SSLError, ValueError) as e:
        raise KitError(f"{where}: ca_pem is not a PEM certificate ({e})") from None
    return Kit(**{f: doc[f].strip() for f in KIT_FIELDS})


def load_kit(path: Path, email: str, now: float | None = None) -> Kit:
    """This party's kit, checked: it exists, parses, is for `email` and its token is current."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise KitError(f"no kit at {path}: ask the network's operator for one "
                       "(`federation invite EMAIL` on the sync server)") from None
    except OSError as e:
        raise KitError(f"the kit {path} cannot be read: {e.strerror}") from None
    kit = parse_kit(text, f"the kit {path}")
    if kit.email.lower() != email.lower():
        raise KitError(f"the kit {path} is for {kit.email}, but SYFTBOX_EMAIL is {email}")
    try:
        claims = token_claims(kit.access_token)
        if str(claims.get("email", "")).lower() != email.lower():
            raise KitError(f"its access token is for {claims.get('email')!r}, not {email}")
        _check_claims(claims, now)
    except KitError as e:
        raise KitError(f"the kit {path}: {e}") from None
    return Kit(kit.server_url, kit.email, kit.access_token, kit.ca_pem, path)
