"""The SyftBox client as the image runs it (syftbox 0.4.0 in its own venv, through
federation/common/syftbox_launcher.py): a new file rewritten between its hash and its upload.

syft-rds creates a job record and rewrites it twice within a second. Unpatched, the client
recorded the hash it took before the upload as what the server holds, so the record's next
change looked like a change on both sides and the server's (older) copy overwrote the owner's.
Run with the image's own interpreter and packages; nothing of the stack is used.
"""

from __future__ import annotations

import json
import subprocess

CHECK = r"""
import glob, hashlib, importlib.util, json, sys, tempfile
from pathlib import Path
from types import SimpleNamespace

from syftbox.client.plugins.sync import sync_action
from syftbox.lib.hash import hash_file

launcher_path = glob.glob("/opt/app/lib/python3*/site-packages/federation/common/syftbox_launcher.py")[0]
spec = importlib.util.spec_from_file_location("launcher", launcher_path)
launcher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launcher)


def next_action_after_a_racing_create() -> str:
    datasites = Path(tempfile.mkdtemp()) / "datasites"
    record = datasites / "do1@openmined.org" / "app_data" / "RDS" / "store" / "job" / "j.yaml"
    record.parent.mkdir(parents=True)
    server = {}
    sync = SimpleNamespace(create=lambda path, data: server.update({path: data}))
    context = SimpleNamespace(workspace=SimpleNamespace(datasites=datasites), client=SimpleNamespace(sync=sync))

    record.write_text("status: approved\n")
    hashed = hash_file(record, root_dir=datasites)  # the client's scan
    record.write_text("status: job_in_progress\n")  # the owner, before the upload
    action = sync_action.determine_sync_action(current_local_metadata=hashed, previous_local_metadata=None,
                                               current_remote_metadata=None)
    assert isinstance(action, sync_action.CreateRemoteAction), action
    action.execute(context)
    on_server = server[action.path]
    remote = hashed.model_copy(update={"hash": hashlib.sha256(on_server).hexdigest()})
    record.write_text("status: job_run_finished\n")  # the owner's next status
    after = sync_action.determine_sync_action(current_local_metadata=hash_file(record, root_dir=datasites),
                                              previous_local_metadata=action.result_local_state,
                                              current_remote_metadata=remote)
    return after.action_type.name


unpatched = next_action_after_a_racing_create()
launcher._patch_create_remote()
patched = next_action_after_a_racing_create()
print(json.dumps({"unpatched": unpatched, "patched": patched}))
"""


def test_a_file_rewritten_while_it_is_uploaded_keeps_the_owners_newest_version(stack):
    run = subprocess.run(["docker", "run", "--rm", "-i", "--entrypoint", "/opt/syftbox/bin/python", "federation:latest",
                          "-"], input=CHECK, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    # syftbox 0.4.0 as shipped: the server's older copy overwrites the owner's newest status
    assert result["unpatched"] == "MODIFY_LOCAL", result
    # as the launcher runs it: the newest status goes up
    assert result["patched"] == "MODIFY_REMOTE", result
