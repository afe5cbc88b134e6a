"""Flower's own deployment of the same app, for scripts/bench to compare with: a SuperLink and
one SuperNode per owner share, as processes, from the pinned flwr (run inside the project's
image, which has it), insecure gRPC on localhost, then `flwr run` of the bundled app.

    python flower_deployment.py WORK SHARE_DIR...     (prints RESULT {...} last)

Times: the links up (every SuperNode connected), and `flwr run` -> aggregate.json. Each
SuperNode reads its share as the owners' jobs do (DATA_DIR). Nothing leaves the container.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

APP = Path("/app/fed_app")  # the bundled app, as the image holds it


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise TimeoutError(f"nothing listens on {port} after {timeout:.0f} s")


def main() -> int:
    work, shares = Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]]
    env = os.environ | {"FLWR_HOME": str(work / "flwr-home")}
    serverappio, fleet, control = free_port(), free_port(), free_port()
    app = work / "app"
    shutil.rmtree(app, ignore_errors=True)
    shutil.copytree(APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    with open(app / "pyproject.toml", "a") as f:
        f.write(f'\n[tool.flwr.federations.bench]\naddress = "127.0.0.1:{control}"\ninsecure = true\n')
    results = work / "results"
    shutil.rmtree(results, ignore_errors=True)
    results.mkdir()
    procs: list[subprocess.Popen] = []
    logs = work / "logs"
    logs.mkdir(exist_ok=True)

    def start(name: str, cmd: list[str], extra: dict | None = None) -> None:
        out = open(logs / f"{name}.log", "w")
        procs.append(subprocess.Popen(cmd, env=env | (extra or {}), stdout=out, stderr=subprocess.STDOUT,
                                      cwd=work, start_new_session=True))

    started = time.monotonic()
    try:
        start("superlink", ["flower-superlink", "--insecure", "--serverappio-api-address", f"127.0.0.1:{serverappio}",
                            "--fleet-api-address", f"127.0.0.1:{fleet}", "--control-api-address",
                            f"127.0.0.1:{control}", "--database", str(work / "state.db")])
        wait_port(control)
        for k, share in enumerate(shares):
            start(f"supernode-{k}", ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{fleet}",
                                     "--clientappio-api-address", f"127.0.0.1:{free_port()}"],
                  {"DATA_DIR": str(share)})
        links_up = time.monotonic() - started
        run_started = time.monotonic()
        run = subprocess.run(["flwr", "run", str(app), "bench", "--stream", "--run-config",
                              f"min-nodes={len(shares)} results-dir='{results}'"],
                             env=env, capture_output=True, text=True, timeout=600, cwd=work)
        aggregate = results / "aggregate.json"
        deadline = time.monotonic() + 60
        while not aggregate.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        seconds = time.monotonic() - run_started
        if not aggregate.exists():
            tail = "\n".join((run.stdout + run.stderr).splitlines()[-30:])
            raise RuntimeError(f"flwr run wrote no aggregate.json (exit {run.returncode}):\n{tail}")
        replied = json.loads(aggregate.read_text()).get("replied")
    finally:
        for p in procs:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
    print("RESULT " + json.dumps({"links_up": round(links_up, 2), "run_to_results": round(seconds, 2),
                                  "replied": replied, "nodes": len(shares)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
