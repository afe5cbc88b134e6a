"""Narrow patches to the pinned syft libraries, applied the moment they are imported.

syft-rpc: readers tolerate files that are still being written. The SyftBox client
writes a synced file in place (truncate, then write), and syft-rpc writes request
files the same way, while the receiver reacts to the file's creation. A reader can
then see an empty or partial JSON file; in a prototype 3 of 5 runs lost a data
owner that way. `SyftMessage.load` is the one place every request and response is
read: retry it briefly on a parse error.

syft-event: a request counts only from the party whose folder holds it. syft-rpc files a
request under `<endpoint>/<sender>/<id>.request` and the owner's permission rules let each
party write only in the folder named for it (the server checks the writer's token); but the
`sender` inside the file is whatever the writer put there. A request whose sender (or whose
encrypted payload's sender) is not the folder's party is ignored and logged, so a party the
operator invited cannot submit a job in the DS's name.

syft-event: a request is handled once. syft-event handles a request on watchdog's "created"
event, and watchdog reports a file twice when it is created just after its folder (it watches
the new folder, then lists it, and the file's own event follows): 5 files in 300 on an idle
machine. For `job/create` that made the owner create the DS's job twice, and the second copy
waited for a Flower server that had finished (CI saw it in test_history). A request whose
response exists, or which this server has handled already, is skipped.

syft-event: a request that was there before its server started is answered. syft-event looks
for them with a path pattern made for one-level endpoints (`messages/<sender>/<id>.request`),
so it skipped every syft-rds endpoint (`job/create/...`) as "invalid": a DS that submitted
while an owner was not yet up (or restarting) waited for good. It now looks in each registered
endpoint, oldest first, and it watches before it looks, so a request that lands meanwhile is
seen by one or the other (or both, and handled once).

syft-rpc and syft-rds: a request, a response or a record (a job's status, a dataset) written is
pushed at once. After `SyftMessage.dump` and `YAMLStore._save_record` the party's own SyftBox
client is asked to sync now (`sync_now`), instead of at its next loop.

syft-rds: a record (a job, its code, a dataset) is written in place (truncate, then write) by
the owner's RDS server thread while the owner's runner, in the same process, lists the jobs
every second; a read between the two saw an empty file, and the ValidationError stopped the
owner (CI lost an owner so, in a restart loop). A reader now retries an unreadable record
briefly, then skips it with a warning (one left empty by a writer that was killed). It parses
with libyaml's parser (PyYAML's `CSafeLoader`: the same constructor, ~8x faster than the pure
Python one), as every record the runner lists is parsed again every second. Writes stay
as syft-rds makes them: the SyftBox client syncs those files as it always has.

Active in every interpreter of an environment where this package is installed: its
`federation-patches.pth` imports `_federation_patches`, whose import hook calls
`apply` here when `syft_rpc.protocol` is first imported. Other programs pay nothing.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict

from federation.common import sync_now

log = logging.getLogger(__name__)

ATTEMPTS = 40
PAUSE = 0.05  # seconds: 40 x 50 ms covers a 1 s sync loop twice
TARGET = "syft_rpc.protocol"
EVENTS = "syft_event.server2"
STORE = "syft_rds.store.store"
HANDLED_KEPT = 10_000  # request paths remembered per server: the duplicate follows within a second
RECORD_ATTEMPTS = 10  # x PAUSE: a record being written is whole again within milliseconds
_skipped: set = set()  # records already reported unreadable


def patch(protocol) -> None:
    message_cls = protocol.SyftMessage
    if not getattr(message_cls.dump, "_nudges", False):
        message_cls.dump = _nudging(message_cls.dump)
    if getattr(message_cls.load, "_retries_partial_files", False):
        return
    original = message_cls.load.__func__

    def load(cls, path):
        for attempt in range(ATTEMPTS):
            try:
                return original(cls, path)
            except ValueError:  # empty or partial JSON (pydantic's ValidationError is one)
                if attempt == ATTEMPTS - 1:
                    raise
                time.sleep(PAUSE)

    load._retries_partial_files = True
    message_cls.load = classmethod(load)


def claimed_senders(request) -> set[str]:
    """Who the request says it is from: its sender, and its encrypted payload's sender."""
    senders = {str(request.sender).lower()}
    try:
        payload = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError):
        payload = None
    if isinstance(payload, dict) and "sender" in payload and "receiver" in payload:
        senders.add(str(payload["sender"]).lower())
    return senders


_handled_lock = threading.Lock()


