"""The SyftBox client as the image runs it (syftbox 0.4.0 in its own venv, through
federation/common/syftbox_launcher.py): a new file rewritten between its hash and its upload,
the saved sync state of files deleted on both sides, the nudge that runs a pass at once, and the
server's change token that wakes a waiting client, the requests of a pass, and its path filters.

syft-rds creates a job record and rewrites it twice within a second. Unpatched, the client
recorded the hash it took before the upload as what the server holds, so the record's next
change looked like a change on both sides and the server's (older) copy overwrote the owner's.
Run with the image's own interpreter and packages; nothing of the stack is used.
"""

from __future__ import annotations

import json
import subprocess

# Both checks start so: the image's launcher module loaded (not run), syftbox's hashing at hand.
LAUNCHER = r"""
import glob, hashlib, importlib.util, json, sys, tempfile
from pathlib import Path
from types import SimpleNamespace

from syftbox.lib.hash import hash_file

launcher_path = glob.glob("/opt/app/lib/python3*/site-packages/federation/common/syftbox_launcher.py")[0]
spec = importlib.util.spec_from_file_location("launcher", launcher_path)
launcher = importlib.util.module_from_spec(spec)
spec.loader.exec_module(launcher)
"""

CHECK = LAUNCHER + r"""
from syftbox.client.plugins.sync import sync_action


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


TRIM = LAUNCHER + r"""
from syftbox.client.plugins.sync.local_state import LocalState
from syftbox.client.plugins.sync.types import SyncActionType


def saved_statuses_after_a_run() -> tuple[list[str], Path]:
    # A job's file synced, then deleted by its owner; a public file stays. The statuses in
    # the saved state, as the client loads it again, and that state's file.
    root = Path(tempfile.mkdtemp())
    datasites = root / "datasites"
    gone = datasites / "do1@openmined.org" / "app_data" / "RDS" / "store" / "job" / "j.yaml"
    kept = datasites / "do1@openmined.org" / "public" / "did.json"
    for path in (gone, kept):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    state = LocalState(path=root / "local_syncstate.json")
    state.save()
    for path in (gone, kept):
        state.insert_synced_file(path.relative_to(datasites), hash_file(path, root_dir=datasites),
                                 SyncActionType.CREATE_REMOTE)
    gone.unlink()
    state.insert_synced_file(gone.relative_to(datasites), None, SyncActionType.DELETE_REMOTE)
    again = LocalState(path=state.path)
    again.load()
    return sorted(map(str, again.status_info)), state.path


def ignored_statuses_after_two_passes() -> list[str]:
    # do1's job code is ignored (kept off the wire), then moved out with the job's history; do2's
    # ignored file stays. The statuses of ignored files after the next pass, as saved.
    from syftbox.client.plugins.sync.producer import SyncProducer

    root = Path(tempfile.mkdtemp())
    state = LocalState(path=root / "local_syncstate.json")
    state.save()
    code = Path("do1@openmined.org/app_data/RDS/user_files/ds@openmined.org/j/main.py")
    other = Path("do2@openmined.org/private/p.csv")
    maker = SyncProducer.__new__(SyncProducer)
    maker.local_state = state
    datasite = lambda email, files: SimpleNamespace(email=email, get_syftignore_matches=lambda: files)
    maker.add_ignored_to_local_state(datasite("do1@openmined.org", [code]))
    maker.add_ignored_to_local_state(datasite("do2@openmined.org", [other]))
    maker.add_ignored_to_local_state(datasite("do1@openmined.org", []))  # the code has moved out
    again = LocalState(path=state.path)
    again.load()
    return sorted(str(p) for p, info in again.status_info.items() if info.status.value == "ignored")


unpatched, legacy_file = saved_statuses_after_a_run()
ignored_unpatched = ignored_statuses_after_two_passes()
launcher._patch_forget_deleted()
patched, _ = saved_statuses_after_a_run()
legacy = LocalState(path=legacy_file)  # a state an unpatched client saved, loaded by a patched one
legacy.load()
print(json.dumps({"unpatched": unpatched, "patched": patched, "legacy": sorted(map(str, legacy.status_info)),
                  "ignored_unpatched": ignored_unpatched, "ignored": ignored_statuses_after_two_passes()}))
