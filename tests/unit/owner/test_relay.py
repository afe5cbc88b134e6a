"""federation.owner.relay: each message in, each reply out through the owner's rules and audit
(the transport itself is syft_flwr's, run by the integration tests)."""

from __future__ import annotations

import threading
import time

import pytest
from flwr.common import Message, MetricRecord, RecordDict
from syft_flwr.serde import bytes_to_flower_message, flower_message_to_bytes
from syft_flwr.utils import create_flwr_message

from federation.common.settings import EgressRules
from federation.owner import egress
from federation.owner.relay import JobGone, Relay


def query() -> bytes:
    return flower_message_to_bytes(create_flwr_message(content=RecordDict(), message_type="query",
                                                       dst_node_id=1, group_id="1"))


def fake_job(job_dir, metrics: dict, stop: threading.Event) -> threading.Thread:
    """Answers each inbox message with `metrics`, as the harness would."""
    def run():
        done = set()
        while not stop.is_set():
            for path in sorted((job_dir / "inbox").glob("*.msg")):
                if path.name not in done:
                    done.add(path.name)
                    message = bytes_to_flower_message(path.read_bytes())
                    reply = Message(content=RecordDict({"r": MetricRecord(metrics)}), reply_to=message)
                    (job_dir / "outbox" / path.name).write_bytes(flower_message_to_bytes(reply))
            time.sleep(0.02)
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@pytest.fixture
def job_dir(tmp_path):
    folder = tmp_path / "jobs" / "abc123"
    for name in ("inbox", "outbox"):
        (folder / name).mkdir(parents=True)
    return folder


def relay_for(job_dir, tmp_path, rules=EgressRules(), ended=lambda: None) -> Relay:
    return Relay("app", job_dir, "abc123" * 4, rules, tmp_path / "state", ended, round_timeout=5)


def test_a_reply_passes_the_rules_and_is_recorded(job_dir, tmp_path):
    stop = threading.Event()
    fake_job(job_dir, {"x/hist": [0, 2, 9], "x/sum": 1.5}, stop)
    relay = relay_for(job_dir, tmp_path)
    try:
        sent = relay.relay(query())
    finally:
        stop.set()
    assert dict(bytes_to_flower_message(sent).content["r"]) == {"x/hist": [0, 0, 9], "x/sum": 1.5}
    assert relay.suppressed == 1 and relay.replies == 1
    (entry,) = egress.Audit(tmp_path / "state").entries()
    assert entry["decision"] == "sent, 1 small count(s) sent as 0" and entry["reply"] == "abc123abc123-1"


def test_a_reply_over_the_cap_is_refused_and_recorded(job_dir, tmp_path):
    stop = threading.Event()
    fake_job(job_dir, {"rows": [float(i) for i in range(5000)]}, stop)
    relay = relay_for(job_dir, tmp_path)
    try:
        with pytest.raises(egress.ReplyRefused, match="REPLY_MAX_BYTES"):
            relay.relay(query())
    finally:
        stop.set()
    (entry,) = egress.Audit(tmp_path / "state").entries()
    assert entry["decision"].startswith("refused: the reply is") and entry["sent_sha256"] is None


def test_a_job_that_ended_without_answering(job_dir, tmp_path):
    relay = relay_for(job_dir, tmp_path, ended=lambda: "exit code 1")
    with pytest.raises(JobGone, match="ended before it answered: exit code 1"):
        relay.relay(query())


@pytest.mark.parametrize("decision, reason", [("released", ""), ("withheld", "too detailed")])
def test_manual_approval_waits_for_a_person(job_dir, tmp_path, decision, reason):
    stop = threading.Event()
    fake_job(job_dir, {"x/count": 40}, stop)
    relay = relay_for(job_dir, tmp_path, rules=EgressRules(approval="manual", approval_timeout=10))
    desk = egress.ReplyDesk(tmp_path / "state")

    def person():
        while not desk.pending():
            time.sleep(0.05)
        (waiting,) = desk.pending()
        desk.decide(waiting["reply"], decision, reason)
    threading.Thread(target=person, daemon=True).start()
    try:
        if decision == "released":
            assert dict(bytes_to_flower_message(relay.relay(query())).content["r"]) == {"x/count": 40}
        else:
            with pytest.raises(egress.ReplyRefused, match="withheld by the data owner: too detailed"):
                relay.relay(query())
    finally:
        stop.set()
    decisions = [e["decision"] for e in egress.Audit(tmp_path / "state").entries()]
    assert decisions == (["sent"] if decision == "released" else ["withheld by the data owner: too detailed"])
