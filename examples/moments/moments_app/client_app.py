"""ClientApp: per numeric column, round 1 the count and sum, round 2 the squared deviations
from the means the server sends. Never a row."""

from __future__ import annotations

import os

from flwr.client import ClientApp
from flwr.common import Context, Message, MetricRecord, RecordDict

from moments_app.columns import numeric_columns

app = ClientApp()


@app.query()
def query(msg: Message, context: Context) -> Message:
    columns = numeric_columns(os.environ["DATA_DIR"])
    config = msg.content["config"]
    if config["step"] == "sums":
        reply = {f"n:{c}": int(v.size) for c, v in columns.items()} | {f"sum:{c}": float(v.sum())
                                                                      for c, v in columns.items()}
    else:
        means = {key[len("mean:"):]: float(value) for key, value in config.items() if key.startswith("mean:")}
        reply = {f"ss:{c}": float(((columns[c] - m) ** 2).sum()) for c, m in means.items() if c in columns}
    return Message(content=RecordDict({"moments": MetricRecord(reply)}), reply_to=msg)