"""


# A sync loop whose pass only counts, talking to `server` (a TestClient): no files.
LOOP = LAUNCHER + r"""
import threading, time

from fastapi import FastAPI
from fastapi.testclient import TestClient
from syftbox.client.plugins.sync import manager
from syftbox.client.routers import sync_router

NO_CHANGES = TestClient(FastAPI())  # a server without /sync/changes: 404


def api(sync_manager) -> TestClient:
    app = FastAPI()
    app.include_router(sync_router.router, prefix="/sync")
    app.dependency_overrides[sync_router.get_sync_manager] = lambda: sync_manager
    return TestClient(app)


def a_loop(seconds: float, server=NO_CHANGES):
    sync = manager.SyncManager.__new__(manager.SyncManager)
    sync.sync_interval, sync.is_stop_requested, sync.thread = seconds, False, None
    sync.last_health_check, sync.health_check_interval = time.time(), 300.0
    sync.context = SimpleNamespace(client=SimpleNamespace(conn=server))
    sync.passes = []
    sync.run_single_thread = lambda: sync.passes.append(time.monotonic())
    return sync


def wait(check, timeout):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()
"""

WAKE = LOOP + r"""
before = api(a_loop(30)).post("/sync/now").status_code  # syftbox 0.4.0: no such route
launcher._patch_sync_now()
launcher._patch_sync_now()  # once
sync = a_loop(30)
early = api(sync).post("/sync/now").status_code  # before the loop runs: nothing to wake, no error
sync.start()
wait(lambda: len(sync.passes) == 1, 5)
asked = time.monotonic()
answer = api(sync).post("/sync/now")
woke = wait(lambda: len(sync.passes) == 2, 5)
after = sync.passes[1] - asked if woke else None
time.sleep(0.3)
sync.stop()
print(json.dumps({"before": before, "early": early, "status": answer.status_code, "after": after,
                  "passes": len(sync.passes), "routes": sum(r.path == "/now" for r in sync_router.router.routes)}))
"""

# The guard (the sync server's front) with a stand-in for the legacy server's write endpoint.
CHANGES = LOOP + r"""
import jwt

guard_path = glob.glob("/opt/app/lib/python3*/site-packages/federation/sync_server/guard.py")[0]
spec = importlib.util.spec_from_file_location("guard", guard_path)
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)

from fastapi import Request

legacy = FastAPI()


@legacy.post("/sync/create")
async def create(request: Request):
    await request.body()  # as the legacy server reads it: through the guard, which reads the path
    return {}


SECRET = "s3cret"
tokens = {e: jwt.encode({"type": "access_token", "email": e, "iat": time.time()}, SECRET)
          for e in ("do1@openmined.org", "do2@openmined.org")}
front = guard.Guard(legacy, lambda t: jwt.decode(t, SECRET, algorithms=["HS256"]), guard.Revocations("/nowhere"),
                    readers_of=lambda path, parties: parties)  # everyone may read everything
launcher._patch_sync_now()
# do1's client syncs its own datasite only (its rules, as an owner's ignore file holds them)
datasites = Path(tempfile.mkdtemp()) / "datasites"
datasites.mkdir()
(datasites / "_.syftignore").write_text("/*/**\n!/do1@openmined.org/**\n")


def upload(path):  # another party's upload, as its client sends it
    return server.post("/sync/create", files={"file": (path, b"x")},
                       headers={"Authorization": f"Bearer {tokens['do2@openmined.org']}"}).status_code


with TestClient(front, headers={"Authorization": f"Bearer {tokens['do1@openmined.org']}"}) as server:
    sync = a_loop(30, server)
    sync.context.workspace = SimpleNamespace(datasites=datasites)
    sync.start()
    # its first pass, and one more for the watcher's first answer unless that came first
    wait(lambda: len(sync.passes) >= 1, 5)
    time.sleep(0.5)
    quiet = len(sync.passes)  # a 30 s loop, nothing written: no pass
    ignored = upload("do2@openmined.org/app_data/x.yaml")  # a file do1's client does not sync
    time.sleep(0.5)
    still = len(sync.passes)
    asked = time.monotonic()
    written = upload("do1@openmined.org/app_data/rpc/1.request")  # one it syncs
    woke = wait(lambda: len(sync.passes) == quiet + 1, 5)
    after = sync.passes[-1] - asked if woke else None
    watching = sync._federation_watcher.is_alive()
    sync.stop()

