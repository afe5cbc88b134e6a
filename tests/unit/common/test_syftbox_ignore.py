"""What an owner's SyftBox client keeps off its sync: other parties' files but their keys, and
its private folder (the rules of `_.syftignore`, gitwildmatch as the legacy client reads them)."""

from __future__ import annotations

from pathlib import Path

import pathspec

from federation.common.settings import Party
from federation.common.syftbox import SyncClient

OWNER = "do1@openmined.org"
# As the legacy client writes it at its first start (a part of syftbox 0.4.0's DEFAULT_IGNORE).
CLIENT_DEFAULTS = "# Syft\n/_.syftignore\n/.syft*\n\n# Python\n.ipynb_checkpoints/\n__pycache__/\n*.py[cod]\n"


def owner_client(tmp_path: Path) -> SyncClient:
    sync = SyncClient(Party(OWNER, "https://syftbox:5001", tmp_path))
    sync.datasites.mkdir(parents=True)
    sync.ignore_file.write_text(CLIENT_DEFAULTS)
    return sync


def ignored(sync: SyncClient, path: str) -> bool:
    return pathspec.PathSpec.from_lines("gitwildmatch", sync.ignore_file.read_text().splitlines()).match_file(path)


def test_an_owner_syncs_its_own_datasite_and_only_the_keys_of_the_others(tmp_path):
    sync = owner_client(tmp_path)
    sync.sync_only_own_and_keys()
    sync.sync_only_own_and_keys()  # a restarted owner: the rules once
    sync.keep_off_the_wire("private")
    assert sync.ignore_file.read_text().count("/*/**") == 1
    synced = [f"{OWNER}/app_data/RDS/store/job/j.yaml", f"{OWNER}/public/datasets/pima/mock.csv",
              f"{OWNER}/app_data/flwr/app/rpc/messages/ds@openmined.org/1.request",
              "ds@openmined.org/public/did.json", "do2@openmined.org/public/did.json"]
    kept_off = [f"{OWNER}/private/data.csv",  # its own rule, added after
                f"{OWNER}/app_data/x/__pycache__/m.pyc",  # the client's own rules still apply
                "do2@openmined.org/public/datasets/pima/mock.csv", "do2@openmined.org/app_data/RDS/store/job/j.yaml",
                "ds@openmined.org/app_data/RDS/store/x.yaml", "do2@openmined.org/syftperm.yaml"]
    assert [p for p in synced if ignored(sync, p)] == []
    assert [p for p in kept_off if not ignored(sync, p)] == []
