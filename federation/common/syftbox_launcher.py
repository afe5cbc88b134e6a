"""Start the legacy SyftBox client (PyPI `syftbox` 0.4.0) with a tunable sync loop, a fix, a trim.

Runs in the syftbox virtual environment, not the app one, so it imports nothing
from this project. syftbox 0.4.0 hard-codes a 1 s sync loop in
`SyncManager.__init__`; `--sync-interval SECONDS` (first, before the syftbox
arguments) overrides it: shorter loops cut end-to-end latency and cost idle CPU.

The fix (always on): the upload of a new file records what it uploaded. syftbox 0.4.0 hashes a
new file, reads it again to upload it, and records the first hash as what the server holds. A
file written in between (syft-rds creates a job record and rewrites it in place twice within a
second: approved, in progress) then looked changed on both sides at its next change, and the
server's copy won: the owner's newer status was overwritten by an older one, or by an empty
file (the upload had read the record mid-write), for good. Seen in the tests as job statuses
that went back or never reached the DS, and records that stopped the owner.

And one trim (always on): a file deleted on both sides, or an ignored file that is gone (an
owner's job code, moved out with the job's history), leaves no entry in the client's saved
state. syftbox 0.4.0 keeps a sync status for every path it ever synced and writes the whole
state (`plugins/local_syncstate.json`) again after each file it syncs, so every run's files,
long gone, made each later write larger: 975 statuses for 107 files, 363 KB, after 21 runs of
`scripts/soak`. A status left by an older client is dropped when the state is loaded.

And one addition (always on): `POST /sync/now` on the client's local API wakes its sync loop, so
a file written goes up at once instead of at the next loop (the app side asks after every
message it writes: `federation/common/sync_now.py`). Nudges during a pass make one more pass.
The loop is also woken when the server says a file changed: a thread holds the server's
`/sync/changes` open (the guard's addition, `federation/sync_server/guard.py`), so a file
another party wrote comes down at once instead of at the next loop. The request (a POST) carries
the client's ignore rules, so the server wakes it only for files it syncs. Against a server
without the route (404) the thread stops and the loop polls as before.
syftbox 0.4.0 also retried a failed pass at once, in a tight loop; it now waits an interval.

And fewer requests a pass (always on). syftbox 0.4.0 downloads the files new on the server in one
request at its first pass only, then each file with two (its metadata, then the file), and asks
for a file's metadata before uploading a new one. Now each pass downloads in one request the
files it never had that are not here (written in place, as each file was: a rename would hide
the new file from syft-event's watchers, which look for created files by name), and a file
that the pass's listing does not show goes up without asking first (the server refuses a create
over an existing file; the next pass then sees it). Changed files still take the per-file path.

And the same filters for less CPU (always on). Every pass filtered every listed path (the files of
every datasite the party may read, most of them ignored) by first resolving the datasites folder
and looking at each of the path's folders for a symlink, then by the ignore rules, parsed again
from `_.syftignore` at each call (twice a datasite a pass). Now the rules are parsed again only
when the file changes, the symlink test comes last (on the paths the rules keep) and looks at
each folder once a call (a file changed in the last 2 s is parsed again at every call, so a
same-size rewrite in place is never missed), and a path's decision is kept while the rules stay
the same. The result is the same set of paths. And each pass hashed every file of the datasites
it syncs again (a SHA-256 and an rsync signature each), the ignored ones walked and matched
too: with a history kept in the synced tree an owner's client was the process whose CPU grew
with each run. A file's metadata is now kept while its stat (mtime, ctime, size, inode) says it
is unchanged and it has been for 2 s; the rest is hashed at every pass as before.

    python syftbox_launcher.py [--sync-interval S] client --config ... --email ... [syftbox client options]
"""

import os
import sys

# Run as a script, this file's folder would come first on sys.path and its
# modules would shadow the syftbox package's own imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def _patch_sync_interval(seconds: float) -> None:
    from syftbox.client.plugins.sync import manager

    original_init = manager.SyncManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.sync_interval = seconds

    manager.SyncManager.__init__ = init


def _patch_create_remote() -> None:
    import base64
    import hashlib
    from datetime import datetime, timezone

    from py_fast_rsync import signature
    from syftbox.client.plugins.sync import sync_action
    from syftbox.client.plugins.sync.types import SyncStatus
    from syftbox.server.models.sync_models import FileMetadata

    action_cls = sync_action.CreateRemoteAction
    if getattr(action_cls.execute, "_records_upload", False):
        return

    def execute(self, context) -> None:
        data = (context.workspace.datasites / self.path).read_bytes()
        context.client.sync.create(self.path, data)
        digest = hashlib.sha256(data).hexdigest()
        if self.local_metadata is None or self.local_metadata.hash != digest:  # changed since it was hashed
            self.local_metadata = FileMetadata(path=self.path, hash=digest,
                                               signature=base64.b85encode(signature.calculate(data)),
                                               file_size=len(data), last_modified=datetime.now(timezone.utc))
        self.status = SyncStatus.SYNCED

    execute._records_upload = True
    action_cls.execute = execute


