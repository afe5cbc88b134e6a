"""The DS's Flower server: the bootstrapped app's `main.py` run in this environment (no fresh
venv), its messages logged (replies.py), watched while it runs, and judged when it ends.

syft-flwr catches an error of the ServerApp, logs it and exits 0: the log is read for it.
The server runs in a process session of its own, stopped whole if we are stopped.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

from federation.common.processes import stop_session
from federation.common.settings import ScientistSettings, child_environment
from federation.scientist.errors import WorkflowError
from federation.scientist.replies import Round, read_rounds, rounds_done

SERVER_ERROR = re.compile(r"Server encountered an error: (.*)")
POLL = 0.5  # s between looks at the owners' job status while the server runs
MESSAGE_LOG = "messages.jsonl"  # in the run's folder: every message sent and answered (replies.py)
WORK = "server-work"  # the ServerApp's working folder; what it writes there joins the results
COLLECTED = "server-files"  # ... under this name in RESULTS_DIR


def server_rounds(app_dir: Path) -> int | None:
    """The rounds the app says it runs (`num-server-rounds`), if it says."""
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    rounds = config.get("tool", {}).get("flwr", {}).get("app", {}).get("config", {}).get("num-server-rounds")
    try:
        return int(rounds) if rounds is not None else None
    except (TypeError, ValueError):
        return None


def server_environment(settings: ScientistSettings) -> dict[str, str]:
    return child_environment(
        SYFTBOX_CLIENT_CONFIG_PATH=str(settings.party.config_path),
        RESULTS_DIR=str(settings.results_dir),
        DATASITES=",".join(settings.datasites),
        DATASET_NAME=settings.dataset,
        SYFT_FLWR_MSG_TIMEOUT=str(settings.round_timeout),
        MIN_REPLIES=str(settings.min_replies),
    )


def run_server(settings: ScientistSettings, app_dir: Path, run_dir: Path,
               on_tick: Callable[[int, int | None], None] = lambda done, total: None) -> list[Round]:
    """Run the server to its end; its rounds as the messages tell. `on_tick(rounds done, rounds
    total or None)` every POLL s meanwhile. Its log and whatever it wrote in its working folder
    join the results, however it ended."""
    import subprocess

    server_log, messages, work = run_dir / "server.log", run_dir / MESSAGE_LOG, run_dir / WORK
    total = server_rounds(app_dir)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    messages.unlink(missing_ok=True)
    with open(server_log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "federation.scientist.logged_server", str(app_dir), str(messages)],
                                cwd=work, env=server_environment(settings),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        while proc.poll() is None:
            on_tick(rounds_done(read_rounds(messages)), total)
            time.sleep(POLL)
    finally:
        if proc.poll() is None:  # we are being stopped: do not leave the server behind
            stop_session(proc.pid)
        proc.wait()
        collect(settings.results_dir, server_log, work)
    rounds = read_rounds(messages)
    on_tick(rounds_done(rounds, server_running=False), total)
    text = server_log.read_text(errors="replace")
    if proc.returncode != 0:
        raise WorkflowError(f"Flower server exited with {proc.returncode}:\n" + "\n".join(text.splitlines()[-15:]))
    failed = SERVER_ERROR.search(text)
    if failed:
        raise WorkflowError(f"the Flower server failed: {failed.group(1).strip()}")
    return rounds


def collect(results_dir: Path, server_log: Path, work: Path) -> None:
    """The Flower server's log, and the files its ServerApp wrote in its working folder, into
    the run's results (what it wrote into RESULTS_DIR is there already)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    if server_log.is_file():
        shutil.copyfile(server_log, results_dir / "server.log")
    shutil.rmtree(results_dir / COLLECTED, ignore_errors=True)  # an earlier run's, in a folder not archived
    if any(work.iterdir()):
        shutil.copytree(work, results_dir / COLLECTED, symlinks=True)
