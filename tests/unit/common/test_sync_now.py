"""federation.common.sync_now: a message written asks this party's SyftBox client to sync at once."""

from __future__ import annotations

import http.server
import json
import threading
import time

import pytest

from federation.common import syft_patches, sync_now


class FakeClientAPI(http.server.ThreadingHTTPServer):
    """The client's local API as the launcher extends it: counts POST /sync/now."""

    def __init__(self):
        self.nudges = []
        api = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                api.nudges.append(self.path)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)


@pytest.fixture
def client_api(tmp_path, monkeypatch):
    api = FakeClientAPI()
    threading.Thread(target=api.serve_forever, daemon=True).start()
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"client_url": f"http://127.0.0.1:{api.server_address[1]}"}))
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(config))
    yield api
    api.shutdown()


def wait_for(check, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not check() and time.monotonic() < deadline:
        time.sleep(0.01)
    return check()


def test_a_nudge_reaches_the_client_at_once_and_a_burst_costs_few(client_api):
    sync_now.nudge()
    assert wait_for(lambda: client_api.nudges == ["/sync/now"])
    for _ in range(50):  # a round to many owners
        sync_now.nudge()
    assert wait_for(lambda: len(client_api.nudges) >= 2)
    time.sleep(0.2)
    assert 2 <= len(client_api.nudges) <= 4, client_api.nudges  # coalesced, and the last write still asked


def test_a_client_that_hangs_neither_holds_the_writer_nor_the_later_nudges(client_api, tmp_path, monkeypatch):
    silent = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)  # accepts, never answers
    config = tmp_path / "silent.json"
    config.write_text(json.dumps({"client_url": f"http://127.0.0.1:{silent.server_address[1]}"}))
    working = json.loads((tmp_path / "config.json").read_text())
    monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(config))
    start = time.monotonic()
    for _ in range(10):
        sync_now.nudge()
    assert time.monotonic() - start < 0.1
    time.sleep(0.1)  # the sender now waits on the silent one
    config.write_text(json.dumps(working))  # the client back
    sync_now.nudge()
    assert wait_for(lambda: client_api.nudges, timeout=sync_now.TIMEOUT + 3)
    silent.server_close()


def test_a_client_without_the_route_is_reported_once(tmp_path, monkeypatch, caplog):
    class NotFound(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.send_error(404)

        def log_message(self, *args):
            pass

    old = http.server.ThreadingHTTPServer(("127.0.0.1", 0), NotFound)
    threading.Thread(target=old.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{old.server_address[1]}"
    with caplog.at_level("WARNING", logger="federation.common.sync_now"):
        assert sync_now.send_once(url) is False and sync_now.send_once(url) is False
    old.shutdown()
    assert [r.getMessage() for r in caplog.records].count(
        f"the SyftBox client at {url} does not take sync nudges (HTTP Error 404: Not Found): files wait for its loop") == 1


def test_no_config_no_client_asked(tmp_path, monkeypatch):
    monkeypatch.delenv("SYFTBOX_CLIENT_CONFIG_PATH", raising=False)
    assert sync_now.client_url() is None
    sync_now.nudge()  # nothing to ask, nothing raised
    for text in ("not json", json.dumps({"client_url": "file:///etc/passwd"}), json.dumps([1])):
        (tmp_path / "config.json").write_text(text)
        monkeypatch.setenv("SYFTBOX_CLIENT_CONFIG_PATH", str(tmp_path / "config.json"))
        assert sync_now.client_url() is None, text


def test_a_request_or_response_written_by_syft_rpc_nudges_the_client(client_api, tmp_path):
    import syft_rpc.protocol as protocol
    from syft_core.url import SyftBoxURL

    syft_patches.patch(protocol)
    syft_patches.patch(protocol)  # once wrapped, not twice
    request = protocol.SyftRequest(sender="ds@openmined.org", body=b"{}",
                                   url=SyftBoxURL("syft://do1@openmined.org/app_data/RDS/rpc/job/create"))
    request.dump(tmp_path / f"{request.id}.request")
    assert wait_for(lambda: len(client_api.nudges) == 1)
    time.sleep(0.1)
    assert client_api.nudges == ["/sync/now"]
    assert protocol.SyftRequest.load(tmp_path / f"{request.id}.request").id == request.id


def test_a_record_syft_rds_writes_nudges_the_client(client_api, tmp_path):
    """A job's status the owner's runner writes (approved, running, finished) goes up at once."""
    import uuid

    from syft_rds.models import Job
    from syft_rds.store import store

    syft_patches.patch_store(store)
    syft_patches.patch_store(store)  # once wrapped, not twice
    jobs = store.YAMLStore[Job](item_type=Job, store_dir=tmp_path / "store")
    job = jobs.create(Job(name="j", created_by="ds@openmined.org", dataset_name="d", user_code_id=uuid.uuid4(),
                          output_url="syft://do1@openmined.org/app_data/RDS/jobs/x"))
    assert wait_for(lambda: len(client_api.nudges) == 1)
    time.sleep(0.1)
    assert client_api.nudges == ["/sync/now"]
    assert jobs.get_by_uid(job.uid).name == "j"