def _patch_forget_deleted() -> None:
    from syftbox.client.plugins.sync import local_state, producer
    from syftbox.client.plugins.sync.types import SyncActionType, SyncStatus

    state_cls = local_state.LocalState
    if getattr(state_cls.insert_synced_file, "_forgets_deleted", False):
        return
    insert_synced_file, load = state_cls.insert_synced_file, state_cls.load

    def add_ignored_to_local_state(self, datasite) -> None:
        """The datasite's ignored files, each with an "ignored" status, and no status for an
        ignored file that is gone (an owner's job code, moved out with the job's history);
        saved once, when something changed (syftbox 0.4.0 saved after each new one)."""
        matches = set(datasite.get_syftignore_matches())
        statuses = self.local_state.status_info
        changed = False
        for path in matches:
            info = statuses.get(path)
            if info is None or info.status != SyncStatus.IGNORED:
                self.local_state.insert_status_info(path, SyncStatus.IGNORED, save=False)
                changed = True
        for path, info in list(statuses.items()):
            if info.status == SyncStatus.IGNORED and path not in matches and path.parts[:1] == (datasite.email,):
                del statuses[path]
                changed = True
        if changed:
            self.local_state.save()

    producer.SyncProducer.add_ignored_to_local_state = add_ignored_to_local_state
    deletes = {SyncActionType.DELETE_LOCAL, SyncActionType.DELETE_REMOTE}

    def insert(self, path, state, action, save: bool = True) -> None:
        insert_synced_file(self, path, state, action, save=False)
        if state is None:  # gone on both sides: no file left to show a status for
            self.status_info.pop(path, None)
        if save:
            self.save()

    def load_trimmed(self) -> None:
        load(self)
        for path, info in list(self.status_info.items()):
            if info.action in deletes and info.status == SyncStatus.SYNCED and path not in self.states:
                del self.status_info[path]

    insert._forgets_deleted = True
    state_cls.insert_synced_file = insert
    state_cls.load = load_trimmed


