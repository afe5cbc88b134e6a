"""Who replied, from the messages: syft_flwr's grid wrapped, the log read back."""

from __future__ import annotations

import json
import types
import uuid
from pathlib import Path

from federation.scientist.replies import MessageLog, install, read_rounds, replied_every_round


class FakeMessage:
    def __init__(self, dst=None, kind="query", error=None):
        self.metadata = types.SimpleNamespace(dst_node_id=dst, message_type=kind)
        self.error = error

    def has_error(self):
        return self.error is not None


class FakeGrid:
    """The parts of syft_flwr 0.4.0's SyftGrid the wrapper touches, with its behaviour: an error
    reply is dropped (None)."""

    _encryption_enabled = False

    def __init__(self):
        self.client_map = {1: "do1@x.org", 2: "do2@x.org"}
        self.sent = 0

    def push_messages(self, messages):
        ids = []
        for m in messages:
            fid = self._send_encrypted_message("url", b"", self.client_map[m.metadata.dst_node_id], m)
            if fid:
                ids.append(fid)
        return ids

    def _send_encrypted_message(self, url, body, dest, msg):
        if dest == "do2@x.org" and msg.metadata.message_type == "query" and self.sent == 0:
            self.sent += 1
            return self._send_unencrypted_message(url, body, dest, msg)  # the fallback: one message
        return uuid.uuid4()  # syft-rpc's future ids are UUIDs

    def _send_unencrypted_message(self, url, body, dest, msg):
        return uuid.uuid4()

    def _try_decrypt_response(self, body, msg_id):
        return body

    def _process_response(self, response, msg_id):
        message = response.body
        return None if message.has_error() else message


def fake_module():
    module = types.SimpleNamespace(SyftGrid=type("SyftGrid", (FakeGrid,), {}))
    module.bytes_to_flower_message = lambda body: body
    return module


def test_each_push_is_a_round_errors_reach_the_server_app_and_the_stop_signal_is_no_round(tmp_path: Path):
    module = fake_module()
    log = tmp_path / "messages.jsonl"
    install(module, MessageLog(log))
    grid = module.SyftGrid()

    ids = grid.push_messages([FakeMessage(1), FakeMessage(2)])
    assert len(ids) == 2
    ok = grid._process_response(types.SimpleNamespace(body=FakeMessage()), ids[0])
    refused = FakeMessage(error=types.SimpleNamespace(reason="reply refused: too big", code=0))
    got = grid._process_response(types.SimpleNamespace(body=refused), ids[1])
    assert ok is not None and got is refused  # handed over, not dropped (so no wait for the timeout)
    grid._process_response(types.SimpleNamespace(body=refused), ids[1])  # pulled again: counted once

    second = grid.push_messages([FakeMessage(1), FakeMessage(2)])
    grid._process_response(types.SimpleNamespace(body=FakeMessage()), second[1])
    grid.push_messages([FakeMessage(1, kind="system"), FakeMessage(2, kind="system")])  # the stop signal

    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    # one line per message and per answer: not for the plaintext fallback, the second pull, the stop signal
    assert events == ["sent", "sent", "reply", "reply", "sent", "sent", "reply"]
    rounds = read_rounds(log)
    assert [r.to_json() for r in rounds] == [
        {"round": 1, "asked": ["do1@x.org", "do2@x.org"], "replied": ["do1@x.org"],
         "errors": {"do2@x.org": "reply refused: too big (code 0)"}, "silent": []},
        {"round": 2, "asked": ["do1@x.org", "do2@x.org"], "replied": ["do2@x.org"], "errors": {},
         "silent": ["do1@x.org"]},
    ]
    assert replied_every_round(rounds) == []


def test_a_log_cut_short_is_read_as_far_as_it_goes(tmp_path: Path):
    log = tmp_path / "messages.jsonl"
    log.write_text('{"event": "sent", "round": 1, "id": "a", "datasite": "do1@x.org"}\n'
                   '{"event": "reply", "round": 1, "id": "a", "datasite": "do1@x.org", "error": null}\n'
                   '{"event": "sent", "round": 2, "id"')
    [one] = read_rounds(log)
    assert one.replied == ["do1@x.org"] and replied_every_round([one]) == ["do1@x.org"]
    assert read_rounds(tmp_path / "none.jsonl") == []
