"""federation.common.syft_patches: syft-rpc reads tolerate half-written files, in every interpreter
of an environment the package is installed into (its .pth file)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest

import _federation_patches
from federation.common import syft_patches
from tests.conftest import REPO_ROOT


@pytest.fixture
def protocol():
    """syft_rpc.protocol as syft-rpc ships it (the environment's .pth may have patched it at
    import): each test patches it itself; restored afterwards."""
    import syft_rpc.protocol as protocol

    saved = {name: protocol.SyftMessage.__dict__.get(name) for name in ("load", "dump")}
    for name, method in saved.items():
        if method is not None:
            delattr(protocol.SyftMessage, name)  # the original, Base's, shows through again
    finders = list(sys.meta_path)
    yield protocol
    for name, method in saved.items():
        if name in protocol.SyftMessage.__dict__:
            delattr(protocol.SyftMessage, name)
        if method is not None:
            setattr(protocol.SyftMessage, name, method)
    sys.meta_path[:] = finders


def make_request(protocol):
    from syft_core.url import SyftBoxURL

    return protocol.SyftRequest(
        sender="ds@openmined.org",
        url=SyftBoxURL("syft://do1@openmined.org/app_data/RDS/rpc/job/create"),
        body=json.dumps({"name": "fed-histograms", "rows": 768}).encode(),
        headers={"x-test": "partial"},
    )


def write_later(path: Path, chunks: list[tuple[float, str]]) -> threading.Thread:
    """Write each text at its delay (seconds after start), in place, like the sync client."""
    def run():
        t0 = time.monotonic()
        for delay, text in chunks:
            time.sleep(max(0.0, delay - (time.monotonic() - t0)))
            with open(path, "w", encoding="utf-8") as f:  # truncate, then write
                f.write(text)
    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t


def count_loads(monkeypatch, protocol) -> list[int]:
    """Count the parse attempts of SyftRequest (the original load calls cls.loads once each)."""
    calls = [0]
    base_loads = protocol.SyftRequest.loads.__func__

    def loads(cls, data):
        calls[0] += 1
        return base_loads(cls, data)

    monkeypatch.setattr(protocol.SyftRequest, "loads", classmethod(loads))
    return calls


# --------------------------------------------------------------------------- in-process


def test_unpatched_load_fails_on_an_empty_file(protocol, tmp_path):
    """The problem being solved exists: without the patch an empty file fails at once."""
    assert not getattr(protocol.SyftRequest.load, "_retries_partial_files", False)
    path = tmp_path / "req.request"
    path.write_text("")
    with pytest.raises(ValueError):
        protocol.SyftRequest.load(path)


def test_load_waits_for_a_file_written_later(protocol, tmp_path):
    syft_patches.install()
    assert getattr(protocol.SyftRequest.load, "_retries_partial_files", False)
    req = make_request(protocol)
    path = tmp_path / "abc.request"
    path.write_text("")  # created empty, as the receiver first sees it
    writer = write_later(path, [(0.3, req.dumps())])
    t0 = time.monotonic()
    got = protocol.SyftRequest.load(path)
    elapsed = time.monotonic() - t0
    writer.join(5)
    assert isinstance(got, protocol.SyftRequest)
    assert got == req
    assert got.id == req.id and got.body == req.body and got.sender == "ds@openmined.org"
    assert 0.2 < elapsed < syft_patches.ATTEMPTS * syft_patches.PAUSE + 1


def test_load_waits_through_a_partial_file(protocol, tmp_path):
    syft_patches.install()
    req = make_request(protocol)
    text = req.dumps()
    path = tmp_path / "partial.request"
    path.write_text("")
    writer = write_later(path, [(0.1, text[: len(text) // 2]), (0.3, text)])
    got = protocol.SyftRequest.load(path)
    writer.join(5)
    assert got == req


def test_response_class_is_patched_too(protocol, tmp_path):
    syft_patches.install()
    resp = protocol.SyftResponse(sender="do1@openmined.org",
                                 url=make_request(protocol).url, body=b"ok")
    path = tmp_path / "abc.response"
    path.write_text("")
    writer = write_later(path, [(0.3, resp.dumps())])
    assert protocol.SyftResponse.load(path) == resp
    writer.join(5)


def test_a_file_that_stays_broken_raises_after_the_retries(protocol, tmp_path, monkeypatch):
    syft_patches.install()
    monkeypatch.setattr(syft_patches, "ATTEMPTS", 4)
    monkeypatch.setattr(syft_patches, "PAUSE", 0.01)
    calls = count_loads(monkeypatch, protocol)
    path = tmp_path / "broken.request"
    path.write_text('{"id": "not finished')
    t0 = time.monotonic()
    with pytest.raises(ValueError):
        protocol.SyftRequest.load(path)
    assert calls[0] == 4
    assert time.monotonic() - t0 < 1


def test_a_valid_json_of_the_wrong_shape_also_raises(protocol, tmp_path, monkeypatch):
    syft_patches.install()
    monkeypatch.setattr(syft_patches, "ATTEMPTS", 3)
    monkeypatch.setattr(syft_patches, "PAUSE", 0.01)
    path = tmp_path / "wrong.request"
    path.write_text(json.dumps({"hello": "world"}))
    with pytest.raises(ValueError):
        protocol.SyftRequest.load(path)


def test_a_missing_file_is_not_retried(protocol, tmp_path, monkeypatch):
    syft_patches.install()
    monkeypatch.setattr(syft_patches, "ATTEMPTS", 50)
    monkeypatch.setattr(syft_patches, "PAUSE", 0.1)
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError):
        protocol.SyftRequest.load(tmp_path / "nope.request")
    assert time.monotonic() - t0 < 1


def test_install_twice_does_not_double_wrap(protocol, tmp_path, monkeypatch):
    import syft_event.server2  # noqa: F401 (every target imported: the hook steps out of the way)
    import syft_rds.store.store  # noqa: F401

    syft_patches.install()
    first = protocol.SyftMessage.__dict__["load"].__func__
    syft_patches.install()
    syft_patches.patch(protocol)
    assert protocol.SyftMessage.__dict__["load"].__func__ is first
    # behaviour too: one loop of retries, not ATTEMPTS**2
    monkeypatch.setattr(syft_patches, "ATTEMPTS", 3)
    monkeypatch.setattr(syft_patches, "PAUSE", 0.0)
    calls = count_loads(monkeypatch, protocol)
    path = tmp_path / "broken.request"
    path.write_text("{")
    with pytest.raises(ValueError):
        protocol.SyftRequest.load(path)
    assert calls[0] == 3
    assert not any(isinstance(f, _federation_patches.PatchOnImport) for f in sys.meta_path)


# --------------------------------------------------------------------------- lazy, in a fresh interpreter


def run_fresh(code: str, site: bool = True) -> dict:
    """`code` in a new interpreter of this environment; without `site`, one that reads no .pth
    file (python -S) but finds the same packages and this checkout."""
    paths = [str(REPO_ROOT)] + ([] if site else [sysconfig.get_path("purelib"), sysconfig.get_path("platlib")])
    env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [*paths, os.environ.get("PYTHONPATH")]))}
    flags = [] if site else ["-S"]
    proc = subprocess.run([sys.executable, *flags, "-c", textwrap.dedent(code)], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_install_before_import_patches_syft_rpc_when_it_is_imported():
    result = run_fresh("""
        import json, sys, tempfile, threading, time, pathlib
        import _federation_patches
        from federation.common import syft_patches
        before = "syft_rpc.protocol" in sys.modules or "syft_rpc" in sys.modules
        syft_patches.install()
        syft_patches.install()
        finders = sum(isinstance(f, _federation_patches.PatchOnImport) for f in sys.meta_path)
        import syft_rpc  # imports syft_rpc.protocol through the package
        from syft_rpc.protocol import SyftRequest, SyftMessage
        from syft_core.url import SyftBoxURL
        patched = bool(getattr(SyftRequest.load, "_retries_partial_files", False))
        finders_after = sum(isinstance(f, _federation_patches.PatchOnImport) for f in sys.meta_path)
        req = SyftRequest(sender="ds@openmined.org", url=SyftBoxURL("syft://do1@openmined.org/app_data/x/rpc/y"))
        path = pathlib.Path(tempfile.mkdtemp()) / "r.request"
        path.write_text("")
        threading.Timer(0.3, lambda: path.write_text(req.dumps())).start()
        got = SyftRequest.load(path)
        print(json.dumps({"before": before, "finders": finders, "finders_after": finders_after,
                          "patched": patched, "same": got == req}))
    """, site=False)
    # the finder stays for syft_event.server2, not imported yet
    assert result == {"before": False, "finders": 1, "finders_after": 1, "patched": True, "same": True}


def test_without_the_hook_a_fresh_interpreter_is_not_patched():
    """Control for the tests around it: the patch comes from our hook, not from syft-rpc itself."""
    result = run_fresh("""
        import json
        from syft_rpc.protocol import SyftRequest
        print(json.dumps({"patched": bool(getattr(SyftRequest.load, "_retries_partial_files", False))}))
    """, site=False)
    assert result == {"patched": False}


def test_every_interpreter_of_the_environment_is_patched_by_the_installed_pth():
    """The package installed (as in the image, and scripts/test's venv): a plain `python` that never
    imports federation itself reads syft-rpc patched, and imported nothing of ours before."""
    result = run_fresh("""
        import json, sys
        federation_at_start = "federation" in sys.modules
        from syft_rpc.protocol import SyftRequest
        print(json.dumps({"federation_at_start": federation_at_start,
                          "patched": bool(getattr(SyftRequest.load, "_retries_partial_files", False))}))
    """)
    assert result == {"federation_at_start": False, "patched": True}


# --------------------------------------------------------------------------- sender check


class FakeEvents:
    """Stands in for syft_event's SyftEvents: records which requests reach the handler."""

    def __init__(self):
        self.handled = []

    def _SyftEvents__handle_rpc(self, path, func):
        self.handled.append(path.name)
        return "handled"


def sender_request(protocol, sender, body=b""):
    from syft_core.url import SyftBoxURL

    return protocol.SyftRequest(sender=sender, body=body,
                                url=SyftBoxURL("syft://do1@openmined.org/app_data/RDS/rpc/job/create"))


def write_named(folder: Path, request) -> Path:
    """`request` saved as syft-rpc saves it: named by its id."""
    path = folder / f"{request.id}.request"
    path.write_text(request.dumps())
    return path


def test_a_request_counts_only_from_the_party_whose_folder_holds_it(tmp_path, protocol):
    import types

    server2 = types.SimpleNamespace(SyftEvents=type("SyftEvents", (FakeEvents,), {}), SyftRequest=protocol.SyftRequest)
    syft_patches.patch_events(server2)
    syft_patches.patch_events(server2)  # idempotent
    events = server2.SyftEvents()
    folder = tmp_path / "job" / "create" / "ds@openmined.org"
    folder.mkdir(parents=True)
    honest = write_named(folder, sender_request(protocol, "ds@openmined.org"))
    # mallory could only write in her own folder: this one is what an insider might try
    forged = write_named(folder, sender_request(protocol, "mallory@evil.org"))
    (tmp_path / "job" / "create" / "mallory@evil.org").mkdir()
    claims_ds = write_named(tmp_path / "job" / "create" / "mallory@evil.org", sender_request(protocol, "ds@openmined.org"))
    payload = json.dumps({"sender": "ds@openmined.org", "receiver": "do1@openmined.org", "ciphertext": "x"})
    wrapped = write_named(tmp_path / "job" / "create" / "mallory@evil.org",
                          sender_request(protocol, "mallory@evil.org", payload.encode()))
    for path in (honest, forged, claims_ds, wrapped):
        events._SyftEvents__handle_rpc(path, None)
    assert events.handled == [honest.name]


def test_a_request_is_handled_once_however_often_it_is_reported(tmp_path, protocol):
    import types

    server2 = types.SimpleNamespace(SyftEvents=type("SyftEvents", (FakeEvents,), {}), SyftRequest=protocol.SyftRequest)
    syft_patches.patch_events(server2)
    events, other_server = server2.SyftEvents(), server2.SyftEvents()
    folder = tmp_path / "job" / "create" / "ds@openmined.org"
    folder.mkdir(parents=True)
    first, answered = (write_named(folder, sender_request(protocol, "ds@openmined.org")) for _ in range(2))
    answered.with_suffix(".response").write_text("{}")  # answered before this event came
    for path in (first, first, answered):
        events._SyftEvents__handle_rpc(path, None)
    other_server._SyftEvents__handle_rpc(first, None)  # each server remembers its own
    assert events.handled == [first.name] and other_server.handled == [first.name]


def patched_rds_events(tmp_path: Path):
    """syft-event's real server, patched, for do1's RDS app in `tmp_path` (no sync client)."""
    from syft_core import Client
    from syft_core.config import SyftClientConfig
    from syft_event.server2 import SyftEvents

    syft_patches.install()
    import syft_event.server2
    syft_patches.patch_events(syft_event.server2)
    config = SyftClientConfig(path=tmp_path / "config.json", data_dir=tmp_path, email="do1@openmined.org",
                              server_url="http://syftbox:5001", client_url="http://localhost:7938")
    return SyftEvents("RDS", client=Client(config), publish_schema=False)


def test_requests_created_with_their_folders_each_reach_the_handler_once(tmp_path, protocol):
    """The real syft-event server and watchdog: a request written the moment its sender's folder
    is made (as the sync client does) is reported twice now and then; it is handled once."""
    import collections

    from syft_event.types import Request

    box = patched_rds_events(tmp_path)
    calls = collections.Counter()

    def create(request):
        calls[request.id] += 1
        return "created"

    create.__annotations__ = {"request": Request}  # a string here (postponed annotations)
    box.on_request("/job/create")(create)

    box.start()
    try:
        endpoint = box.app_rpc_dir / "job" / "create"
        requests = 500
        for k in range(requests):
            sender = f"ds{k}@openmined.org"
            (endpoint / sender).mkdir()
            write_named(endpoint / sender, sender_request(protocol, sender))
        deadline = time.monotonic() + 30
        while len(list(endpoint.glob("*/*.response"))) < requests and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)  # a duplicate event arrives within milliseconds of the first
    finally:
        box.stop()
    assert len(calls) == requests and set(calls.values()) == {1}, collections.Counter(calls.values())