old_server = a_loop(30)  # a server without the route: the watcher stops, the loop goes on
old_server.start()
stopped = wait(lambda: not old_server._federation_watcher.is_alive(), 5)
old_server.wake()
polled = wait(lambda: len(old_server.passes) == 2, 5)
old_server.stop()
print(json.dumps({"quiet": quiet, "written": written, "after": after, "watching": watching,
                  "stopped": stopped, "polled": polled, "ignored": ignored, "still": still - quiet}))
"""

# The guard's rule for who learns of a write: the legacy server's own rule for reading a file.
READERS = r"""
import glob, importlib.util, json, os, tempfile
from pathlib import Path

os.environ.update({"SYFTBOX_DATA_FOLDER": tempfile.mkdtemp(), "SYFTBOX_AUTH_ENABLED": "true",
                   "SYFTBOX_JWT_SECRET": "s3cret", "SYFTBOX_SENDGRID_SECRET": "unused"})
guard_path = glob.glob("/opt/app/lib/python3*/site-packages/federation/sync_server/guard.py")[0]
spec = importlib.util.spec_from_file_location("guard", guard_path)
guard = importlib.util.module_from_spec(spec)
spec.loader.exec_module(guard)
from syftbox.server.db.file_store import FileStore
from syftbox.server.settings import ServerSettings

A, B, DS = "do1@openmined.org", "do2@openmined.org", "ds@openmined.org"
settings = ServerSettings()
rules = "- path: 'rpc/*/{useremail}/*'\n  user: '*'\n  permissions: [read, create, write]\n"
FileStore(settings).put(Path(f"{A}/app_data/flwr/syftperm.yaml"), rules.encode(), user=A, skip_permission_check=True)
readers_of = guard.reading_rule(settings.file_db_path)
parties = [A, B, DS]
print(json.dumps({
    "request": readers_of(f"{A}/app_data/flwr/rpc/messages/{DS}/1.request", parties),
    "private": readers_of(f"{A}/private/x.csv", parties),
    "other": readers_of(f"{A}/app_data/flwr/rpc/messages/{B}/2.request", parties),
}))
"""


# Two clients' sync passes against the legacy server itself (in-process), each request counted.
PASSES = LAUNCHER + r"""
import collections, contextlib, os
from fastapi.testclient import TestClient

root = Path(tempfile.mkdtemp())
os.environ.update({"SYFTBOX_DATA_FOLDER": str(root / "server"), "SYFTBOX_AUTH_ENABLED": "true",
                   "SYFTBOX_JWT_SECRET": "s3cret", "SYFTBOX_SENDGRID_SECRET": "unused"})
from syftbox.client.plugins.sync.manager import SyncManager
from syftbox.client.server_client import SyftBoxClient
from syftbox.lib.workspace import SyftWorkspace
from syftbox.server.server import create_server
from syftbox.server.settings import ServerSettings
from syftbox.server.users.auth import generate_access_token

OWNER, DS = "do1@openmined.org", "ds@openmined.org"
READ_ALL = "- path: '**'\n  user: '*'\n  permissions: [read]\n"


