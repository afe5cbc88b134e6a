"""federation.owner.egress: the owner's rules on what a reply carries, and the audit of each."""

from __future__ import annotations

import pytest
from flwr.common import ConfigRecord, Message, MetricRecord, RecordDict
from syft_flwr.serde import bytes_to_flower_message, flower_message_to_bytes
from syft_flwr.utils import create_flwr_message

from federation.common.settings import EgressRules
from federation.owner import egress


def reply_bytes(metrics: dict, config: dict | None = None) -> bytes:
    content = RecordDict({"query_results": MetricRecord(metrics)})
    if config:
        content["info"] = ConfigRecord(config)
    query = create_flwr_message(content=RecordDict(), message_type="query", dst_node_id=1, group_id="1")
    return flower_message_to_bytes(Message(content=content, reply_to=query))


def values(data: bytes) -> dict:
    return dict(bytes_to_flower_message(data).content["query_results"])


BUNDLED = {"Glucose/0/hist": [0, 3, 12, 40, 2, 0], "Glucose/0/count": 57, "Glucose/0/missing": 2,
           "Glucose/0/sum": 6000.5, "Age/1/count": 40}


def test_small_counts_are_sent_as_zero_and_counted():
    checked = egress.check(reply_bytes(BUNDLED), EgressRules(small_count_k=5))
    got = values(checked.data)
    assert got["Glucose/0/hist"] == [0, 0, 12, 40, 0, 0]  # 3 and 2 were small
    assert got["Glucose/0/missing"] == 0 and got["Glucose/0/count"] == 57 and got["Age/1/count"] == 40
    assert got["Glucose/0/sum"] == 6000.5  # not a count
    assert checked.suppressed == 3


def test_a_reply_without_small_counts_leaves_unchanged():
    data = reply_bytes({"Glucose/0/hist": [0, 12, 40], "Glucose/0/count": 52, "Glucose/0/sum": 1.5})
    checked = egress.check(data, EgressRules(small_count_k=5))
    assert checked.data == data and checked.suppressed == 0


def test_openmined_example_keys_are_counts_and_other_keys_are_not():
    checked = egress.check(reply_bytes({"age_hist_0": 2, "sex_count_f": 3, "score": 2, "n_rows": 4}),
                           EgressRules(small_count_k=5))
    got = values(checked.data)
    assert got == {"age_hist_0": 0, "sex_count_f": 0, "score": 2, "n_rows": 4}
    assert checked.suppressed == 2
    own = egress.check(reply_bytes({"n_rows": 4}), EgressRules(small_count_k=5, count_patterns=("n_*",)))
    assert values(own.data) == {"n_rows": 0}


def test_k_of_one_turns_the_rule_off():
    data = reply_bytes(BUNDLED)
    assert egress.check(data, EgressRules(small_count_k=1)).data == data


def test_a_reply_over_the_size_cap_is_refused_naming_the_limit():
    rows = {f"row/{i}": [float(v) for v in range(9)] for i in range(300)}
    with pytest.raises(egress.ReplyRefused, match=r"over the owner's limit of 16384 \(REPLY_MAX_BYTES\)"):
        egress.check(reply_bytes(rows), EgressRules())
    assert len(reply_bytes(BUNDLED)) < 16384


def test_not_a_flower_message_is_refused():
    with pytest.raises(egress.ReplyRefused, match="not a Flower message"):
        egress.check(b"\x00private rows", EgressRules())


def test_the_summary_names_every_key_with_its_type_and_shape():
    summary = egress.check(reply_bytes(BUNDLED, {"note": "hi"}), EgressRules()).summary
    by_name = {r["record"]: r for r in summary}
    assert by_name["query_results"]["kind"] == "MetricRecord"
    assert by_name["query_results"]["entries"]["Glucose/0/hist"] == "list[int] x6"
    assert by_name["query_results"]["entries"]["Glucose/0/sum"] == "float"
    assert by_name["info"]["entries"] == {"note": "str x2"}


def test_the_audit_records_every_reply_and_shows_its_values(tmp_path):
    audit = egress.Audit(tmp_path)
    produced = reply_bytes(BUNDLED)
    checked = egress.check(produced, EgressRules())
    audit.record("job1" * 8, "job1job1job1-1", checked.data, produced, checked.summary, "sent", checked.suppressed)
    audit.record("job2" * 8, "job2job2job2-1", None, b"x" * 10, [], "refused: too big")
    entries = audit.entries()
    assert [e["decision"] for e in entries] == ["sent", "refused: too big"]
    first = entries[0]
    assert first["bytes"] == len(produced) and len(first["sha256"]) == 64 and first["suppressed"] == 3
    assert first["sent_sha256"] != first["sha256"]  # what left differs from what the job produced
    assert [e["job"][:4] for e in audit.entries("job2")] == ["job2"]
    shown = audit.values("job1job1job1-1")
    assert shown[0]["record"] == "query_results" and shown[0]["values"]["Glucose/0/hist"] == [0, 0, 12, 40, 0, 0]


def test_a_reply_waits_for_a_person(tmp_path):
    desk = egress.ReplyDesk(tmp_path)
    desk.ask("r-1", {"reply": "r-1", "job": "j", "bytes": 10, "records": [], "suppressed": 0, "at": 0})
    assert [w["reply"] for w in desk.pending()] == ["r-1"]
    with pytest.raises(egress.ReplyRefused, match="no person released the reply"):
        desk.wait("r-1", timeout=0.2, poll=0.05)
    desk.decide("r-1", "withheld", "too detailed")
    assert desk.wait("r-1", timeout=1)["reason"] == "too detailed"
    assert desk.pending() == []
    with pytest.raises(KeyError, match="already withheld"):
        desk.decide("r-1", "released")
    with pytest.raises(KeyError, match="no reply r-9"):
        desk.decide("r-9", "released")
