"""The owner's side of a confined job's Flower traffic: the only way its replies leave.

The job runs in the executor with no key and no network; this runs in the owner's runner, with
the owner's SyftBox client and keys, and speaks syft_flwr's own transport to the DS: for each
message the DS sent (syft_event decrypts it), it drops the Flower bytes into the job's `inbox/`,
waits for the job's answer in `outbox/`, applies the owner's rules (`egress`), records it in the
audit, and returns what may leave, which syft_event encrypts for the DS. A reply a rule refuses
goes back as a Flower error carrying the rule's reason, and ends the job.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

from federation.common.files import atomic_write
from federation.common.settings import EgressRules
from federation.owner import egress

log = logging.getLogger(__name__)

POLL = 0.05


class JobGone(RuntimeError):
    """The job ended (or was stopped) before it answered."""


class Relay:
    """One job's Flower traffic. `serve()` runs syft_flwr's transport until the DS's stop signal
    (or `stop()`); `refused` is the reason when a rule stopped a reply."""

    def __init__(self, app_name: str, job_dir: Path, job_id: str, rules: EgressRules, state_dir: Path,
                 job_ended: Callable[[], str | None], round_timeout: float = 3600):
        self.app_name, self.job_dir, self.job_id, self.rules = app_name, job_dir, job_id, rules
        self.audit = egress.Audit(state_dir)
        self.desk = egress.ReplyDesk(state_dir)
        self.job_ended = job_ended  # None while the job runs, else why it ended
        self.round_timeout = round_timeout
        self.seq = 0
        self.refused: str | None = None
        self.suppressed = 0
        self.replies = 0
        self.box = None
        self.finished = threading.Event()

    # ---------------------------------------------------------------- one message

    def relay(self, data: bytes) -> bytes:
        """The job's answer to one message (Flower bytes), as it may leave; ReplyRefused else."""
        self.seq += 1
        name = f"{self.seq:04d}.msg"
        atomic_write(self.job_dir / "inbox" / name, data)
        answer = self.job_dir / "outbox" / name
        deadline = time.monotonic() + self.round_timeout
        while not answer.exists():
            ended = self.job_ended()
            if ended is not None:
                raise JobGone(f"the job ended before it answered: {ended}")
            if time.monotonic() > deadline:
                raise JobGone(f"the job did not answer within {self.round_timeout:g} s")
            time.sleep(POLL)
        if answer.is_symlink() or not answer.is_file():
            # it would be read here, in the owner's container: a link could name the owner's files
            raise egress.ReplyRefused("the job's reply is not a plain file")
        produced = answer.read_bytes()
        reply_id = f"{self.job_id[:12]}-{self.seq}"
        try:
            checked = egress.check(produced, self.rules)
        except egress.ReplyRefused as e:
            self.audit.record(self.job_id, reply_id, None, produced, [], f"refused: {e}")
            raise
        if self.rules.approval == "manual":
            self.desk.ask(reply_id, {"job": self.job_id, "reply": reply_id, "bytes": len(produced),
                                     "records": checked.summary, "suppressed": checked.suppressed,
                                     "at": time.time()})
            log.warning("reply %s of job %s waits for a person: datasite release %s (or withhold)",
                        reply_id, self.job_id[:12], reply_id)
            self._stage(reply_id, checked.data)
            decided = self.desk.wait(reply_id, self.rules.approval_timeout)
            if decided["decision"] != "released":
                reason = f"withheld by the data owner: {decided.get('reason') or 'no reason given'}"
                self.audit.record(self.job_id, reply_id, None, produced, checked.summary, reason, checked.suppressed)
                raise egress.ReplyRefused(reason)
        decision = "sent" + (f", {checked.suppressed} small count(s) sent as 0" if checked.suppressed else "")
        self.audit.record(self.job_id, reply_id, checked.data, produced, checked.summary, decision, checked.suppressed)
        self.suppressed += checked.suppressed
        self.replies += 1
        log.info("job %s reply %d: %d bytes %s", self.job_id[:12], self.seq, len(checked.data), decision)
        return checked.data

    def _stage(self, reply_id: str, data: bytes) -> None:
        """What would leave, for `datasite audit --show` while the reply waits."""
        atomic_write(self.audit.replies / f"{reply_id}.bin", data)

    # ---------------------------------------------------------------- syft_flwr's transport

    def serve(self) -> None:
        from flwr.common.constant import ErrorCode
        from flwr.common.message import Error
        from syft_event import SyftEvents
        from syft_event.types import Request
        from syft_flwr.flower_client import MessageHandler, RequestProcessor
        from syft_flwr.serde import flower_message_to_bytes
        from syft_flwr.utils import setup_client

        client, encrypted, app_name = setup_client(self.app_name)
        box = SyftEvents(app_name=app_name, client=client)
        self.box = box
        # syft_flwr's own handler and request processing, with the job's answer in place of
        # a ClientApp running here
        relay = self

        class Relayed(MessageHandler):
            def process_message(self, message):
                try:
                    return self.prepare_reply(relay.relay(flower_message_to_bytes(message)))
                except (egress.ReplyRefused, JobGone) as e:
                    if isinstance(e, egress.ReplyRefused):  # (a job that died says why in its own log)
                        relay.refused = str(e)
                    log.error("job %s: %s", relay.job_id[:12], e)
                    box._stop_event.set()
                    return self.create_error_reply(message, Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION,
                                                                  reason=f"{client.email}: {e}"))

        processor = RequestProcessor(Relayed(None, None, encrypted), box, client.email)

        def handle(request):
            return processor.process(request)

        # syft_event reads the body's type from the annotation (this module's are strings)
        handle.__annotations__ = {"request": Request}
        box.on_request("/messages", auto_decrypt=encrypted, encrypt_reply=encrypted)(handle)

        try:
            box.run_forever()
        finally:
            self.finished.set()

    @property
    def stopping(self) -> bool:
        """The DS sent its stop signal (or a rule ended the job): the job may end now, without
        waiting for syft_event to wind its threads down."""
        return self.finished.is_set() or (self.box is not None and self.box._stop_event.is_set())

    def stop(self) -> None:
        if self.box is not None:
            self.box._stop_event.set()
