"""ServerApp: query every datasite once per round, aggregate, write JSON + figures."""

from __future__ import annotations

import json
import os
import time
import zlib
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any, Iterable, Mapping, Optional

from flwr.common import ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.common.logger import log
from flwr.server import Grid, ServerApp

from fed_app.atomic import atomic_file
from fed_app.stats import aggregate, from_metrics

REPLY_KEY = "query_results"
DEFAULT_DATASET = "pima-indians-diabetes-database"

app = ServerApp()


# --------------------------------------------------------------------------- helpers


def _env_float(name: str) -> Optional[float]:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise ValueError(f"environment variable {name}={raw!r} is not a number") from None


def reply_timeout(run_config: Mapping[str, Any]) -> Optional[float]:
    """Seconds to wait for replies; env SYFT_FLWR_MSG_TIMEOUT wins; <= 0 means no limit."""
    value = _env_float("SYFT_FLWR_MSG_TIMEOUT")
    if value is None:
        value = float(run_config.get("reply-timeout", 600.0))
    return value if value > 0 else None


def min_replies(expected: int) -> int:
    """How many replies a round needs to count: env MIN_REPLIES, else 1 (any reply)."""
    value = _env_float("MIN_REPLIES")
    if value is None:
        return 1
    if value != int(value) or value < 1:
        raise ValueError(f"environment variable MIN_REPLIES={value:g} is not a whole number >= 1")
    if value > expected:
        raise ValueError(f"MIN_REPLIES={value:g} but only {expected} datasite(s) take part")
    return int(value)


def results_dir(run_config: Mapping[str, Any]) -> Path:
    return Path(os.environ.get("RESULTS_DIR", "").strip() or run_config.get("results-dir", "results"))


def node_email_map(grid: Grid) -> dict[int, str]:
    """Node id -> datasite email.

    syft_flwr's SyftGrid derives node ids as ``zlib.crc32(email)`` and keeps the map in
    ``grid.client_map``; env DATASITES (comma-separated) is mapped the same way.
    """
    mapping: dict[int, str] = {}
    client_map = getattr(grid, "client_map", None)
    if isinstance(client_map, Mapping):
        mapping.update({int(k): str(v) for k, v in client_map.items()})
    for email in expected_datasites():
        mapping.setdefault(zlib.crc32(email.encode()), email)
    return mapping


def expected_datasites() -> list[str]:
    return sorted(e.strip() for e in os.environ.get("DATASITES", "").split(",") if e.strip())


def wait_for_nodes(grid: Grid, min_nodes: int, wait_s: float, poll_s: float = 0.25) -> list[int]:
    """Bounded wait until the grid knows at least ``min_nodes`` nodes."""
    deadline = time.monotonic() + wait_s
    last_logged = None
    while True:
        node_ids = sorted(int(n) for n in grid.get_node_ids())
        if len(node_ids) >= min_nodes:
            log(INFO, "fed_app server: %d node(s) available", len(node_ids))
            return node_ids
        if time.monotonic() >= deadline:
            raise RuntimeError(
                f"only {len(node_ids)} node(s) connected after {wait_s:g}s, "
                f"need min-nodes={min_nodes}"
            )
        if last_logged is None or time.monotonic() - last_logged >= 10:
            log(INFO, "fed_app server: %d/%d node(s), waiting up to %gs...",
                len(node_ids), min_nodes, wait_s)
            last_logged = time.monotonic()
        time.sleep(poll_s)


def decode_replies(replies: Iterable[Message]) -> tuple[list[dict], list[int]]:
    """Decode good replies; skip (and log) errors and malformed content."""
    stats, nodes = [], []
    for reply in replies:
        src = int(reply.metadata.src_node_id)
        if reply.has_error():
            log(ERROR, "fed_app server: node %d replied with error: %s", src, reply.error.reason)
            continue
        try:
            stats.append(from_metrics(dict(reply.content[REPLY_KEY])))
        except Exception as exc:  # noqa: BLE001 - one bad reply must not stop the run
            log(ERROR, "fed_app server: node %d: cannot decode reply: %r", src, exc)
            continue
        nodes.append(src)
    return stats, nodes


def datasite_names(replying: list[int], mapping: Mapping[int, str]) -> list[str]:
    if replying and all(n in mapping for n in replying):
        return sorted(mapping[n] for n in replying)
    expected = expected_datasites()
    if expected:
        return expected
    return sorted(f"node-{n}" for n in replying)


def write_json_atomic(path: Path, payload: Any) -> None:
    with atomic_file(path, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=2)
        fh.write("\n")


def write_results(out_dir: str | Path, result: Mapping[str, Any]) -> Path:
    """Write ``aggregate.json`` (atomically) and ``figures/<feature>.png``."""
    from fed_app.figures import write_figures  # matplotlib only where needed

    out_dir = Path(out_dir)
    write_figures(result["features"], out_dir / "figures")
    path = out_dir / "aggregate.json"
    write_json_atomic(path, result)
    return path


# --------------------------------------------------------------------------- main


@app.main()
def main(grid: Grid, context: Context) -> None:
    cfg = context.run_config
    num_rounds = int(cfg.get("num-server-rounds", 1))
    min_nodes = int(cfg.get("min-nodes", 2))
    node_wait = float(cfg.get("node-wait-timeout", 60.0))
    timeout = reply_timeout(cfg)
    out_dir = results_dir(cfg)
    dataset = os.environ.get("DATASET_NAME", "").strip() or str(
        cfg.get("dataset-name", DEFAULT_DATASET)
    )

    for rnd in range(1, num_rounds + 1):
        node_ids = wait_for_nodes(grid, min_nodes, node_wait)
        messages = [
            Message(
                content=RecordDict({"config": ConfigRecord({"round": rnd})}),
                dst_node_id=nid,
                message_type=MessageType.QUERY,
                group_id=str(rnd),
            )
            for nid in node_ids
        ]
        log(INFO, "fed_app server: round %d: querying %d node(s), timeout=%s",
            rnd, len(messages), timeout)
        replies = list(grid.send_and_receive(messages, timeout=timeout))
        stats, replying = decode_replies(replies)
        if len(stats) < len(node_ids):
            log(WARNING, "fed_app server: round %d: %d of %d node(s) replied usable results",
                rnd, len(stats), len(node_ids))
        if not stats:
            raise RuntimeError(
                f"round {rnd}: no usable replies from {len(node_ids)} node(s); "
                "see the clients' errors above"
            )
        names = node_email_map(grid)
        missing = sorted(names.get(n, f"node-{n}") for n in set(node_ids) - set(replying))
        needed = min_replies(len(node_ids))
        if len(stats) < needed:
            raise RuntimeError(
                f"round {rnd}: only {len(stats)} of {len(node_ids)} datasite(s) replied within "
                f"{timeout}s, at least {needed} needed (MIN_REPLIES); no reply from: {', '.join(missing)}"
            )
        result = {
            "dataset": dataset,
            "datasites": datasite_names(replying, names),
            "replied": len(stats),
            "expected": len(node_ids),
            "missing_datasites": missing,
            "features": aggregate(stats),
        }
        path = write_results(out_dir, result)
        log(INFO, "fed_app server: round %d: wrote %s", rnd, path)
