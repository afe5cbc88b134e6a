"""ClientApp: compute local Pima statistics and reply with them (never raw rows)."""

from __future__ import annotations

import os
from logging import ERROR, INFO
from typing import Any, Mapping

import pandas as pd
from flwr.client import ClientApp
from flwr.common import Context, Message, MetricRecord, RecordDict
from flwr.common.logger import log

from fed_app.stats import DataError, load_csvs, local_stats, to_metrics

REPLY_KEY = "query_results"

app = ClientApp()


def partition(df: pd.DataFrame, partition_id: int, num_partitions: int) -> pd.DataFrame:
    """Contiguous, deterministic split: rows [p*n//k, (p+1)*n//k)."""
    if num_partitions < 1 or not 0 <= partition_id < num_partitions:
        raise DataError(
            f"invalid partition: partition-id={partition_id}, num-partitions={num_partitions}"
        )
    n = len(df)
    lo, hi = partition_id * n // num_partitions, (partition_id + 1) * n // num_partitions
    part = df.iloc[lo:hi].reset_index(drop=True)
    if part.empty:
        raise DataError(
            f"partition {partition_id} of {num_partitions} of {n} rows has no data rows"
        )
    return part


def load_client_data(node_config: Mapping[str, Any]) -> pd.DataFrame:
    """Find this node's data.

    1. env ``DATA_DIR`` (syft_flwr / the data owner's runner: private or mock folder);
    2. Flower simulation: ``partition-id``/``num-partitions`` in node_config and the
       public file at env ``PIMA_CSV``. Nothing is ever downloaded.
    """
    data_dir = os.environ.get("DATA_DIR", "").strip()
    if data_dir:
        log(INFO, "fed_app client: reading CSV files from DATA_DIR=%s", data_dir)
        return load_csvs(data_dir)
    if "partition-id" in node_config and "num-partitions" in node_config:
        csv = os.environ.get("PIMA_CSV", "").strip()
        if not csv:
            raise DataError(
                "PIMA_CSV is not set: in Flower simulation set PIMA_CSV to a local copy "
                "of pima-indians-diabetes.csv (nothing is downloaded), or set DATA_DIR"
            )
        pid, k = int(node_config["partition-id"]), int(node_config["num-partitions"])
        log(INFO, "fed_app client: partition %d of %d of PIMA_CSV=%s", pid, k, csv)
        return partition(load_csvs(csv), pid, k)
    raise DataError(
        "no data: set DATA_DIR to the folder with the CSV file(s), or run in Flower "
        "simulation (node_config partition-id/num-partitions) with PIMA_CSV set"
    )


@app.query()
def query(msg: Message, context: Context) -> Message:
    """Reply with the flat local statistics under ``query_results``."""
    try:
        df = load_client_data(context.node_config)
        stats = local_stats(df)
    except DataError as exc:
        log(ERROR, "fed_app client: data error: %s", exc)
        raise
    log(INFO, "fed_app client: computed statistics on %d rows", len(df))
    content = RecordDict({REPLY_KEY: MetricRecord(to_metrics(stats))})
    return Message(content=content, reply_to=msg)
