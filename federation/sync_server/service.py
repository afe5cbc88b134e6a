"""`federation server`, `federation credentials` and `federation invite`: the operator's commands.

    federation server        the sync server: credentials made on its first start, then the
                             legacy server behind the guard (guard.py), HTTPS only
    federation credentials   the demo's one-shot service: the server's credentials, then a kit
                             for every party whose kit volume is mounted under /kits
    federation invite EMAIL [--server-url URL] [--expires-days N] [--replace]
                             print a kit for EMAIL (whoever holds it is that party);
                             --replace refuses every earlier kit of EMAIL from now on
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from federation.common import settings
from federation.common.kit import KitError
from federation.sync_server import credentials

log = logging.getLogger(__name__)

GUARD = Path(__file__).with_name("guard.py")
PARTIES = Path("/parties")  # NAME.env: each demo party's settings (read-only)
KITS = Path("/kits")  # NAME/: each demo party's kit volume


def _names(config: settings.ServerSettings) -> tuple[str, ...]:
    return tuple(dict.fromkeys((*credentials.DEFAULT_NAMES, *config.names)))


def tls(config: settings.ServerSettings) -> tuple[credentials.ServerCredentials, Path, Path, Path]:
    """The server's credentials (made where missing) and the (certificate, key, CA) it serves."""
    creds = credentials.ensure(config.credentials_dir, _names(config))
    cert, key, ca = config.own_tls or (creds.server_cert, creds.server_key, creds.ca_cert)
    return creds, cert, key, ca


def server() -> int:
    config = settings.ServerSettings.from_env()
    creds, cert, key, _ = tls(config)
    cmd = [str(settings.syftbox_bin() / "python"), str(GUARD), "--data-folder", str(config.data_folder),
           "--port", str(config.port), "--cert", str(cert), "--key", str(key),
           "--secret-file", str(creds.secret_file), "--revoked-file", str(creds.revoked_file)]
    os.execve(cmd[0], cmd, settings.child_environment())


def issue_kits() -> int:
    config = settings.ServerSettings.from_env()
    creds, _, _, ca = tls(config)
    if os.geteuid() == 0:  # the one-shot runs as root to write the kit volumes: the server runs as uid 1000
        for path in [config.data_folder, creds.folder, *creds.folder.iterdir()]:
            os.chown(path, 1000, 1000)
    for line in credentials.issue_party_kits(creds, PARTIES, KITS, config.public_url, ca.read_text()):
        print(f"federation credentials: {line}", file=sys.stderr)
    return 0


def invite(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="federation invite", description="print a kit for EMAIL")
    parser.add_argument("email")
    parser.add_argument("--server-url", help="how the party reaches this server (default SYNC_SERVER_URL)")
    parser.add_argument("--expires-days", type=float, help="the token's lifetime (default: until replaced)")
    parser.add_argument("--replace", action="store_true", help="refuse every earlier kit of EMAIL")
    args = parser.parse_args(argv)
    settings._email("EMAIL", args.email)
    config = settings.ServerSettings.from_env()
    server_url = args.server_url or config.public_url
    if not server_url.startswith("https://"):
        raise KitError(f"--server-url {server_url!r} is not https:// (the server serves TLS only)")
    creds, _, _, ca = tls(config)
    if args.replace:
        credentials.replace(creds, args.email)
        print(f"federation invite: every earlier kit of {args.email} is refused from now on", file=sys.stderr)
    expires = args.expires_days * 86400 if args.expires_days is not None else None
    sys.stdout.write(credentials.issue(creds, args.email, server_url, ca.read_text(), expires_in=expires).to_json())
    return 0


def main(role: str, argv: list[str]) -> int:
    logging.basicConfig(level=settings.log_level(), format="%(message)s")
    try:
        if role == "server":
            return server()
        if role == "credentials":
            return issue_kits()
        return invite(argv)
    except (settings.SettingsError, KitError) as e:
        print(f"federation {role}: {e}", file=sys.stderr)
        return 2
