"""Host-side control of a compose stack for scripts/soak and scripts/bench (stdlib only).

Each tool runs its own stack (project name, results folder, port), so a demo a
person left running is not touched. The DS's run record is read with the project's own
RunRecord (stdlib only as well).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from federation.scientist.run_record import RunRecord, wait_for_run  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, project: str, extra_files: list[str] | None = None):
        self.project = project
        self.files = ["compose.yaml", *(extra_files or [])]
        self.results = Path(tempfile.mkdtemp(prefix=f"{project}-results-"))
        self.results.chmod(0o777)  # the DS writes as the image's uid 1000
        self.env = os.environ | {"RESULTS_HOST_DIR": str(self.results), "RESULTS_PORT": str(_free_port()),
                                 "NOTEBOOK_PORT": str(_free_port())}  # ds publishes the notebook's port too

    def compose(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = ["docker", "compose", "-p", self.project]
        for f in self.files:
            cmd += ["-f", str(REPO / f)]
        result = subprocess.run([*cmd, *args], env=self.env, capture_output=True, text=True)
        if check and result.returncode != 0:
            raise RuntimeError(f"docker compose {' '.join(args)}: {result.stderr[-2000:]}")
        return result

    def run_record(self) -> RunRecord | None:
        return RunRecord.read(self.results / "run.json")

    def wait_run(self, started_after: float, timeout: float = 600) -> RunRecord:
        """The DS's run record once a run that started after `started_after` has ended."""
        try:
            return wait_for_run(self.results / "run.json", started_after, timeout)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; see `docker compose -p {self.project} logs ds`") from None

    def exec(self, service: str, *cmd: str) -> str:
        """A command's output in the service's container (`docker exec`: its exit code counts)."""
        container = self.compose("ps", "-q", service).stdout.strip()
        result = subprocess.run(["docker", "exec", container, *cmd], capture_output=True, text=True)
        if result.returncode != 0:
            raise RuntimeError(f"{service}: {' '.join(cmd)}: {result.stderr[-2000:]}")
        return result.stdout

    def synced_files(self, parties: dict[str, str]) -> dict[str, int]:
        """Files in each party's synced tree (service -> email) and in the sync server's store."""
        count = "find {} -type f 2>/dev/null | wc -l"
        counts = {service: int(self.exec(service, "sh", "-c", count.format(
            f"/home/syft/federation/SyftBox/datasites/{email}"))) for service, email in parties.items()}
        counts["sync server"] = int(self.exec("syftbox", "sh", "-c", count.format("/home/syft/server/snapshot")))
        return counts

    def down(self) -> None:
        self.compose("down", "-v", "--remove-orphans", check=False)
        shutil.rmtree(self.results, ignore_errors=True)
