"""scripts/bench: the figures behind the performance targets, printed, never asserted.

Targets: warm up -> aggregate.json <= 15 s with 2 owners and <= 30 s with 8; a Flower
round's transport (first message pushed -> every reply pulled) <= 1 s; image <= 1.2 GB; the
DS's whole run (login -> results, a second run on the network now up) no slower than the
same app through Flower's own deployment (SuperLink and SuperNodes,
scripts/flower_deployment.py) and beside syft_flwr.run in one process.

    scripts/bench [--owners 2,4,8] [--no-build] [--no-inprocess] [--no-flower]
    SYFTBOX_SYNC_INTERVAL=0.25 scripts/bench --owners 2,8 --no-build     (another sync loop)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
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


MIB = {"B": 1 / 2**20, "KiB": 1 / 1024, "MiB": 1, "GiB": 1024}


def container_stats(project: str) -> dict[str, tuple[float, float]]:
    """service -> (memory MiB, CPU %) of the project's running containers, right now."""
    out = sh("docker", "stats", "--no-stream", "--format", "{{.Name}}\t{{.MemUsage}}\t{{.CPUPerc}}").stdout
    stats = {}
    for line in out.splitlines():
        name, mem, cpu = line.split("\t")
        if not name.startswith(f"{project}-") or not name.endswith("-1"):
            continue
        m = re.match(r"([\d.]+)(\w+)", mem.split("/")[0].strip())
        stats[name[len(project) + 1:-2]] = (float(m.group(1)) * MIB[m.group(2)], float(cpu.rstrip("%")))
    return stats


class PeakMemory(threading.Thread):
    """The highest memory each container reached while the run went on."""

    def __init__(self, project: str):
        super().__init__(daemon=True)
        self.project, self.peak, self.done = project, {}, threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            for service, (mem, _) in container_stats(self.project).items():
                self.peak[service] = max(mem, self.peak.get(service, 0.0))


def with_owners(count: int) -> dict:
    """up -> aggregate.json with `count` demo owners (scripts/owners --demo), images built."""
    root = Path(tempfile.mkdtemp(prefix=f"bench-owners-{count}-"))
    sh(sys.executable, str(REPO / "scripts" / "owners.py"), "--demo", str(count), "--root", str(root))
    stack = Stack(f"federation-bench{count}", [str(root / "compose.owners.yaml")])
    memory = PeakMemory(stack.project)
    try:
        stack.compose("down", "-v", "--remove-orphans", check=False)
        t0 = time.time()
        stack.compose("up", "-d")
        memory.start()
        aggregate = stack.results / "aggregate.json"
        while not aggregate.exists() and time.time() - t0 < 900:
            time.sleep(0.1)
        until_results = time.time() - t0
        record = stack.wait_run(started_after=0)
        if record.status != "ok":
            raise RuntimeError(f"the run with {count} owners failed: {record.error}")
        memory.done.set()
        time.sleep(5)  # then what merely staying in sync costs
        idle_cpu = {s: cpu for s, (_, cpu) in container_stats(stack.project).items()}
        # A second run on the network now up, as a DS runs a study again (the first one shared
        # the machine with every container's start): the whole run, login to results.
        t1 = time.time()
        stack.compose("restart", "ds")
        warm = stack.wait_run(started_after=t1 - 1)
        if warm.status != "ok":
            raise RuntimeError(f"the second run with {count} owners failed: {warm.error}")
        return {"owners": count, "up_to_results": until_results, "login_to_results": record.seconds,
                "warm_login_to_results": warm.seconds, "warm_steps": warm.steps, "steps": record.steps,
                "round": round_seconds(stack), "memory": memory.peak, "idle_cpu": idle_cpu}
    finally:
        memory.done.set()
        stack.down()


def by_role(values: dict[str, float]) -> tuple[float, float, float]:
    """(ds, sync server, mean over owners) of a per-service figure."""
    owners = [v for s, v in values.items() if re.fullmatch(r"do\d+", s)]
    return values.get("ds", 0.0), values.get("syftbox", 0.0), sum(owners) / max(len(owners), 1)