def _patch_cheaper_filters() -> None:
    import functools
    import stat
    import time

    import pathspec
    from syftbox.client.plugins.sync import consumer, datasite_state
    from syftbox.lib import hash as hashing
    from syftbox.lib import ignore

    if getattr(ignore.filter_ignored_paths, "_cheaper", False):
        return
    resolved = functools.lru_cache(maxsize=16)(ignore.to_path)  # the datasites folder, resolved once
    parsed: dict = {}  # ignore file -> (what its stat said, its rules)
    decided: dict = {"rules": None, "paths": {}}  # path -> ignored, while the rules are the same object
    hashed: dict = {}  # a datasite folder -> {file: (what its stat said, its metadata)}

    def settled(st) -> bool:
        """Unchanged for 2 s: a same-size rewrite in place within one timestamp tick is past."""
        return time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > 2_000_000_000

    def is_ignored(rules, path) -> bool:
        if decided["rules"] is not rules:  # parsed again: decide again
            decided["rules"], decided["paths"] = rules, {}
        paths = decided["paths"]
        if path not in paths:
            if len(paths) > 200_000:  # paths long gone: start again
                paths.clear()
            paths[path] = rules.match_file(path)
        return paths[path]

    def hash_dir(dir, root_dir, filter_ignored=True):
        """syftbox's hash_dir, with a file's metadata kept while its stat says it is unchanged
        (only for files settled for 2 s; the rest is hashed at every pass, as before)."""
        files = hashing.collect_files(dir)
        relative_paths = [file.relative_to(root_dir) for file in files]
        if filter_ignored:
            relative_paths = filter_ignored_paths(root_dir, relative_paths)
        before, now = hashed.get(str(dir), {}), {}
        result = []
        for relative in relative_paths:
            path = root_dir / relative
            try:
                st = path.stat()
                seen = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            except OSError:
                st = seen = None
            kept = before.get(path)
            if kept is not None and seen is not None and kept[0] == seen:
                metadata = kept[1]
            else:
                metadata = hashing.hash_file(path, root_dir)
            if metadata is None:
                continue
            if seen is not None and settled(st):
                now[path] = (seen, metadata)
            result.append(metadata.model_copy())  # the caller's own, as a fresh hash was
        hashed[str(dir)] = now  # only the files there now
        return result

    def get_ignore_rules(folder):
        ignore_file = resolved(folder) / ignore.IGNORE_FILENAME
        try:
            st = ignore_file.stat()
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        # Rewritten (a new inode, a new ctime) or appended: parsed again. A file changed within the
        # last 2 s is parsed again at every pass and not kept: a same-size rewrite in place within
        # one timestamp tick would look unchanged.
        seen = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
        if ignore_file in parsed and parsed[ignore_file][0] == seen:
            return parsed[ignore_file][1]
        with open(ignore_file) as f:
            rules = pathspec.PathSpec.from_lines("gitwildmatch", f.readlines())
        if settled(st):
            parsed[ignore_file] = (seen, rules)
        else:
            parsed.pop(ignore_file, None)
        return rules

    def symlink_test(datasites_dir):
        """is_symlinked_file for many paths of one folder: each folder is looked at once."""
        base, linked = resolved(datasites_dir), {}

        def is_link(path) -> bool:
            if path not in linked:
                linked[path] = path.is_symlink()
            return linked[path]

        def symlinked(abs_path) -> bool:
            if is_link(abs_path):
                return True
            for parent in abs_path.parents:
                if parent == base:
                    break
                if is_link(parent):
                    return True
            return False

        return symlinked

    def filter_ignored_paths(datasites_dir, relative_paths, ignore_hidden_files=True, ignore_symlinks=True,
                             ignore_rejected_files=True):
        if ignore_hidden_files:
            relative_paths = ignore.filter_hidden_files(relative_paths)
        if ignore_rejected_files:
            relative_paths = ignore.filter_rejected_files(relative_paths)
        rules = get_ignore_rules(datasites_dir)
        if rules is not None:
            relative_paths = [path for path in relative_paths if not is_ignored(rules, path)]
        if ignore_symlinks:  # the costly test last, on what is left
            symlinked = symlink_test(datasites_dir)
            relative_paths = [path for path in relative_paths if not symlinked(datasites_dir / path)]
        return relative_paths

    def get_syftignore_matches(datasites_dir, relative_paths, include_symlinks=False):
        rules = get_ignore_rules(datasites_dir)
        if rules is None:
            return []
        symlinked = symlink_test(datasites_dir)
        return [path for path in relative_paths
                if (is_ignored(rules, path) or ignore._is_rejected_file(path))
                and (include_symlinks or not symlinked(datasites_dir / path))]

    filter_ignored_paths._cheaper = True
    ignore.get_ignore_rules = get_ignore_rules
    for module in (ignore, hashing, consumer, datasite_state):  # each imported the functions by name
        if hasattr(module, "filter_ignored_paths"):
            module.filter_ignored_paths = filter_ignored_paths
        if hasattr(module, "get_syftignore_matches"):
            module.get_syftignore_matches = get_syftignore_matches
    hashing.hash_dir = datasite_state.hash_dir = hash_dir


def _patch_batched_pass() -> None:
    from pathlib import Path

    from loguru import logger
    from syftbox.client.plugins.sync import consumer, manager
    from syftbox.client.plugins.sync.constants import MAX_FILE_SIZE_MB
    from syftbox.client.plugins.sync.exceptions import FatalSyncError
    from syftbox.client.plugins.sync.types import SyncActionType
    from syftbox.lib import ignore

    manager_cls, consumer_cls = manager.SyncManager, consumer.SyncConsumer
    if getattr(manager_cls.run_single_thread, "_batches_new_files", False):
        return
    asked = consumer_cls.get_current_remote_metadata
    largest = MAX_FILE_SIZE_MB * 1024 * 1024  # larger files take the per-file path, which refuses them

    def download_new(self, datasite_states) -> None:
        """Files on the server that this client never had, and that are not here, in one request."""
        datasites = self.context.workspace.datasites
        listed = {m.path: m for state in datasite_states for m in (state.remote_state or [])
                  if not self.local_state.states.get(m.path) and m.file_size <= largest
                  and not (datasites / m.path).exists()}
        new = ignore.filter_ignored_paths(datasites, list(listed))
        if not new:
            return
        try:
            received = consumer.create_local_batch(self.context, new)  # [] (logged) if the server fails
            for path in map(Path, received):
                # what the server listed, as a per-file download records it: not the file read
                # back, which a reader may have deleted already (the DS's syft-rpc does)
                state = listed.get(path) or self.consumer.get_current_local_metadata(path)
                self.local_state.insert_synced_file(path=path, state=state, action=SyncActionType.CREATE_LOCAL,
                                                    save=False)
            self.local_state.save()
        except FatalSyncError:
            raise
        except Exception as e:  # each file then takes the per-file path of this pass
            logger.error(f"Failed to download {len(new)} new files in one request, one by one instead: {e}")

    def run_single_thread(self) -> None:
        datasite_states = self.producer.get_datasite_states()
        self.consumer.listed = {m.path for state in datasite_states for m in (state.remote_state or [])}
        self.download_new(datasite_states)
        for datasite_state in datasite_states:
            self.producer.enqueue_datasite_changes(datasite_state)
        self.consumer.consume_all()
        self.sync_run_once = True

    def remote_metadata(self, path: Path):
        # A file this client never synced, not in this pass's listing: new here, so it goes up
        # at once. Were it on the server after all (made since, or the listing failed), the
        # server refuses the create and a later pass compares again; nothing is overwritten.
        # A file synced before is asked about as ever (gone from the listing = deleted there).
        if path not in getattr(self, "listed", {path}) and not self.local_state.states.get(path):
            return None
        return asked(self, path)

    run_single_thread._batches_new_files = True
    manager_cls.run_single_thread, manager_cls.download_new = run_single_thread, download_new
    consumer_cls.get_current_remote_metadata = remote_metadata


