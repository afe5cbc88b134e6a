"""scripts/bench: the figures behind the performance targets, printed, never asserted.

Targets (issue "core stack"): warm up -> aggregate.json <= 30 s with 2 owners; image <= 1.2 GB.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
import tempfile
import time
from datetime import datetime
from pathlib import Path

from stack import REPO, Stack

IMAGE = "federation:latest"
PIMA = REPO.parent / "shared" / "data" / "pima-indians-diabetes.csv"


def sh(*cmd: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, check=True, **kw)


def cold_build() -> float:
    """A build with no cache, from the base image (and the wheelhouse when it has wheels)."""
    t0 = time.monotonic()
    sh("docker", "build", "-q", "--no-cache", "-f", str(REPO / "docker/Dockerfile"),
       "--build-arg", f"BASE_IMAGE={os.environ['BASE_IMAGE']}", "-t", IMAGE, str(REPO))
    return time.monotonic() - t0


def image_size() -> float:
    return int(sh("docker", "image", "inspect", IMAGE, "--format", "{{.Size}}").stdout) / 1e9


def round_seconds(stack: Stack) -> float | None:
    """First message pushed -> every reply pulled, from the DS's Flower server log."""
    ds = stack.compose("ps", "-q", "ds").stdout.strip()
    log = sh("docker", "exec", ds, "sh", "-c", "cat $(ls -d federation/state/runs/*/ | tail -1)server.log").stdout
    stamp = r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)"
    pushed = re.search(stamp + r".*Pushed ENCRYPTED message", log, re.M)
    pulled = re.search(stamp + r".*Successfully pulled \d+ messages", log, re.M)
    if not (pushed and pulled):
        return None
    parse = lambda m: datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S.%f")
    return (parse(pulled) - parse(pushed)).total_seconds()


def warm_up_to_results() -> dict:
    stack = Stack("federation-bench")
    try:
        stack.compose("down", "-v", "--remove-orphans", check=False)
        t0 = time.time()
        stack.compose("up", "-d")
        aggregate = stack.results / "aggregate.json"
        while not aggregate.exists() and time.time() - t0 < 600:
            time.sleep(0.1)
        until_results = time.time() - t0
        record = stack.wait_run(started_after=0)
        if record["status"] != "ok":
            raise RuntimeError(f"the run failed: {record.get('error')}")
        return {"up_to_results": until_results, "steps": record["steps"], "round": round_seconds(stack)}
    finally:
        stack.down()


def in_one_process() -> float:
    """The same app and the same two demo shares through syft_flwr.run, in one container."""
    work = Path(tempfile.mkdtemp(prefix="bench-inprocess-"))
    work.chmod(0o755)  # read by the image's uid 1000
    rows = list(csv.reader(PIMA.open()))
    header, body = rows[0], rows[1:]
    half = len(body) // 2
    for i, part in enumerate((body[:half], body[half:]), start=1):
        (work / f"do{i}").mkdir()
        with (work / f"do{i}" / "data.csv").open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *part])
        (work / f"do{i}").chmod(0o755)
        (work / f"do{i}" / "data.csv").chmod(0o644)
    (work / "results").mkdir()
    os.chmod(work / "results", 0o777)
    out = sh("docker", "run", "--rm", "-v", f"{work}:/bench", IMAGE,
             "inprocess", "/bench/results", "/bench/do1", "/bench/do2").stdout
    result = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    if result["replied"] != 2:
        raise RuntimeError(f"in-process run got {result['replied']} of 2 replies")
    return result["seconds"]


def main() -> None:
    print(f"base image: {os.environ['BASE_IMAGE']}")
    print(f"cold build (no cache)          {cold_build():7.1f} s")
    print(f"image size                     {image_size():7.2f} GB   (target <= 1.2)")
    warm = warm_up_to_results()
    print(f"warm up -> aggregate.json      {warm['up_to_results']:7.1f} s   (target <= 30, 2 owners; images built)")
    print("  DS steps: " + ", ".join(f"{k} {v:.1f}" for k, v in warm["steps"].items()))
    if warm["round"] is not None:
        print(f"Flower round over sync server  {warm['round']:7.2f} s   (push -> every reply pulled)")
    inproc = in_one_process()
    server = warm["steps"]["server"]
    print(f"syft_flwr.run, one process     {inproc:7.1f} s")
    print(f"ratio DS server step / in-process   {server / inproc:5.2f}")
    print(f"ratio up->results / in-process      {warm['up_to_results'] / inproc:5.2f}")


if __name__ == "__main__":
    main()
