"""ServerApp: two rounds (sums, then squared deviations), pooled mean and variance per column;
moments.json into RESULTS_DIR, moments.png into the working folder."""

from __future__ import annotations

import json
import os
import time
from logging import INFO, WARNING
from pathlib import Path

from flwr.common import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.server import Grid, ServerApp

app = ServerApp()


def ask(grid: Grid, nodes: list[int], config: dict, timeout: float | None) -> dict[int, dict]:
    """Each node's usable reply, by node."""
    messages = [Message(content=RecordDict({"config": ConfigRecord(config)}), message_type=MessageType.QUERY,
                        dst_node_id=node) for node in nodes]
    usable = {}
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            log(WARNING, "moments: node %s answered with an error: %s", reply.metadata.src_node_id, reply.error.reason)
            continue
        usable[int(reply.metadata.src_node_id)] = dict(reply.content["moments"])
    return usable


def wait_for_nodes(grid: Grid, wanted: int, wait: float = 60.0) -> list[int]:
    """The grid's nodes once it knows `wanted` of them (Flower's simulation registers them as
    they start); after `wait` s, those it knows."""
    deadline = time.monotonic() + wait
    while len(nodes := sorted(grid.get_node_ids())) < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    return nodes


def split(reply: dict) -> dict[str, dict[str, float]]:
    """{"n:age": 3, "sum:age": 126.0} -> {"n": {"age": 3}, "sum": {"age": 126.0}}."""
    out: dict[str, dict[str, float]] = {}
    for key, value in reply.items():
        kind, column = key.split(":", 1)
        out.setdefault(kind, {})[column] = value
    return out


@app.main()
def main(grid: Grid, context: Context) -> None:
    timeout = float(os.environ.get("SYFT_FLWR_MSG_TIMEOUT", "120"))
    nodes = wait_for_nodes(grid, int(context.run_config.get("min-nodes", 1)))
    sums = {node: split(reply) for node, reply in ask(grid, nodes, {"step": "sums"}, timeout).items()}
    if not sums:
        raise RuntimeError("round 1: no owner replied")
    columns = sorted(set.intersection(*(set(s["n"]) for s in sums.values())))
    sent_means = {c: sum(s["sum"][c] for s in sums.values()) / sum(s["n"][c] for s in sums.values())
                  for c in columns}
    squares = {node: split(reply)["ss"] for node, reply in
               ask(grid, sorted(sums), {"step": "squares"} | {f"mean:{c}": m for c, m in sent_means.items()},
                   timeout).items()}
    # Only owners that answered both rounds count: their own mean, and their squared deviations
    # moved from the mean sent to it (sum (x - m)^2 = sum (x - m1)^2 - n (m - m1)^2).
    both = [node for node in sums if node in squares]
    if not both:
        raise RuntimeError("round 2: no owner replied")
    result = {"replied": [len(sums), len(squares)], "counted": len(both), "columns": {}}
    for c in columns:
        n = sum(sums[node]["n"][c] for node in both)
        mean = sum(sums[node]["sum"][c] for node in both) / n
        ss = sum(squares[node][c] for node in both) - n * (mean - sent_means[c]) ** 2
        result["columns"][c] = {"n": int(n), "mean": mean, "variance": ss / (n - 1) if n > 1 else None}
    log(INFO, "moments: %d column(s) from %d owner(s)", len(columns), len(both))
    if context.run_config.get("write-json", True):
        out = Path(os.environ.get("RESULTS_DIR") or "results")
        out.mkdir(parents=True, exist_ok=True)
        (out / "moments.json").write_text(json.dumps(result, indent=2) + "\n")
    figure(result, Path("moments.png"))


def figure(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = list(result["columns"])
    means = [result["columns"][c]["mean"] for c in columns]
    sds = [(result["columns"][c]["variance"] or 0) ** 0.5 for c in columns]
    fig, ax = plt.subplots(figsize=(max(4, len(columns)), 3))
    ax.bar(columns, means, yerr=sds, capsize=4)
    ax.set_title("mean ± sd per column, all owners")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