def scenario(name: str) -> dict:
    settings = ServerSettings(data_folder=root / name / "server")
    server = create_server(settings)
    with contextlib.ExitStack() as connections:
        asked = collections.Counter()

        def party(email: str) -> SyncManager:
            workspace = SyftWorkspace(root / name / email)
            workspace.mkdirs()
            conn = connections.enter_context(TestClient(server, headers={
                "Authorization": f"Bearer {generate_access_token(settings, email)}"}))  # entered: the server's state
            conn.event_hooks = {"request": [lambda r: asked.update([(email, r.url.path)])], "response": []}
            sync = SyncManager(SimpleNamespace(workspace=workspace, email=email, client=SyftBoxClient(conn)))
            sync.local_state.save()
            return sync

        def one_pass(sync: SyncManager) -> dict:
            asked.clear()
            sync.run_single_thread()
            return {path: n for (_, path), n in asked.items() if path != "/sync/datasite_states"}

        owner, ds = party(OWNER), party(DS)
        public = owner.context.workspace.datasites / OWNER / "public"
        public.mkdir(parents=True)
        (public.parent / "syftperm.yaml").write_text(f"- path: '**'\n  user: {OWNER}\n  permissions: [admin]\n")
        (public / "syftperm.yaml").write_text(READ_ALL)
        one_pass(owner), one_pass(ds)  # each party's first pass
        for i in range(5):
            (public / f"{i}.request").write_text(f"message {i}" * (i + 1))
        up = one_pass(owner)
        # a file the DS wrote itself where the owner's file of the same name comes down: its own stays
        clash = ds.context.workspace.datasites / OWNER / "public" / "4.request"
        clash.parent.mkdir(parents=True, exist_ok=True)
        clash.write_text("the DS's own")
        down = one_pass(ds)
        again = one_pass(ds)
        got = {p.name: p.read_text() for p in (ds.context.workspace.datasites / OWNER / "public").iterdir()}
        return {"up": up, "down": down, "again": again, "got": got,
                "states": sorted(str(p) for p in ds.local_state.states)}


unpatched = scenario("unpatched")
launcher._patch_create_remote()
launcher._patch_forget_deleted()
launcher._patch_batched_pass()
launcher._patch_batched_pass()  # once
patched = scenario("patched")
print(json.dumps({"unpatched": unpatched, "patched": patched}))
"""


# The legacy client's path filters, as shipped and as the launcher runs them, on one tree.
FILTERS = LAUNCHER + r"""
import os
from syftbox.lib import ignore

datasites = Path(tempfile.mkdtemp()) / "datasites"
files = ["do1@openmined.org/public/did.json", "do1@openmined.org/app_data/a/1.request",
         "do1@openmined.org/.hidden/x", "do1@openmined.org/app_data/.y", "do1@openmined.org/private/p.csv",
         "do1@openmined.org/app_data/a/m.request.syftrejected", "do2@openmined.org/public/datasets/d/m.csv",
         "do2@openmined.org/public/did.json", "do1@openmined.org/app_data/a/__pycache__/c.pyc"]
for f in files:
    (datasites / f).parent.mkdir(parents=True, exist_ok=True)
    (datasites / f).write_text("x")
os.symlink(datasites / "do1@openmined.org/app_data/a", datasites / "do1@openmined.org/linked")
os.symlink(datasites / "do1@openmined.org/public/did.json", datasites / "do1@openmined.org/public/alias.json")
paths = [Path(f) for f in files] + [Path("do1@openmined.org/linked/1.request"), Path("do1@openmined.org/public/alias.json")]
ignore_file = datasites / "_.syftignore"
ignore_file.write_text("/*/**\n!/do1@openmined.org/**\n!/*/public/did.json\n/do1@openmined.org/private/\n__pycache__/\n")


def everything():
    out = {}
    for hidden in (True, False):
        for links in (True, False):
            for rejected in (True, False):
                out[f"filter {hidden} {links} {rejected}"] = sorted(map(str, ignore.filter_ignored_paths(
                    datasites, paths, ignore_hidden_files=hidden, ignore_symlinks=links, ignore_rejected_files=rejected)))
    for links in (True, False):
        out[f"matches {links}"] = sorted(map(str, ignore.get_syftignore_matches(datasites, paths, include_symlinks=links)))
    return out


shipped = everything()
launcher._patch_cheaper_filters()
launcher._patch_cheaper_filters()  # once
cheaper = everything()
with ignore_file.open("a") as f:  # an owner adds a rule: seen at the next call
    f.write("/do1@openmined.org/app_data/a/\n")
appended = ignore.filter_ignored_paths(datasites, paths)
replacement = datasites / "rules.tmp"  # rewritten whole (a rename), same size as before
replacement.write_text(ignore_file.read_text().replace("/app_data/a/", "/app_data/b/"))
os.replace(replacement, ignore_file)
renamed = ignore.filter_ignored_paths(datasites, paths)
old = ignore_file.stat()
with ignore_file.open("r+") as f:  # rewritten in place at once, same size, same inode ...
    f.write(f.read().replace("/app_data/b/", "/app_data/a/"))
