"""What may leave a datasite: the owner's rules on each reply of a job, and their record.

Every reply a job produces passes here, in the owner's runner, before it is encrypted for the
DS: nothing the job writes reaches the network any other way (it runs confined, see
`executor`). The rules (owner settings):
- a size cap per reply (REPLY_MAX_BYTES): statistics are a few KB, raw rows are not;
- the small-count rule: integers (or lists of integers) under keys matching COUNT_PATTERNS
  that lie between 1 and k-1 (SMALL_COUNT_K) are sent as 0; the DS is told how many;
- optional approval of each reply by a person (REPLY_APPROVAL=manual): `datasite replies`,
  `datasite release ID`, `datasite withhold ID --reason TEXT`.
The audit (`audit.jsonl` in the owner's state, one line per reply) records time, job, size,
sha256, each record's keys with their types and shapes, and the decision; the reply as it left
is kept beside it for `datasite audit JOB --show`.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

from federation.common.files import atomic_write, atomic_write_json, read_json
from federation.common.settings import EgressRules


class ReplyRefused(Exception):
    """A rule (or a person) stops this reply; the message is the reason the DS sees."""


@dataclass
class Checked:
    data: bytes  # what leaves (after the small-count rule)
    suppressed: int = 0
    summary: list[dict] = field(default_factory=list)


def _shape(value) -> str:
    if isinstance(value, (list, tuple)):
        kinds = sorted({type(v).__name__ for v in value}) or ["empty"]
        return f"list[{'|'.join(kinds)}] x{len(value)}"
    if isinstance(value, bytes):
        return f"bytes x{len(value)}"
    if isinstance(value, str):
        return f"str x{len(value)}"
    return type(value).__name__


def summarize(message) -> list[dict]:
    """Each record of a Flower message: its name, kind and every entry's type and shape."""
    out = []
    if message.has_error():
        return [{"record": "error", "kind": "Error", "entries": {"reason": _shape(message.error.reason)}}]
    for name, record in message.content.items():
        kind = type(record).__name__
        if kind == "ArrayRecord":
            entries = {k: f"array {list(v.shape)} {v.dtype}" for k, v in record.items()}
        else:
            entries = {k: _shape(v) for k, v in record.items()}
        out.append({"record": name, "kind": kind, "entries": entries})
    return out


def is_count(key: str, patterns: tuple[str, ...]) -> bool:
    return any(fnmatch.fnmatchcase(key, p) for p in patterns)


def suppress_small_counts(message, rules: EgressRules) -> int:
    """Set counts between 1 and k-1 to 0, in place; how many cells were."""
    if rules.small_count_k <= 1 or message.has_error():
        return 0
    k, cells = rules.small_count_k, 0

    def small(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool) and 0 < v < k

    for record in message.content.values():
        if type(record).__name__ not in ("MetricRecord", "ConfigRecord"):
            continue
        for key in list(record.keys()):
            if not is_count(key, rules.count_patterns):
                continue
            value = record[key]
            if small(value):
                record[key], cells = 0, cells + 1
            elif isinstance(value, list) and any(small(v) for v in value):
                cells += sum(small(v) for v in value)
                record[key] = [0 if small(v) else v for v in value]
    return cells


def check(data: bytes, rules: EgressRules) -> Checked:
    """Apply the automatic rules to one reply (Flower wire bytes): ReplyRefused, or what leaves."""
    from syft_flwr.serde import bytes_to_flower_message, flower_message_to_bytes

    if len(data) > rules.max_bytes:
        raise ReplyRefused(f"the reply is {len(data)} bytes, over the owner's limit of {rules.max_bytes} "
                           "(REPLY_MAX_BYTES): statistics are small, raw rows are not")
    try:
        message = bytes_to_flower_message(data)
    except Exception as e:
        raise ReplyRefused(f"the reply is not a Flower message ({type(e).__name__})") from None
    summary = summarize(message)
    cells = suppress_small_counts(message, rules)
    return Checked(flower_message_to_bytes(message) if cells else data, cells, summary)


class Audit:
    """The owner's record of every reply: `<state>/audit.jsonl`, the replies under `replies/`."""

    def __init__(self, state_dir: Path):
        self.path = state_dir / "audit.jsonl"
        self.replies = state_dir / "replies"

    def record(self, job: str, reply_id: str, sent: bytes | None, produced: bytes, summary: list[dict],
               decision: str, suppressed: int = 0) -> dict:
        entry = {"at": time.time(), "job": job, "reply": reply_id, "bytes": len(produced),
                 "sha256": hashlib.sha256(produced).hexdigest(), "records": summary,
                 "suppressed": suppressed, "decision": decision,
                 "sent_sha256": hashlib.sha256(sent).hexdigest() if sent is not None else None}
        atomic_write(self.replies / f"{reply_id}.bin", sent if sent is not None else produced)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def entries(self, job: str | None = None) -> list[dict]:
        try:
            lines = self.path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = [json.loads(line) for line in lines if line.strip()]
        return [e for e in out if job is None or e["job"].startswith(job)]

    def values(self, reply_id: str) -> list[dict]:
        """A reply as it left (or as it was refused), its records' values, for a person to read."""
        from syft_flwr.serde import bytes_to_flower_message

        message = bytes_to_flower_message((self.replies / f"{reply_id}.bin").read_bytes())
        if message.has_error():
            return [{"record": "error", "values": {"reason": message.error.reason}}]
        out = []
        for name, record in message.content.items():
            if type(record).__name__ == "ArrayRecord":
                values = {k: v.numpy().tolist() for k, v in record.items()}
            else:
                values = {k: (v.hex() if isinstance(v, bytes) else v) for k, v in record.items()}
            out.append({"record": name, "values": values})
        return out


class ReplyDesk:
    """Replies waiting for a person (REPLY_APPROVAL=manual): `<state>/pending-replies/ID.json`,
    decided by `datasite release ID` or `datasite withhold ID --reason TEXT`."""

    def __init__(self, state_dir: Path):
        self.folder = state_dir / "pending-replies"

    def ask(self, reply_id: str, entry: dict) -> None:
        atomic_write_json(self.folder / f"{reply_id}.json", entry | {"decision": None})

    def pending(self) -> list[dict]:
        return [d for p in sorted(self.folder.glob("*.json")) if (d := read_json(p)) and d.get("decision") is None]

    def decide(self, reply_id: str, decision: str, reason: str = "") -> dict:
        path = self.folder / f"{reply_id}.json"
        entry = read_json(path)
        if not entry:
            raise KeyError(f"no reply {reply_id} waits for a decision (see `datasite replies`)")
        if entry.get("decision") is not None:
            raise KeyError(f"reply {reply_id} was already {entry['decision']}")
        entry |= {"decision": decision, "reason": reason, "decided_at": time.time()}
        atomic_write_json(path, entry)
        return entry

    def wait(self, reply_id: str, timeout: float, poll: float = 0.5) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            entry = read_json(self.folder / f"{reply_id}.json") or {}
            if entry.get("decision"):
                return entry
            time.sleep(poll)
        raise ReplyRefused(f"no person released the reply within {timeout:g} s (REPLY_APPROVAL=manual)")
