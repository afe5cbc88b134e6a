"""Who may touch what in an owner's datasite, in the permission files the sync server reads.

The legacy SyftBox server understands only `syftperm.yaml`; syft-rds and
syft-event write `syft.pub.yaml`, which it ignores. The rules below grant a guest
exactly what the flow needs: read the RDS store and public files, and create and
write RPC requests only in the folder syft-rpc names for the guest itself
(`<endpoint>/<guest's email>/`; the DS also deletes its own request/response
files after reading). A guest reads no other party's requests or responses and
writes nowhere else. An owner may always write its own datasite, so none of this
limits the owner.

What a guest still sees (syft-rds 0.4.0 keeps every record in `store/<Type>/<uid>.json`,
with no per-user path): every record of the RDS store, the job records of other
guests included (names, descriptions, statuses; not their code or results).
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
    ("rpc/rpc.schema.json", READ),
    # rpc/<endpoint>/<sender>/<id>.request; endpoints are one or two levels deep (health,
    # job/create). The legacy server allows no `**` before {useremail}: each depth spelled out.
    ("rpc/*/{useremail}/*", RPC),
    ("rpc/*/*/{useremail}/*", RPC),
]
# flwr/<app>/rpc/messages/<sender>/<id>.request
FLWR_RULES = [("*/rpc/rpc.schema.json", READ), ("*/rpc/*/{useremail}/*", RPC)]


def _write(folder: Path, rules: list[tuple[str, list[str]]]) -> None:
    doc = [{"path": path, "user": "*", "permissions": perms} for path, perms in rules]
    atomic_write(folder / "syftperm.yaml", yaml.safe_dump(doc, sort_keys=False))


def grant_guest_access(datasite: Path) -> None:
    """Write the owner's rules; call after the RDS server started (it rewrites its file)."""
    _write(datasite / "app_data" / "RDS", RDS_RULES)
    _write(datasite / "app_data" / "flwr", FLWR_RULES)