os.utime(ignore_file, ns=(old.st_atime_ns, old.st_mtime_ns))  # ... within the same mtime tick
in_place = ignore.filter_ignored_paths(datasites, paths)
print(json.dumps({"shipped": shipped, "cheaper": cheaper, "appended": sorted(map(str, appended)),
                  "renamed": sorted(map(str, renamed)), "in_place": sorted(map(str, in_place))}))
"""


# A pass's hashing of a datasite, as shipped and as the launcher runs it.
HASHES = LAUNCHER + r"""
import os, time
from syftbox.lib import hash as hashing

datasites = Path(tempfile.mkdtemp()) / "datasites"
site = datasites / "do1@openmined.org"
for name in ("public/did.json", "app_data/RDS/store/job/j.yaml", "app_data/flwr/a/m.request", "private/p.csv"):
    (site / name).parent.mkdir(parents=True, exist_ok=True)
    (site / name).write_text(f"content of {name}")
(datasites / "_.syftignore").write_text("/do1@openmined.org/private/\n")


def listing(metadata):
    return sorted((str(m.path), m.hash, m.signature, m.file_size, m.last_modified.isoformat()) for m in metadata)


shipped = listing(hashing.hash_dir(site, root_dir=datasites))
launcher._patch_cheaper_filters()
calls = []
original_hash_file = hashing.hash_file
hashing.hash_file = lambda path, root_dir=None: calls.append(str(path)) or original_hash_file(path, root_dir)
fresh = listing(hashing.hash_dir(site, root_dir=datasites))  # all written just now: hashed, not kept
fresh_calls = len(calls)
time.sleep(2.2)  # settled
hashing.hash_dir(site, root_dir=datasites)
calls.clear()
settled = listing(hashing.hash_dir(site, root_dir=datasites))
settled_calls = len(calls)
record = site / "app_data/RDS/store/job/j.yaml"
old = record.stat()
with record.open("r+") as f:  # the same size, in place, and the same mtime: only the ctime moves
    f.write(f.read().upper())
os.utime(record, ns=(old.st_atime_ns, old.st_mtime_ns))
(site / "app_data/flwr/a/m.request").unlink()
(site / "public/new.json").write_text("{}")
calls.clear()
changed = listing(hashing.hash_dir(site, root_dir=datasites))
print(json.dumps({"shipped": shipped, "fresh": fresh, "fresh_calls": fresh_calls, "settled": settled,
                  "settled_calls": settled_calls, "changed": changed, "changed_calls": sorted(calls),
                  "expected": listing(hashing.hash_files([datasites / p for p in (
                      "do1@openmined.org/app_data/RDS/store/job/j.yaml", "do1@openmined.org/public/did.json",
                      "do1@openmined.org/public/new.json")], datasites))}))