def first_time(events, path) -> bool:
    """True once per request path and server, and only while the request has no response."""
    if path.with_suffix(".response").exists():
        return False
    with _handled_lock:
        handled = events.__dict__.setdefault("_federation_handled", OrderedDict())
        if str(path) in handled:
            return False
        handled[str(path)] = None
        if len(handled) > HANDLED_KEPT:
            handled.popitem(last=False)
    return True


def handling_lock(events) -> threading.Lock:
    with _handled_lock:
        return events.__dict__.setdefault("_federation_handling", threading.Lock())


def modified(path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:  # gone meanwhile: the handler ignores it
        return 0.0


def patch_events(server2) -> None:
    events_cls = server2.SyftEvents
    handle = events_cls._SyftEvents__handle_rpc
    if getattr(handle, "_checks_sender", False):
        return
    request_cls = server2.SyftRequest

    def handle_rpc(self, path, func):
        if not first_time(self, path):
            log.debug("skipped %s: handled already", path)
            return None
        try:
            request = request_cls.load(path)
        except Exception:  # unreadable or gone: the original answers or ignores it
            request = None
        if request is not None:
            folder = path.parent.name.lower()
            if claimed_senders(request) != {folder}:
                log.warning("ignored request %s: it claims to be from %s but sits in the folder of %s",
                            path, ", ".join(sorted(claimed_senders(request))), folder)
                return None
            if str(request.id) != path.stem:  # its reply would go elsewhere: handled again at each start
                log.warning("ignored request %s: its id is %s", path, request.id)
                return None
        with handling_lock(self):  # one at a time, as syft-event's one watcher thread did
            return handle(self, path, func)

    def pending(self) -> None:
        for endpoint, handler in list(self._SyftEvents__rpc.items()):
            handler = handler.get("handler") if isinstance(handler, dict) else handler
            waiting = [path for path in endpoint.glob("*/*.request") if not path.with_suffix(".response").exists()]
            for path in sorted(waiting, key=modified):
                try:
                    self._SyftEvents__handle_rpc(path, handler)
                except Exception:  # one bad file must not keep the server from starting, every time
                    log.exception("skipped the waiting request %s", path)

    def start(self, process_pending_requests: bool = True) -> None:
        self.init()
        self.obs.start()  # before the listing: what lands during it is seen (first_time: once)
        if process_pending_requests:
            try:
                self._SyftEvents__move_legacy_requests()
                self.process_pending_requests()
            except Exception:
                self.obs.stop()
                raise
        self._periodic_cleanup.start()

    handle_rpc._checks_sender = True
    events_cls._SyftEvents__handle_rpc = handle_rpc
    events_cls.start = start
    events_cls.process_pending_requests = pending


def _nudging(write):
    """`write`, then ask this party's SyftBox client to sync now (see `sync_now`)."""
    def write_and_nudge(*args, **kwargs):
        result = write(*args, **kwargs)
        try:
            sync_now.nudge()
        except Exception as e:  # written is written: the loop syncs it anyway
            log.debug("no sync nudge: %s", e)
        return result

    write_and_nudge._nudges = True
    return write_and_nudge


def patch_store(store) -> None:
    store_cls = store.YAMLStore
    if not getattr(store_cls._save_record, "_nudges", False):
        store_cls._save_record = _nudging(store_cls._save_record)
    if getattr(store_cls.get_by_uid, "_retries_partial_files", False):
        return
    yaml = store.yaml
    # libyaml's parser where PyYAML has it (its wheels do): the same safe constructor and
    # resolver, so the same records, parsed ~8x faster; the runner lists every job every second.
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def get_by_uid(self, uid):
        path = self._get_record_path(uid)
        for attempt in range(RECORD_ATTEMPTS):
            if not path.exists():
                return None
            try:
                return self.item_type.model_validate(yaml.load(path.read_text(), Loader=loader))
            except (OSError, ValueError, yaml.YAMLError) as e:  # pydantic's ValidationError is a ValueError
                error = e
            time.sleep(PAUSE)
        if path not in _skipped:  # once per record: the runner lists every second
            _skipped.add(path)
            log.warning("skipped the unreadable record %s (%s)", path, str(error).splitlines()[0])
        return None

    patched = store.ensure_store_exists(get_by_uid)
    patched._retries_partial_files = True
    store_cls.get_by_uid = patched


def apply(module_name: str, module) -> None:
    """Called by the import hook once `module_name` has been imported."""
    if module_name == TARGET:
        patch(module)
    elif module_name == EVENTS:
        patch_events(module)
    elif module_name == STORE:
        patch_store(module)


def install() -> None:
    """Patch now if syft_rpc is imported already, else when it is (what the .pth file does)."""
    import _federation_patches

    _federation_patches.install()