def shares(prefix: str, count: int = 2) -> Path:
    """A work folder with the public Pima file cut in `count` shares, do1/ … (as the demo owners')."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    work.chmod(0o777)  # written by the image's uid 1000
    rows = list(csv.reader(PIMA.open()))
    header, body = rows[0], rows[1:]
    for i in range(count):
        part = body[i * len(body) // count:(i + 1) * len(body) // count]
        (work / f"do{i + 1}").mkdir()
        with (work / f"do{i + 1}" / "data.csv").open("w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows([header, *part])
        (work / f"do{i + 1}").chmod(0o755)
        (work / f"do{i + 1}" / "data.csv").chmod(0o644)
    return work


def flower_deployment(count: int = 2) -> dict:
    """The same app on the same shares through Flower's own deployment (scripts/flower_deployment.py:
    a SuperLink and a SuperNode per share, as processes in one container of the image)."""
    work = shares("bench-flower-", count)
    out = subprocess.run(["docker", "run", "--rm", "-i", "-v", f"{work}:/bench", "--entrypoint", "python", IMAGE,
                          "-", "/bench", *(f"/bench/do{i + 1}" for i in range(count))],
                         input=(REPO / "scripts" / "flower_deployment.py").read_text(), capture_output=True, text=True)
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if out.returncode != 0 or line is None:
        raise RuntimeError(f"Flower's deployment failed: {(out.stdout + out.stderr)[-3000:]}")
    return json.loads(line[7:])


def in_one_process() -> float:
    """The same app and the same two demo shares through syft_flwr.run, in one container."""
    work = shares("bench-inprocess-")
    (work / "results").mkdir()
    os.chmod(work / "results", 0o777)
    out = sh("docker", "run", "--rm", "-v", f"{work}:/bench", IMAGE,
             "inprocess", "/bench/results", "/bench/do1", "/bench/do2").stdout
    result = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    if result["replied"] != 2:
        raise RuntimeError(f"in-process run got {result['replied']} of 2 replies")
    return result["seconds"]


def print_scaling(runs: list[dict]) -> None:
    print(f"sync loop {os.environ.get('SYFTBOX_SYNC_INTERVAL', '2')} s, "
          f"syft-flwr poll {os.environ.get('SYFT_FLWR_POLL_INTERVAL', '0.25')} s, {os.cpu_count()} CPUs")
    print("owners | up->results | round transport | DS steps (s)                      "
          "| peak MiB ds/server/owner | idle CPU % ds/server/owner")
    for r in runs:
        steps = " ".join(f"{k[:5]} {v:.1f}" for k, v in r["steps"].items())
        rnd = f"{r['round']:.2f} s" if r["round"] is not None else "n/a"
        mem = "/".join(f"{v:.0f}" for v in by_role(r["memory"]))
        cpu = "/".join(f"{v:.0f}" for v in by_role(r["idle_cpu"]))
        print(f"{r['owners']:6d} | {r['up_to_results']:9.1f} s | {rnd:>15} | {steps:33} | {mem:>24} | {cpu:>26}")
    first, last = runs[0], runs[-1]
    if len(runs) > 1:
        print(f"growth {last['owners']}/{first['owners']} owners: up->results x{last['up_to_results'] / first['up_to_results']:.2f}"
              + (f", round x{last['round'] / first['round']:.2f}" if first["round"] and last["round"] else ""))


def main() -> None:
    parser = argparse.ArgumentParser(prog="scripts/bench")
    parser.add_argument("--owners", default="2,4,8", help="owner counts to run, e.g. 2,4,8")
    parser.add_argument("--no-build", action="store_true", help="skip the cold build (the image must exist)")
    parser.add_argument("--no-inprocess", action="store_true", help="skip syft_flwr.run in one process")
    parser.add_argument("--no-flower", action="store_true", help="skip Flower's own deployment (SuperLink, SuperNodes)")
    args = parser.parse_args()
    print(f"base image: {os.environ['BASE_IMAGE']}")
    if not args.no_build:
        print(f"cold build (no cache)          {cold_build():7.1f} s")
    print(f"image size                     {image_size():7.2f} GB   (target <= 1.2)")
    runs = [with_owners(int(n)) for n in args.owners.split(",")]
    print("targets: up->results <= 15 s with 2 owners, <= 30 s with 8; round transport <= 1 s")
    print_scaling(runs)
    if not args.no_inprocess:
        inproc = in_one_process()
        print(f"syft_flwr.run, one process, 2 owners   {inproc:7.1f} s")
        two = next((r for r in runs if r["owners"] == 2), None)
        if two:
            print(f"ratio DS server step / in-process      {two['steps']['server'] / inproc:5.2f}")
            print(f"ratio up->results / in-process         {two['up_to_results'] / inproc:5.2f}")
    if not args.no_flower:
        flower = flower_deployment(2)
        print(f"Flower's deployment, 2 SuperNodes      {flower['run_to_results']:7.1f} s  flwr run -> aggregate.json "
              f"(SuperLink up in {flower['links_up']:.1f} s; {flower['replied']} replies)")
        two = next((r for r in runs if r["owners"] == 2), None)
        if two:
            print(f"DS login->results, a second run         {two['warm_login_to_results']:7.1f} s  "
                  + " ".join(f"{k[:5]} {v:.1f}" for k, v in two["warm_steps"].items()))
            print(f"ratio DS login->results / Flower's     {two['warm_login_to_results'] / flower['run_to_results']:5.2f}"
                  "   (target <= 1.0; the second run)")


if __name__ == "__main__":
    main()