def test_a_request_that_lands_while_the_old_ones_are_handled_is_answered(tmp_path, protocol):
    """A request there before the server started (syft-event skipped those of two-level
    endpoints such as syft-rds's) and one that lands while it is handled (syft-event listed the
    pending ones, then started watching) are both answered, once."""
    from syft_event.types import Request

    box = patched_rds_events(tmp_path)
    folder = box.app_rpc_dir / "job" / "create" / "ds@openmined.org"
    folder.mkdir(parents=True)
    old, new = (sender_request(protocol, "ds@openmined.org") for _ in range(2))
    (folder / f"{old.id}.request").write_text(old.dumps())  # named by id, as syft-rpc names them
    handled = []

    def create(request):
        handled.append(request.id)
        if len(handled) == 1:  # the sync client brings the next request now
            (folder / f"{new.id}.request").write_text(new.dumps())
        return "created"

    create.__annotations__ = {"request": Request}
    box.on_request("/job/create")(create)
    box.start()
    try:
        deadline = time.monotonic() + 10
        while not (folder / f"{new.id}.response").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # a second handling of either would show by now
    finally:
        box.stop()
    assert handled == [str(old.id), str(new.id)]
    assert (folder / f"{old.id}.response").exists() and (folder / f"{new.id}.response").exists()


