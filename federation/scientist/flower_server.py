"""The DS's Flower server: the bootstrapped app's `main.py` run in this environment (no fresh
venv), watched while it runs, and judged when it ends.

syft-flwr catches an error of the ServerApp, logs it and exits 0: the log is read for it.
The server runs in a process session of its own, stopped whole if we are stopped.
"""

from __future__ import annotations

import re
import sys
import time
import tomllib
from pathlib import Path
from typing import Callable

from federation.common.processes import stop_session
from federation.common.settings import ScientistSettings, child_environment
from federation.scientist.errors import WorkflowError

SERVER_ERROR = re.compile(r"Server encountered an error: (.*)")
ROUND_DONE = re.compile(r"fed_app server: round (\d+): wrote")
POLL = 0.5  # s between looks at the owners' job status while the server runs


def server_rounds(app_dir: Path) -> int:
    config = tomllib.loads((app_dir / "pyproject.toml").read_text())
    return int(config["tool"]["flwr"]["app"]["config"].get("num-server-rounds", 1))


def rounds_done(server_log: Path) -> int:
    """Rounds the Flower server finished so far, from its log."""
    try:
        return len(ROUND_DONE.findall(server_log.read_text(errors="replace")))
    except FileNotFoundError:
        return 0


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
               on_tick: Callable[[int, int], None] = lambda done, total: None) -> None:
    """Run the server to its end; `on_tick(rounds done, rounds total)` every POLL s meanwhile."""
    import subprocess

    server_log = run_dir / "server.log"
    total = server_rounds(app_dir)
    with open(server_log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "main.py"], cwd=app_dir, env=server_environment(settings),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        while proc.poll() is None:
            on_tick(rounds_done(server_log), total)
            time.sleep(POLL)
    finally:
        if proc.poll() is None:  # we are being stopped: do not leave the server behind
            stop_session(proc.pid)
        proc.wait()
    on_tick(rounds_done(server_log), total)
    text = server_log.read_text(errors="replace")
    if proc.returncode != 0:
        raise WorkflowError(f"Flower server exited with {proc.returncode}:\n" + "\n".join(text.splitlines()[-15:]))
    failed = SERVER_ERROR.search(text)
    if failed:
        raise WorkflowError(f"the Flower server failed: {failed.group(1).strip()}")
