"""examples/moments' ServerApp: pooled mean and variance, exact, also when an owner misses round 2."""

from __future__ import annotations

import json
import statistics
import sys
import types

import numpy as np
import pytest

from tests.conftest import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "examples" / "moments"))
from moments_app import server_app  # noqa: E402

OWNERS = {1: {"age": [50.0, 41.0, 63.0], "bmi": [31.2, 22.0, 28.5]}, 2: {"age": [35.0, 58.0], "bmi": [24.1, 30.3]},
          3: {"age": [70.0], "bmi": [40.0]}}


class Reply:
    def __init__(self, node, content):
        self.metadata = types.SimpleNamespace(src_node_id=node)
        self.content = {"moments": content}
        self.error = None

    def has_error(self):
        return False


class Grid:
    """Answers as each owner's ClientApp would; `silent` owners do not answer round 2."""

    def __init__(self, silent=()):
        self.silent, self.rounds = set(silent), 0

    def get_node_ids(self):
        return list(OWNERS)

    def send_and_receive(self, messages, timeout=None):
        self.rounds += 1
        out = []
        for m in messages:
            node, config = m.metadata.dst_node_id, m.content["config"]
            cols = {c: np.asarray(v) for c, v in OWNERS[node].items()}
            if config["step"] == "sums":
                out.append(Reply(node, {f"n:{c}": v.size for c, v in cols.items()}
                                 | {f"sum:{c}": float(v.sum()) for c, v in cols.items()}))
            elif node not in self.silent:
                out.append(Reply(node, {f"ss:{c}": float(((v - config[f"mean:{c}"]) ** 2).sum())
                                        for c, v in cols.items()}))
        return out


@pytest.mark.parametrize("silent", [(), (3,)])
def test_mean_and_variance_are_those_of_the_rows_of_the_owners_that_answered_both_rounds(tmp_path, monkeypatch,
                                                                                       silent):
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    context = types.SimpleNamespace(run_config={"min-nodes": 3, "write-json": True})
    server_app.main(Grid(silent), context)  # (Flower's decorator hands the function back)
    got = json.loads((tmp_path / "moments.json").read_text())
    counted = [n for n in OWNERS if n not in silent]
    assert got["counted"] == len(counted) and got["replied"] == [3, 3 - len(silent)]
    for column in ("age", "bmi"):
        values = [v for n in counted for v in OWNERS[n][column]]
        assert got["columns"][column]["n"] == len(values)
        assert got["columns"][column]["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
        assert got["columns"][column]["variance"] == pytest.approx(statistics.variance(values), rel=1e-12)
    assert (tmp_path / "moments.png").read_bytes().startswith(b"\x89PNG")