def test_a_bad_waiting_request_does_not_keep_the_server_from_starting(tmp_path, protocol):
    """Waiting requests are handled at start now: one that cannot be (unparsable, and not named
    by an id, so not even an error reply can be written) is logged and skipped; one whose id is
    not its name (its reply would land elsewhere and it would be handled at every start) is
    ignored; the good one is answered."""
    from syft_event.types import Request

    box = patched_rds_events(tmp_path)
    folder = box.app_rpc_dir / "job" / "create" / "ds@openmined.org"
    folder.mkdir(parents=True)
    (folder / "not-an-id.request").write_text("{ not json")
    renamed, good = (sender_request(protocol, "ds@openmined.org") for _ in range(2))
    (folder / f"{uuid.uuid4()}.request").write_text(renamed.dumps())
    (folder / f"{good.id}.request").write_text(good.dumps())
    handled = []

    def create(request):
        handled.append(request.id)
        return "created"

    create.__annotations__ = {"request": Request}
    box.on_request("/job/create")(create)
    box.start()  # raised before: the owner's RDS server died at every start
    box.stop()
    assert handled == [str(good.id)] and (folder / f"{good.id}.response").exists()


def test_importing_syft_event_applies_the_sender_check():
    result = run_fresh("""
        import json
        from syft_event.server2 import SyftEvents
        print(json.dumps({"checks": bool(getattr(SyftEvents._SyftEvents__handle_rpc, "_checks_sender", False))}))
    """)
    assert result == {"checks": True}


