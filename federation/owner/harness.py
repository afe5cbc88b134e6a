"""The job itself, inside the executor: the submitted Flower ClientApp, fed message by message.

    python -m federation.owner.harness /jobs/<id>
    python -P -m federation.owner.harness --warm     (the executor's harness started ahead)

No SyftBox, no keys, no network: the owner's runner decrypts each Flower message the DS sent
and drops it into `inbox/NNNN.msg` (Flower's own wire bytes); this loads the ClientApp named
in the code's `pyproject.toml` (as syft_flwr's client would), answers each message and drops
the reply into `outbox/NNNN.msg`, where the runner applies the owner's rules before anything
leaves. A `stop` file (the DS's stop signal, or the runner's) ends it.

With `--warm` it first imports what ClientApps commonly need, then reads its job from stdin,
one JSON line `{"job_dir": ..., "env": {...}}`, and becomes what a fresh start in that job would
be: the job's environment only, its code folder as working folder and first on the import path,
its `run/stdout.log` and `run/stderr.log` as output. stdin closed without a job: it just ends.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path

from federation.common.files import atomic_write
from federation.common.processes import exit_without_teardown, import_ahead
from federation.common.settings import log_level

log = logging.getLogger("federation.harness")

POLL = 0.05
# What a ClientApp and this harness import: about 2 s, done before the job arrives.
WARM = ("flwr.client", "flwr.common", "flwr.common.object_ref", "syft_flwr.config", "syft_flwr.serde",
        "syft_flwr.utils", "numpy", "pandas")


def take_job(line: str) -> Path:
    """Become the fresh start of the job `line` names (see the module's docstring)."""
    order = json.loads(line)
    job_dir = Path(order["job_dir"])
    # Python's own start-up addition (PEP 538's LC_CTYPE, where no locale is set) stays, as a
    # fresh start in the job's environment would have it.
    startup = {k: v for k, v in os.environ.items() if k == "LC_CTYPE"}
    for fd, name in ((1, "stdout.log"), (2, "stderr.log")):  # first: whatever fails next is in the job's log
        out = os.open(job_dir / "run" / name, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        os.dup2(out, fd)
        os.close(out)
    os.environ.clear()
    os.environ.update(startup | order["env"])
    os.chdir(job_dir / "code")
    sys.path.insert(0, str(job_dir / "code"))  # where `-m` from there would look first
    sys.argv[1:] = [str(job_dir)]
    return job_dir


def load_client(code_dir: Path):
    from uuid import uuid4

    from flwr.client.client_app import LoadClientAppError
    from flwr.common import Context
    from flwr.common.object_ref import load_app
    from flwr.common.record import RecordDict
    from syft_flwr.config import load_flwr_pyproject

    pyproject = load_flwr_pyproject(code_dir)
    config = pyproject["tool"]["flwr"]["app"]["config"]
    context = Context(run_id=uuid4().int, node_id=uuid4().int, node_config=config, state=RecordDict(),
                      run_config=config)
    app = load_app(pyproject["tool"]["flwr"]["app"]["components"]["clientapp"], LoadClientAppError, code_dir)
    return app, context


def answer(app, context, data: bytes) -> bytes:
    """The ClientApp's reply to one message, or a Flower error reply saying why it failed."""
    from flwr.common.constant import ErrorCode
    from flwr.common.message import Error
    from flwr.common.record import RecordDict
    from syft_flwr.serde import bytes_to_flower_message, flower_message_to_bytes
    from syft_flwr.utils import create_flwr_message

    message = bytes_to_flower_message(data)
    try:
        return flower_message_to_bytes(app(message=message, context=context))
    except Exception as e:
        log.error("the ClientApp raised: %s", traceback.format_exc())
        error = Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=f"{type(e).__name__}: {e}")
        return flower_message_to_bytes(create_flwr_message(
            content=RecordDict(), reply_to=message, message_type=message.metadata.message_type,
            dst_node_id=message.metadata.src_node_id, group_id=message.metadata.group_id, error=error))


def serve(job_dir: Path) -> int:
    inbox, outbox = job_dir / "inbox", job_dir / "outbox"
    app, context = load_client(job_dir / "code")
    log.info("ClientApp loaded; waiting for messages")
    done: set[str] = set()
    while not (job_dir / "stop").exists():
        for path in sorted(inbox.glob("*.msg")):
            if path.name in done:
                continue
            done.add(path.name)
            reply = answer(app, context, path.read_bytes())
            atomic_write(outbox / path.name, reply)  # the runner never reads half a reply
            log.info("answered %s (%d bytes)", path.name, len(reply))
        time.sleep(POLL)
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["--warm"]:
        warming = import_ahead(WARM)
        line = sys.stdin.readline()
        if not line.strip():
            return 0  # the executor ended without a job for us
        warming.join()  # the job's own imports would only wait for the same module locks
        job_dir = take_job(line)
    else:
        job_dir = Path(argv[0])
    logging.basicConfig(level=log_level(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    return serve(job_dir)


if __name__ == "__main__":
    exit_without_teardown(main(sys.argv[1:]))
