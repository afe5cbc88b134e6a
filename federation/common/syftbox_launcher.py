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

And one trim (always on): a file deleted on both sides leaves no entry in the client's saved
state. syftbox 0.4.0 keeps a sync status for every path it ever synced and writes the whole
state (`plugins/local_syncstate.json`) again after each file it syncs, so every run's files,
long gone, made each later write larger: 975 statuses for 107 files, 363 KB, after 21 runs of
`scripts/soak`. A status left by an older client is dropped when the state is loaded.

And one addition (always on): `POST /sync/now` on the client's local API wakes its sync loop, so
a file written goes up at once instead of at the next loop (the app side asks after every
message it writes: `federation/common/sync_now.py`). Nudges during a pass make one more pass.
The loop is also woken when the server says a file changed: a thread holds the server's
`GET /sync/changes` open (the guard's addition, `federation/sync_server/guard.py`), so a file
another party wrote comes down at once instead of at the next loop. Against a server without it
(404) the thread stops and the loop polls as before.
syftbox 0.4.0 also retried a failed pass at once, in a tight loop; it now waits an interval.

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
    from syftbox.client.plugins.sync import local_state
    from syftbox.client.plugins.sync.types import SyncActionType, SyncStatus

    state_cls = local_state.LocalState
    if getattr(state_cls.insert_synced_file, "_forgets_deleted", False):
        return
    insert_synced_file, load = state_cls.insert_synced_file, state_cls.load
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

    manager_cls = manager.SyncManager
    if getattr(manager_cls.start, "_wakes_on_request", False):
        return

    def wake(self) -> None:
        event = getattr(self, "_federation_wake", None)
        if event is not None:  # not syncing yet: its first pass comes anyway
            event.set()

    def watch_changes(self) -> None:
        """Wake the loop whenever the server's change token moves (a long poll)."""
        seen = None
        # ends with the loop it wakes (stopped, or ended by a fatal sync error)
        while not self.is_stop_requested and (self.thread is None or self.thread.is_alive()):
            try:
                response = self.context.client.conn.get(
                    CHANGES, params={"since": seen or "", "wait": CHANGES_WAIT}, timeout=CHANGES_WAIT + 15)
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
    sync_router.router.add_api_route("/now", sync_now, methods=["POST"])  # before the app includes it


if __name__ == "__main__":
    _patch_create_remote()
    _patch_forget_deleted()
    _patch_sync_now()
    args = sys.argv[1:]
    if args[:1] == ["--sync-interval"]:
        _patch_sync_interval(float(args[1]))
        args = args[2:]
    from syftbox.main import main

    sys.argv = ["syftbox", *args]
    sys.exit(main())