# --------------------------------------------------------------------------- syft-rds records


@pytest.fixture
def job_store(tmp_path):
    """A syft-rds job store as the owner's RDS server keeps it, patched (as in every interpreter)."""
    from syft_rds.models import Job
    from syft_rds.store import store

    syft_patches.patch_store(store)
    return store.YAMLStore[Job](item_type=Job, store_dir=tmp_path / "store")


def a_job():
    from syft_rds.models import Job

    return Job(name="j", created_by="ds@openmined.org", dataset_name="d", user_code_id=uuid.uuid4(),
               output_url="syft://do1@openmined.org/app_data/RDS/jobs/x")


def test_a_record_read_while_it_is_rewritten_is_always_whole(job_store):
    """The owner's runner lists jobs while its RDS server thread updates them (in place: an
    empty file in between): every read saw a whole record; unpatched, reads failed (ValidationError,
    what stopped the owner)."""
    job = job_store.create(a_job())
    stop, seen, errors = threading.Event(), [], []

    def writer():
        n = 0
        while not stop.is_set():  # a status update every few ms: far more often than a runner's
            n += 1
            job_store.update(job.uid, job.model_copy(update={"error_message": "x" * (n % 500)}))
            time.sleep(0.005)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            try:
                seen.extend(job_store.list_all())
            except Exception as e:  # noqa: BLE001 (what the owner died of)
                errors.append(e)
    finally:
        stop.set()
        thread.join()
    assert errors == [] and len(seen) > 20 and all(j.uid == job.uid for j in seen)