CHANGES = "/sync/changes"
CHANGES_WAIT = 20.0  # seconds the server holds a request; it answers at once when a file changes


def _patch_sync_now() -> None:
    import threading
    import time

    from fastapi import Depends
    from loguru import logger
    from syftbox.client.plugins.sync import manager
    from syftbox.client.plugins.sync.exceptions import FatalSyncError
    from syftbox.client.routers import sync_router
    from syftbox.lib import ignore

    manager_cls = manager.SyncManager
    if getattr(manager_cls.start, "_wakes_on_request", False):
        return

    def wake(self) -> None:
        event = getattr(self, "_federation_wake", None)
        if event is not None:  # not syncing yet: its first pass comes anyway
            event.set()

    def ignore_rules(self) -> str:
        """This client's ignore rules (`_.syftignore`) as text; none ("") when it has none to read."""
        try:
            return (self.context.workspace.datasites / ignore.IGNORE_FILENAME).read_text()
        except (AttributeError, OSError, UnicodeDecodeError):
            return ""

    def watch_changes(self) -> None:
        """Wake the loop whenever the server's change token moves (a long poll). The request
        carries this client's ignore rules, read again each time: the server then wakes it only
        for files it syncs."""
        seen, scoped = None, True
        # ends with the loop it wakes (stopped, or ended by a fatal sync error)
        while not self.is_stop_requested and (self.thread is None or self.thread.is_alive()):
            try:
                asked = {"params": {"since": seen or "", "wait": CHANGES_WAIT}, "timeout": CHANGES_WAIT + 15}
                if scoped:
                    response = self.context.client.conn.post(CHANGES, json={"ignore": self.ignore_rules()}, **asked)
                else:
                    response = self.context.client.conn.get(CHANGES, **asked)
                if response.status_code == 400 and scoped:  # rules it does not take: told of everything
                    logger.warning(f"the server did not take this client's ignore rules: {response.text[:300]}")
                    scoped = False
                    continue
                if response.status_code == 404:
                    logger.warning("the server has no /sync/changes: syncing every interval only")
                    return
                response.raise_for_status()
                token = response.json()["changes"]
            except Exception as e:  # the server restarts, the network drops, a bad answer: poll meanwhile
                logger.debug(f"waiting for changes failed: {e}")
                time.sleep(max(self.sync_interval, 1.0))
                continue
            if token != seen:
                self.wake()
            seen = token

    def start(self) -> None:
        self._federation_wake = threading.Event()

        def loop() -> None:
            while not self.is_stop_requested:
                self._federation_wake.clear()  # a nudge from now on asks for the next pass
                try:
                    if self._should_perform_health_check():
                        self.check_server_status()
                    self.run_single_thread()
                except FatalSyncError as e:
                    logger.error(f"Syncing encountered a fatal error. {e}")
                    break
                except Exception as e:
                    logger.error(f"Syncing encountered an error: {e}. Retrying in {self.sync_interval} seconds.")
                self._federation_wake.wait(self.sync_interval)

        self.is_stop_requested = False
        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        self._federation_watcher = threading.Thread(target=self.watch_changes, daemon=True)
        self._federation_watcher.start()
        logger.info(f"Sync started, syncing every {self.sync_interval} seconds, on POST /sync/now "
                    "and when the server reports a change")

    def sync_now(sync_manager=Depends(sync_router.get_sync_manager)) -> dict:
        sync_manager.wake()
        return {"sync": "soon"}

    start._wakes_on_request = True
    manager_cls.start, manager_cls.wake, manager_cls.watch_changes = start, wake, watch_changes
    manager_cls.ignore_rules = ignore_rules
    sync_router.router.add_api_route("/now", sync_now, methods=["POST"])  # before the app includes it


if __name__ == "__main__":
    _patch_create_remote()
    _patch_forget_deleted()
    _patch_cheaper_filters()
    _patch_batched_pass()
    _patch_sync_now()
    args = sys.argv[1:]
    if args[:1] == ["--sync-interval"]:
        _patch_sync_interval(float(args[1]))
        args = args[2:]
    from syftbox.main import main

    sys.argv = ["syftbox", *args]
    sys.exit(main())
