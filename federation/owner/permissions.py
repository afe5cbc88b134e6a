"""Who may touch what in an owner's datasite, in the permission files the sync server reads.

The legacy SyftBox server understands only `syftperm.yaml`; syft-rds and
syft-event write `syft.pub.yaml`, which it ignores. The rules below grant a guest
exactly what the flow needs: read the RDS store and public files, create and
write RPC requests (the DS also deletes its own request/response files after
reading), and nothing in the job store. An owner may always write its own
datasite, so none of this limits the owner.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from federation.common.files import atomic_write

READ = ["read"]
RPC = ["read", "create", "write"]

RDS_RULES = [
    ("app.yaml", READ),
    ("store/**", READ),
    ("public_files/**", READ),
    ("user_files/{useremail}/**", READ),
    ("rpc/**", RPC),
]
FLWR_RULES = [("*/rpc/**", RPC)]


def _write(folder: Path, rules: list[tuple[str, list[str]]]) -> None:
    doc = [{"path": path, "user": "*", "permissions": perms} for path, perms in rules]
    atomic_write(folder / "syftperm.yaml", yaml.safe_dump(doc, sort_keys=False))


def grant_guest_access(datasite: Path) -> None:
    """Write the owner's rules; call after the RDS server started (it rewrites its file)."""
    _write(datasite / "app_data" / "RDS", RDS_RULES)
    _write(datasite / "app_data" / "flwr", FLWR_RULES)
