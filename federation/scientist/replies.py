"""Who replied, from the Flower messages themselves: for any app, not only the bundled one.

The DS's Flower server runs in `python -m federation.scientist.logged_server <app> <log>`: syft_flwr's
grid is wrapped so that every message sent to an owner and every reply (or error) that comes
back is one JSON line in the log; then the app's `main.py` runs as syft_flwr wrote it. Each
batch the ServerApp pushes is a round. `read_rounds` turns the log into who was asked, who
replied, who answered with an error and who stayed silent, per round.

One change to syft_flwr 0.4.0's behaviour: a reply that carries an error is handed to the
ServerApp (as Flower's own grid does) instead of dropped, so a round with a refusal ends when
the last owner answered, not at SYFT_FLWR_MSG_TIMEOUT.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

SYSTEM = "system"  # Flower's MessageType.SYSTEM: the stop signal, not a question


class MessageLog:
    """Appends one JSON line per event; shared by the grid's wrappers."""

    def __init__(self, path: Path):
        self.path = path
        self.lock = threading.Lock()
        self.round = 0
        self.sent: dict[str, tuple[int, str]] = {}  # future id -> (round, owner)
        self.answered: set[str] = set()

    def write(self, **event) -> None:
        with self.lock, open(self.path, "a") as f:
            f.write(json.dumps({"t": round(time.time(), 3), **event}) + "\n")

    def new_round(self) -> int:
        with self.lock:
            self.round += 1
            return self.round

    def sent_to(self, future_id, owner: str, kind: str, rnd: int) -> None:
        future_id = str(future_id) if future_id else None  # syft-rpc's future ids are UUIDs
        if not future_id or future_id in self.sent:
            return  # not sent, or the plaintext fallback of a message already counted
        self.sent[future_id] = (rnd, owner)
        self.write(event="sent", round=rnd, id=future_id, datasite=owner, type=kind)

    def answer(self, future_id, error: str | None) -> None:
        future_id = str(future_id)
        if future_id in self.answered or future_id not in self.sent:
            return
        self.answered.add(future_id)
        rnd, owner = self.sent[future_id]
        self.write(event="reply", round=rnd, id=future_id, datasite=owner, error=error)


def install(grid_module, log: MessageLog) -> None:
    """Wrap syft_flwr's SyftGrid (its module given) so that it writes `log`."""
    grid_cls = grid_module.SyftGrid
    push, process = grid_cls.push_messages, grid_cls._process_response
    sends = {name: getattr(grid_cls, name) for name in ("_send_encrypted_message", "_send_unencrypted_message")}
    current = threading.local()

    def push_messages(self, messages):
        messages = list(messages)
        asks = [m for m in messages if str(m.metadata.message_type) != SYSTEM]
        current.round = log.new_round() if asks else None
        try:
            return push(self, messages)
        finally:
            current.round = None

    def wrap_send(original):
        def send(self, url, msg_bytes, dest_datasite, msg):
            future_id = original(self, url, msg_bytes, dest_datasite, msg)
            rnd = getattr(current, "round", None)
            if rnd is not None:
                log.sent_to(future_id, dest_datasite, str(msg.metadata.message_type), rnd)
            return future_id
        return send

    def process_response(self, response, msg_id):
        message = process(self, response, msg_id)
        if message is not None:
            log.answer(msg_id, None)
            return message
        # syft_flwr drops an error reply (and would wait for it until the timeout): look at it
        try:
            body = self._try_decrypt_response(response.body, msg_id) if self._encryption_enabled else response.body
            message = grid_module.bytes_to_flower_message(body)
        except Exception:  # empty or unreadable: syft_flwr has logged it; not an answer
            return None
        if not message.has_error():
            return None
        log.answer(msg_id, f"{message.error.reason} (code {message.error.code})")
        return message

    grid_cls.push_messages = push_messages
    grid_cls._process_response = process_response
    for name, original in sends.items():
        setattr(grid_cls, name, wrap_send(original))


@dataclass
class Round:
    number: int
    asked: list[str] = field(default_factory=list)
    replied: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def silent(self) -> list[str]:
        return [e for e in self.asked if e not in self.replied and e not in self.errors]

    def to_json(self) -> dict:
        return {"round": self.number, "asked": self.asked, "replied": self.replied, "errors": self.errors,
                "silent": self.silent}


def read_rounds(path: Path) -> list[Round]:
    """The rounds in a message log, in order (none when there is no log)."""
    rounds: dict[int, Round] = {}
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            event = json.loads(line)
            rnd = rounds.setdefault(int(event["round"]), Round(int(event["round"])))
            owner = str(event["datasite"])
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a kill
        if event.get("event") == "sent" and owner not in rnd.asked:
            rnd.asked.append(owner)
        elif event.get("event") == "reply":
            if event.get("error"):
                rnd.errors[owner] = str(event["error"])
            elif owner not in rnd.replied:
                rnd.replied.append(owner)
    return [rounds[n] for n in sorted(rounds)]


def rounds_done(rounds: list[Round], server_running: bool = True) -> int:
    """Rounds over: every owner asked has answered, or a later round began (or the server ended)."""
    done = 0
    for i, rnd in enumerate(rounds):
        if not rnd.silent or i < len(rounds) - 1 or not server_running:
            done += 1
    return done


def replied_every_round(rounds: list[Round]) -> list[str]:
    """The owners that sent a usable reply in every round that asked them."""
    asked = {e for r in rounds for e in r.asked}
    return sorted(e for e in asked if all(e in r.replied for r in rounds if e in r.asked))