"""


def in_syftbox_venv(script: str) -> dict:
    """`script` run by the image's syftbox interpreter; the JSON its last line printed."""
    run = subprocess.run(["docker", "run", "--rm", "-i", "--entrypoint", "/opt/syftbox/bin/python", "federation:latest",
                          "-"], input=script, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_a_file_rewritten_while_it_is_uploaded_keeps_the_owners_newest_version(stack):
    result = in_syftbox_venv(CHECK)
    # syftbox 0.4.0 as shipped: the server's older copy overwrites the owner's newest status
    assert result["unpatched"] == "MODIFY_LOCAL", result
    # as the launcher runs it: the newest status goes up
    assert result["patched"] == "MODIFY_REMOTE", result


def test_a_file_deleted_on_both_sides_leaves_no_status_in_the_saved_state(stack):
    result = in_syftbox_venv(TRIM)
    job, public = "do1@openmined.org/app_data/RDS/store/job/j.yaml", "do1@openmined.org/public/did.json"
    # syftbox 0.4.0 as shipped: every file it ever synced keeps a status, written at every save
    assert result["unpatched"] == [job, public], result
    # as the launcher runs it: only the files that are still there
    assert result["patched"] == [public], result
    # and a state an older client saved loses its deleted files' statuses when loaded
    assert result["legacy"] == [public], result
    # an ignored file that is gone (a job's code, moved out with its history) keeps no status
    code, other = ("do1@openmined.org/app_data/RDS/user_files/ds@openmined.org/j/main.py",
                   "do2@openmined.org/private/p.csv")
    assert result["ignored_unpatched"] == [code, other] and result["ignored"] == [other], result


def test_a_write_on_the_server_wakes_a_waiting_client_at_once(stack):
    result = in_syftbox_venv(CHANGES)
    assert result["written"] == 200 and result["quiet"] in (1, 2) and result["watching"], result
    # a 30 s loop: another party's write brought the next pass within a fraction of a second
    assert result["after"] is not None and result["after"] < 0.5, result
    # a file its ignore rules leave out (the rules go with the request) did not wake it
    assert result["ignored"] == 200 and result["still"] == 0, result
    assert result["stopped"] and result["polled"], result  # an older server: polling only, no error


def test_a_write_concerns_those_the_legacy_server_lets_read_it(stack):
    result = in_syftbox_venv(READERS)
    a, b, ds = "do1@openmined.org", "do2@openmined.org", "ds@openmined.org"
    assert result == {"request": [a, ds], "private": [a], "other": [a, b]}, result


def test_a_nudge_on_the_local_api_runs_the_next_sync_pass_at_once(stack):
    result = in_syftbox_venv(WAKE)
    assert result["before"] == 404, result  # syftbox 0.4.0 as shipped has no such route
    assert result["early"] == 200 and result["status"] == 200 and result["routes"] == 1, result
    # a 30 s loop: the pass the nudge asked for came within a fraction of a second, and only it
    assert result["after"] is not None and result["after"] < 0.5 and result["passes"] == 2, result


def test_a_pass_downloads_new_files_in_one_request_and_uploads_new_files_without_asking(stack):
    result = in_syftbox_venv(PASSES)
    before, after = result["unpatched"], result["patched"]
    # syftbox 0.4.0 as shipped, after its first pass: two requests a new file, either way
    assert before["up"] == {"/sync/get_metadata": 5, "/sync/create": 5}, before
    assert before["down"] == {"/sync/get_metadata": 5, "/sync/download": 4, "/sync/get_diff": 1}, before
    # as the launcher runs it: one request a new file up, one for every new file down; the file
    # the DS had written itself under the same name is not overwritten by the batch, it takes
    # the per-file path (its metadata, a diff) and ends as it did before
    assert after["up"] == {"/sync/create": 5}, after
    assert after["down"] == {"/sync/download_bulk": 1, "/sync/get_metadata": 1, "/sync/get_diff": 1}, after
    assert before["again"] == after["again"] == {}, result  # in sync: the next pass only lists
    assert after["got"] == before["got"] and after["states"] == before["states"], result
    assert after["got"]["0.request"] == "message 0" and len(after["states"]) == 6, after


def test_the_cheaper_path_filters_keep_exactly_what_the_shipped_ones_keep(stack):
    result = in_syftbox_venv(FILTERS)
    assert result["cheaper"] == result["shipped"], result
    kept = result["shipped"]["filter True True True"]
    assert kept == ["do1@openmined.org/app_data/a/1.request", "do1@openmined.org/public/did.json",
                    "do2@openmined.org/public/did.json"], kept
    # the rules are read again when the ignore file changes, appended or replaced
    assert "do1@openmined.org/app_data/a/1.request" not in result["appended"], result
    assert "do1@openmined.org/app_data/a/1.request" in result["renamed"], result
    assert "do1@openmined.org/app_data/a/1.request" not in result["in_place"], result


def test_a_pass_hashes_again_only_the_files_that_changed(stack):
    result = in_syftbox_venv(HASHES)
    # the same metadata as syftbox 0.4.0's hash_dir, the ignored private file left out
    assert result["fresh"] == result["shipped"] and len(result["shipped"]) == 3, result
    assert result["fresh_calls"] == 3  # files written in the last 2 s: hashed at every pass
    assert result["settled"] == result["shipped"] and result["settled_calls"] == 0, result
    # a same-size rewrite in place (mtime put back), a new file and a deleted one: seen at once
    assert result["changed"] == result["expected"], result
    assert [p.rsplit("/", 1)[-1] for p in result["changed_calls"]] == ["j.yaml", "new.json"], result
