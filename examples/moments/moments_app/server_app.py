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


def ask(grid: Grid, nodes: list[int], config: dict, timeout: float | None) -> list[dict]:
    messages = [Message(content=RecordDict({"config": ConfigRecord(config)}), message_type=MessageType.QUERY,
                        dst_node_id=node) for node in nodes]
    usable = []
    for reply in grid.send_and_receive(messages, timeout=timeout):
        if reply.has_error():
            log(WARNING, "moments: node %s answered with an error: %s", reply.metadata.src_node_id, reply.error.reason)
            continue
        usable.append(dict(reply.content["moments"]))
    return usable


def wait_for_nodes(grid: Grid, wanted: int, wait: float = 60.0) -> list[int]:
    """The grid's nodes once it knows `wanted` of them (Flower's simulation registers them as
    they start); after `wait` s, those it knows."""
    deadline = time.monotonic() + wait
    while len(nodes := sorted(grid.get_node_ids())) < wanted and time.monotonic() < deadline:
        time.sleep(0.5)
    return nodes


@app.main()
def main(grid: Grid, context: Context) -> None:
    timeout = float(os.environ.get("SYFT_FLWR_MSG_TIMEOUT", "120"))
    nodes = wait_for_nodes(grid, int(context.run_config.get("min-nodes", 1)))
    sums = ask(grid, nodes, {"step": "sums"}, timeout)
    if not sums:
        raise RuntimeError("round 1: no owner replied")
    n, total = {}, {}
    for reply in sums:
        for key, value in reply.items():
            kind, column = key.split(":", 1)
            target = n if kind == "n" else total
            target[column] = target.get(column, 0) + value
    means = {c: total[c] / n[c] for c in n if n[c]}
    squares = ask(grid, nodes, {"step": "squares"} | {f"mean:{c}": m for c, m in means.items()}, timeout)
    ss = {}
    for reply in squares:
        for key, value in reply.items():
            column = key.split(":", 1)[1]
            ss[column] = ss.get(column, 0.0) + value
    result = {"replied": [len(sums), len(squares)],
              "columns": {c: {"n": int(n[c]), "mean": means[c],
                              "variance": ss[c] / (n[c] - 1) if n[c] > 1 and c in ss else None} for c in means}}
    log(INFO, "moments: %d column(s) from %d owner(s)", len(means), len(sums))
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