def test_a_record_left_empty_is_skipped_with_a_warning_not_fatal(job_store, monkeypatch, caplog):
    """An owner killed mid-write left an empty record: listing skips it, with a warning."""
    monkeypatch.setattr(syft_patches, "PAUSE", 0.0)
    good = job_store.create(a_job())
    broken = job_store._get_record_path(uuid.uuid4())
    broken.write_text("")
    with caplog.at_level("WARNING", logger=syft_patches.__name__):
        assert [j.uid for j in job_store.list_all()] == [good.uid]
        assert [j.uid for j in job_store.list_all()] == [good.uid]
    assert str(broken) in caplog.text and caplog.text.count("unreadable record") == 1  # once, not every listing


def test_a_record_written_in_place_by_another_writer_is_read_once_whole(job_store):
    """A record half written (a synced one, or the RDS server's) is read once it is whole again."""
    job = job_store.create(a_job())
    path = job_store._get_record_path(job.uid)
    text = path.read_text()
    path.write_text(text[: len(text) // 2])
    threading.Timer(0.1, path.write_text, args=(text,)).start()
    assert job_store.get_by_uid(job.uid).uid == job.uid


def test_importing_the_syft_rds_store_applies_the_record_patch():
    result = run_fresh("""
        import json
        from syft_rds.store.store import YAMLStore
        print(json.dumps({"retries": bool(getattr(YAMLStore.get_by_uid, "_retries_partial_files", False))}))
    """)
    assert result == {"retries": True}


# --------------------------------------------------------------------------- IPython, when syft-rds shows something

def test_syft_rds_imports_without_ipython_and_shows_things_with_it():
    result = run_fresh("""
        import io, json, sys
        from contextlib import redirect_stdout
        import syft_rds, syft_rds.client.rds_client, syft_rds.display_utils.jupyter.tabulator
        from syft_rds.models import job_models
        ipython_then = "IPython" in sys.modules
        out = io.StringIO()
        with redirect_stdout(out):
            job_models.display(job_models.HTML("<b>shown</b>"))  # outside a notebook: IPython prints its repr
        from IPython.display import HTML
        print(json.dumps({"ipython_then": ipython_then, "ipython_now": "IPython.display" in sys.modules,
                          "shown": out.getvalue().strip(), "lazy": job_models.HTML.__module__,
                          "made": type(job_models.HTML("x")) is HTML}))
    """)
    assert result == {"ipython_then": False, "ipython_now": True, "shown": "<IPython.core.display.HTML object>",
                      "lazy": "federation.common.ipython_display", "made": True}


def test_without_the_hook_syft_rds_imports_ipython_at_once():
    """Control: the lazy import is the hook's, not syft-rds's own."""
    result = run_fresh("""
        import json, sys
        import syft_rds
        print(json.dumps({"ipython": "IPython" in sys.modules}))
    """, site=False)
    assert result == {"ipython": True}


def test_a_module_whose_import_line_differs_is_imported_unchanged(tmp_path):
    """A syft-rds version whose line is not the pinned one's: nothing rewritten."""
    package = tmp_path / "syft_rds" / "models"
    package.mkdir(parents=True)
    (tmp_path / "syft_rds" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("")
    (package / "job_models.py").write_text("from IPython.display import display, HTML\n")
    result = run_fresh(f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from syft_rds.models import job_models
        print(json.dumps({{"module": job_models.HTML.__module__.split(".")[0]}}))
    """)
    assert result == {"module": "IPython"}


def test_a_record_reads_back_as_syft_rds_wrote_it_with_libyamls_parser(job_store):
    """The patched reader parses with PyYAML's C parser: every field as the pure Python one reads it."""
    import yaml

    assert hasattr(yaml, "CSafeLoader")  # PyYAML's wheels carry libyaml: else the reader falls back
    job = job_store.create(a_job().model_copy(update={"description": "two\nlines: and a colon", "tags": ["a", "b"]}))
    text = job_store._get_record_path(job.uid).read_text()
    assert yaml.load(text, Loader=yaml.CSafeLoader) == yaml.safe_load(text)
    assert job_store.get_by_uid(job.uid) == job
