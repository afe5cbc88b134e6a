"""The DS's Flower server: the bootstrapped app's `main.py` run in this environment (no fresh
venv), its messages logged (replies.py), watched while it runs, and judged when it ends.

syft-flwr catches an error of the ServerApp, logs it and exits 0: the log is read for it.
The server runs in a process session of its own, stopped whole if we are stopped. The
workflow starts it while the owners review the jobs (`ServerProcess`), so that its Python
start-up is not on the run's path.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
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
GO = "server-go"  # in the run's folder: the started server runs its ServerApp once this exists
APP_IN_GO_FILE = "-"  # the server's app argument when the go file will name the app folder


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


class ServerProcess:
    """The Flower server, started ahead of its round: its process imports what the server needs
    while the DS logs in, submits and the owners review the jobs (seconds of Python start-up off
    the run's path), and runs the ServerApp once `go()` is called. `wait` follows it to its end
    and judges it; `stop` ends it early (a run that fails before its round)."""

    def __init__(self, settings: ScientistSettings, app_dir: Path | None, run_dir: Path, ahead: bool = True):
        """`ahead`: it waits for `go()` (else it runs at once: nothing to overlap with); the app
        may then be named by `go(app_dir)`, once it is bootstrapped."""
        if app_dir is None and not ahead:
            raise ValueError("a server that runs at once needs its app folder")
        self.settings, self.app_dir = settings, app_dir
        self.server_log, self.messages, self.work = run_dir / "server.log", run_dir / MESSAGE_LOG, run_dir / WORK
        self.go_file = run_dir / GO
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.messages.unlink(missing_ok=True)
        self.go_file.unlink(missing_ok=True)
        waits = [str(self.go_file), str(os.getpid())] if ahead else []
        with open(self.server_log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "federation.scientist.logged_server", str(app_dir or APP_IN_GO_FILE),
                 str(self.messages), *waits],
                cwd=self.work, env=server_environment(settings), stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True)
        self.went = self.collected = False

    def go(self, app_dir: Path | None = None) -> None:
        """Run the ServerApp of `app_dir` (or of the folder it was started with)."""
        if app_dir is not None and self.app_dir is not None and Path(app_dir) != Path(self.app_dir):
            raise ValueError(f"this server was started for {self.app_dir}, not {app_dir}")
        self.app_dir = app_dir or self.app_dir
        if self.app_dir is None:
            raise ValueError("go() needs the app folder: the server was started without one")
        pending = self.go_file.with_suffix(".pending")  # the server reads the go file whole
        pending.write_text(str(self.app_dir))
        os.replace(pending, self.go_file)
        self.went = True

    def stop(self) -> None:
        """End it if it still runs (we are being stopped, or the run failed before its round),
        and, if it ran its ServerApp, put its log and files into the results."""
        if self.proc.poll() is None:
            stop_session(self.proc.pid)
        self.proc.wait()
        if self.went and not self.collected:
            self.collected = True
            collect(self.settings.results_dir, self.server_log, self.work)

    def wait(self, on_tick: Callable[[int, int | None], None] = lambda done, total: None) -> list[Round]:
        """Until it ends: its rounds as the messages tell, `on_tick(rounds done, rounds total or
        None)` every POLL s meanwhile."""
        total = server_rounds(self.app_dir)
        try:
            while self.proc.poll() is None:
                on_tick(rounds_done(read_rounds(self.messages)), total)
                try:
                    self.proc.wait(timeout=POLL)  # returns the moment it ends
                except subprocess.TimeoutExpired:
                    pass
        finally:
            self.stop()
        rounds = read_rounds(self.messages)
        on_tick(rounds_done(rounds, server_running=False), total)
        text = self.server_log.read_text(errors="replace")
        if self.proc.returncode != 0:
            raise WorkflowError(f"Flower server exited with {self.proc.returncode}:\n"
                                + "\n".join(text.splitlines()[-15:]))
        failed = SERVER_ERROR.search(text)
        if failed:
            raise WorkflowError(f"the Flower server failed: {failed.group(1).strip()}")
        return rounds


def run_server(settings: ScientistSettings, app_dir: Path, run_dir: Path,
               on_tick: Callable[[int, int | None], None] = lambda done, total: None) -> list[Round]:
    """Run the server to its end; its rounds as the messages tell. `on_tick(rounds done, rounds
    total or None)` every POLL s meanwhile. Its log and whatever it wrote in its working folder
    join the results, however it ended."""
    server = ServerProcess(settings, app_dir, run_dir, ahead=False)
    server.go()
    return server.wait(on_tick)


def collect(results_dir: Path, server_log: Path, work: Path) -> None:
    """The Flower server's log, and the files its ServerApp wrote in its working folder, into
    the run's results (what it wrote into RESULTS_DIR is there already)."""
    results_dir.mkdir(parents=True, exist_ok=True)
    if server_log.is_file():
        shutil.copyfile(server_log, results_dir / "server.log")
    shutil.rmtree(results_dir / COLLECTED, ignore_errors=True)  # an earlier run's, in a folder not archived
    if any(work.iterdir()):
        shutil.copytree(work, results_dir / COLLECTED, symlinks=True)
