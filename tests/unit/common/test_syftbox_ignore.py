"""What an owner's SyftBox client keeps off its sync: other parties' files but their keys, and
its private folder and the code of its jobs (the rules of `_.syftignore`, gitwildmatch as the
legacy client reads them); and what a party does while its client starts."""

from __future__ import annotations

from pathlib import Path

import pathspec

from federation.common.settings import Party
from federation.common.syftbox import SyncClient
from federation.owner.service import NEVER_SYNCED

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
    for folder, why in NEVER_SYNCED.items():
        sync.keep_off_the_wire(folder, why)
    assert sync.ignore_file.read_text().count("/*/**") == 1
    synced = [f"{OWNER}/app_data/RDS/store/job/j.yaml", f"{OWNER}/public/datasets/pima/mock.csv",
              f"{OWNER}/app_data/flwr/app/rpc/messages/ds@openmined.org/1.request",
              "ds@openmined.org/public/did.json", "do2@openmined.org/public/did.json"]
    kept_off = [f"{OWNER}/private/data.csv",  # its own rules, added after
                f"{OWNER}/app_data/RDS/user_files/ds@openmined.org/UserCode/c1/main.py",
                f"{OWNER}/app_data/x/__pycache__/m.pyc",  # the client's own rules still apply
                "do2@openmined.org/public/datasets/pima/mock.csv", "do2@openmined.org/app_data/RDS/store/job/j.yaml",
                "ds@openmined.org/app_data/RDS/store/x.yaml", "do2@openmined.org/syftperm.yaml"]
    assert [p for p in synced if ignored(sync, p)] == []
    assert [p for p in kept_off if not ignored(sync, p)] == []


def test_start_runs_the_meanwhile_work_once_while_the_client_process_starts(tmp_path, monkeypatch):
    """The DS imports its libraries while its client starts (the two start-ups overlap), also
    when a client already runs in the container."""
    from federation.common import syftbox

    events = []
    sync = owner_client(tmp_path)
    def join(self, timeout=120):
        events.append("join")
        self.server_url = "https://syftbox:5001"

    monkeypatch.setattr(syftbox.SyncClient, "join", join)
    monkeypatch.setattr(syftbox.subprocess, "Popen", lambda *a, **k: events.append("launch") or FakeProcess())
    monkeypatch.setattr(syftbox.SyncClient, "_ready", lambda self: events.append("ready?") or True)
    monkeypatch.setattr(syftbox.SyncClient, "running_here", lambda self: False)
    sync.party.state_dir.mkdir(parents=True, exist_ok=True)
    sync.start(meanwhile=lambda: events.append("meanwhile"))
    assert events == ["join", "launch", "meanwhile", "ready?"]

    events.clear()
    monkeypatch.setattr(syftbox.SyncClient, "running_here", lambda self: True)
    sync.start(meanwhile=lambda: events.append("meanwhile"))
    assert events == ["meanwhile"] and sync.reused


class FakeProcess:
    returncode = None

    def poll(self):
        return None
