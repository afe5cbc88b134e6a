"""Unit tests for fed_app (stats, encoding, ClientApp, ServerApp, syft_flwr fit).

Expected numbers are computed here independently with numpy/pandas from the real file.
"""

from __future__ import annotations

import json
import shutil
import tomllib
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fed_app.client_app import app as client_app
from fed_app.client_app import partition
from fed_app.server_app import app as server_app
from fed_app.server_app import node_email_map
from flwr.common import (ConfigRecord, Context, Error, Message, MessageType, MetricRecord, RecordDict)
from flwr.server import Grid

from fed_app import stats as S
from tests.conftest import REPO_ROOT

FED_APP_DIR = REPO_ROOT / "fed_app"

ZMM = {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}
EMAILS = ["bob@openmined.org", "alice@openmined.org"]


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="session")
def pima_df(pima_csv) -> pd.DataFrame:
    return pd.read_csv(pima_csv)


def write_halves(pima_csv: Path, root: Path) -> tuple[Path, Path]:
    """Split the raw file into two CSVs (first/second half of the rows) in two folders."""
    lines = pima_csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    mid = len(rows) // 2
    dirs = []
    for name, part in (("a", rows[:mid]), ("b", rows[mid:])):
        d = root / name
        d.mkdir()
        (d / f"pima_{name}.csv").write_text("\n".join([header, *part]) + "\n")
        dirs.append(d)
    return dirs[0], dirs[1]


def expected_local(df: pd.DataFrame) -> dict:
    """Independent computation of hist/count/sum/missing with numpy/pandas."""
    out = {}
    for feat, edges in S.BIN_EDGES.items():
        out[feat] = {}
        for o in (0, 1):
            col = df.loc[df["Outcome"] == o, feat]
            if feat in ZMM:
                valid = col[(col != 0) & col.notna()]
            else:
                valid = col.dropna()
            hist, _ = np.histogram(valid.to_numpy(dtype=float), bins=np.asarray(edges))
            out[feat][str(o)] = {
                "hist": hist.tolist(),
                "count": int(valid.size),
                "sum": float(valid.sum()),
                "missing": int(len(col) - valid.size),
            }
    return out


def assert_local_equal(got: dict, want: dict) -> None:
    assert list(got) == S.FEATURES
    for feat in S.FEATURES:
        assert set(got[feat]["by_outcome"]) == {"0", "1"}
        for o in ("0", "1"):
            g, w = got[feat]["by_outcome"][o], want[feat][o]
            assert g["hist"] == w["hist"], (feat, o)
            assert g["count"] == w["count"], (feat, o)
            assert g["missing"] == w["missing"], (feat, o)
            assert g["sum"] == pytest.approx(w["sum"], rel=1e-12), (feat, o)
            assert all(type(h) is int for h in g["hist"])


def query_message(node_id: int = 7) -> Message:
    return Message(
        content=RecordDict({"config": ConfigRecord({"round": 1})}),
        dst_node_id=node_id,
        message_type=MessageType.QUERY,
        group_id="1",
    )


def app_config() -> dict:
    with open(FED_APP_DIR / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)["tool"]["flwr"]["app"]["config"]


def make_context(node_config: dict | None = None, run_config: dict | None = None) -> Context:
    return Context(
        run_id=1,
        node_id=7,
        node_config=node_config or {},
        state=RecordDict(),
        run_config=run_config or {},
    )


# --------------------------------------------------------------------------- pyproject


def test_pyproject_is_a_flower_app():
    with open(FED_APP_DIR / "pyproject.toml", "rb") as fh:
        conf = tomllib.load(fh)
    assert conf["build-system"]["build-backend"] == "hatchling.build"
    assert conf["project"]["name"] == "fed_app"
    deps = conf["project"]["dependencies"]
    assert "flwr[simulation]==1.21.0" in deps and "numpy==2.3.3" in deps
    assert "pandas==2.3.2" in deps and not any("flwr-datasets" in d for d in deps)
    flwr = conf["tool"]["flwr"]
    assert flwr["app"]["components"] == {
        "serverapp": "fed_app.server_app:app",
        "clientapp": "fed_app.client_app:app",
    }
    cfg = flwr["app"]["config"]
    assert cfg["num-server-rounds"] == 1 and cfg["min-nodes"] == 2
    assert cfg["results-dir"] == "results"
    assert flwr["federations"]["default"] == "local-simulation"
    assert flwr["federations"]["local-simulation"]["options"]["num-supernodes"] == 2


# --------------------------------------------------------------------------- stats


def test_bin_edges_cover_real_data(pima_df):
    for feat, edges in S.BIN_EDGES.items():
        assert np.all(np.diff(edges) > 0), feat
        assert edges[0] <= pima_df[feat].min() and pima_df[feat].max() <= edges[-1], feat


def test_local_stats_match_independent_numpy_pandas(pima_csv, tmp_path):
    dir_a, dir_b = write_halves(pima_csv, tmp_path)
    for d in (dir_a, dir_b):
        df_indep = pd.read_csv(next(d.glob("*.csv")))
        got = S.local_stats(S.load_csvs(d))
        assert_local_equal(got, expected_local(df_indep))
        # zero-means-missing: the zeros of Glucose per outcome are exactly `missing`
        for o in (0, 1):
            zeros = int(((df_indep["Glucose"] == 0) & (df_indep["Outcome"] == o)).sum())
            assert got["Glucose"]["by_outcome"][str(o)]["missing"] == zeros
            # Pregnancies == 0 is a real value, not missing
            assert got["Pregnancies"]["by_outcome"][str(o)]["missing"] == 0
            n_o = int((df_indep["Outcome"] == o).sum())
            for feat in S.FEATURES:
                e = got[feat]["by_outcome"][str(o)]
                assert e["count"] + e["missing"] == n_o
                assert sum(e["hist"]) == e["count"]  # edges cover the data


def test_aggregate_of_halves_equals_whole_file(pima_csv, pima_df, tmp_path):
    dir_a, dir_b = write_halves(pima_csv, tmp_path)
    halves = [S.local_stats(S.load_csvs(d)) for d in (dir_a, dir_b)]
    agg = S.aggregate(halves)
    whole = S.aggregate([S.local_stats(S.load_csvs(pima_csv))])
    assert _agg_close(agg, whole)
    want = expected_local(pima_df)
    for feat in S.FEATURES:
        assert agg[feat]["bin_edges"] == S.BIN_EDGES[feat]
        for o in ("0", "1"):
            g, w = agg[feat]["by_outcome"][o], want[feat][o]
            assert set(g) == {"hist", "count", "mean", "missing"}
            assert g["hist"] == w["hist"] and g["count"] == w["count"]
            assert g["missing"] == w["missing"]
            col = pima_df.loc[pima_df["Outcome"] == int(o), feat]
            valid = col[col != 0] if feat in ZMM else col
            assert g["mean"] == pytest.approx(float(valid.mean()), rel=1e-12)
    # a folder with both halves as two files reads as the whole file
    both = tmp_path / "both"
    both.mkdir()
    for d in (dir_a, dir_b):
        for f in d.glob("*.csv"):
            shutil.copy(f, both / f.name)
    assert_local_equal(S.local_stats(S.load_csvs(both)), want)


def _agg_close(a: dict, b: dict) -> bool:
    for feat in S.FEATURES:
        for o in ("0", "1"):
            x, y = a[feat]["by_outcome"][o], b[feat]["by_outcome"][o]
            if (x["hist"], x["count"], x["missing"]) != (y["hist"], y["count"], y["missing"]):
                return False
            if x["mean"] != pytest.approx(y["mean"], rel=1e-12):
                return False
    return True


def test_mean_is_zero_when_count_is_zero():
    df = pd.DataFrame({c: [0.0, 0.0] for c in S.COLUMNS})
    df["Outcome"] = [0, 0]
    agg = S.aggregate([S.local_stats(df)])
    g = agg["Glucose"]["by_outcome"]
    assert g["0"] == {"hist": [0] * 20, "count": 0, "mean": 0.0, "missing": 2}
    assert g["1"]["count"] == 0 and g["1"]["mean"] == 0.0 and g["1"]["missing"] == 0
    # Pregnancies 0 is a value
    assert agg["Pregnancies"]["by_outcome"]["0"]["count"] == 2


def test_empty_cells_count_as_missing(tmp_path):
    header = ",".join(S.COLUMNS)
    (tmp_path / "d.csv").write_text(
        f"{header}\n1,,70,20,0,30.5,0.5,33,1\n2,100,NA,20,80,30.5,,40,1\n"
    )
    df = S.load_csvs(tmp_path)
    st = S.local_stats(df)["Glucose"]["by_outcome"]["1"]
    assert (st["count"], st["missing"], st["sum"]) == (1, 1, 100.0)
    dpf = S.local_stats(df)["DiabetesPedigreeFunction"]["by_outcome"]["1"]
    assert (dpf["count"], dpf["missing"]) == (1, 1)
    ins = S.local_stats(df)["Insulin"]["by_outcome"]["1"]
    assert (ins["count"], ins["missing"]) == (1, 1)


def test_metrics_roundtrip(pima_csv):
    st = S.local_stats(S.load_csvs(pima_csv))
    flat = S.to_metrics(st)
    assert "Glucose/1/hist" in flat and "Glucose/1/count" in flat
    assert all("/" in k for k in flat)
    assert S.from_metrics(flat) == st
    # through a Flower MetricRecord and its protobuf serialisation
    from flwr.common.serde import message_from_proto, message_to_proto

    msg = Message(RecordDict({"q": MetricRecord(flat)}), reply_to=query_message())
    back = message_from_proto(message_to_proto(msg))
    assert S.from_metrics(dict(back.content["q"])) == st


def test_from_metrics_rejects_malformed():
    with pytest.raises(ValueError, match="malformed"):
        S.from_metrics({"Glucose/hist": [1]})
    with pytest.raises(ValueError, match="lack"):
        S.from_metrics({"Glucose/0/hist": [1]})


def test_aggregate_rejects_incompatible_replies(pima_csv):
    st = S.local_stats(S.load_csvs(pima_csv))
    fewer = {k: v for k, v in st.items() if k != "Age"}
    with pytest.raises(S.AggregationError, match="Age"):
        S.aggregate([st, fewer])
    longer = json.loads(json.dumps(st))
    longer["BMI"]["by_outcome"]["1"]["hist"].append(0)
    with pytest.raises(S.AggregationError, match="BMI.*bins"):
        S.aggregate([st, longer])
    with pytest.raises(S.AggregationError):
        S.aggregate([])


# --------------------------------------------------------------------------- bad CSVs

HEADER = ",".join(S.COLUMNS)
GOOD_ROW = "6,148,72,35,0,33.6,0.627,50,1"


@pytest.mark.parametrize(
    "content, must_contain",
    [
        ("Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,Age,Outcome\n"
         "6,148,72,35,0,33.6,50,1\n", ["bad.csv", "DiabetesPedigreeFunction", "missing column"]),
        (f"{HEADER}\n{GOOD_ROW}\n{GOOD_ROW}\n6,148,seventy,35,0,33.6,0.627,50,1\n",
         ["bad.csv", "BloodPressure", "row 3", "seventy"]),
        (f"{HEADER}\n", ["bad.csv", "no data rows"]),
        ("", ["bad.csv", "empty"]),
        (f"{HEADER}\n{GOOD_ROW}\n6,148,72,35,0,33.6,0.627,50,2\n",
         ["bad.csv", "Outcome", "row 2", "not 0 or 1"]),
        (f"{HEADER}\n6,148,72,35,0,33.6,0.627,50,\n", ["bad.csv", "Outcome", "row 1"]),
    ],
    ids=["missing-column", "non-numeric", "no-rows", "empty-file", "bad-outcome",
         "empty-outcome"],
)
def test_bad_csv_raises_clear_data_error(tmp_path, content, must_contain):
    (tmp_path / "good.csv").write_text(f"{HEADER}\n{GOOD_ROW}\n")
    (tmp_path / "bad.csv").write_text(content)
    with pytest.raises(S.DataError) as info:
        S.load_csvs(tmp_path)
    msg = str(info.value)
    assert "\n" not in msg
    for part in must_contain:
        assert part in msg, (part, msg)


def test_no_csv_in_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("nothing here")
    with pytest.raises(S.DataError, match="no CSV files") as info:
        S.load_csvs(tmp_path)
    assert str(tmp_path) in str(info.value)
    with pytest.raises(S.DataError, match="does not exist"):
        S.load_csvs(tmp_path / "nope")


# --------------------------------------------------------------------------- ClientApp


def test_client_query_with_data_dir(pima_csv, tmp_path, monkeypatch):
    dir_a, _ = write_halves(pima_csv, tmp_path)
    monkeypatch.setenv("DATA_DIR", str(dir_a))
    monkeypatch.delenv("PIMA_CSV", raising=False)
    # syft_flwr passes the app config (incl. partition-id=0/num-partitions=1 added by
    # its bootstrap) as node_config: DATA_DIR must win over the partition settings.
    cfg = {**app_config(), "partition-id": 0, "num-partitions": 1}
    msg = query_message()
    reply = client_app(msg, make_context(node_config=cfg, run_config=cfg))
    assert not reply.has_error()
    assert reply.metadata.src_node_id == msg.metadata.dst_node_id
    got = S.from_metrics(dict(reply.content["query_results"]))
    assert_local_equal(got, expected_local(pd.read_csv(next(dir_a.glob("*.csv")))))


def test_client_query_simulation_partitions(pima_csv, pima_df, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.setenv("PIMA_CSV", str(pima_csv))
    parts = []
    for pid in (0, 1, 2):
        ctx = make_context(node_config={"partition-id": pid, "num-partitions": 3})
        reply = client_app(query_message(), ctx)
        parts.append(S.from_metrics(dict(reply.content["query_results"])))
    # contiguous split: partition 0 is the first third of the file
    n = len(pima_df)
    assert_local_equal(parts[0], expected_local(pima_df.iloc[: n // 3]))
    whole = S.aggregate(parts)
    assert _agg_close(whole, S.aggregate([expected_to_stats(expected_local(pima_df))]))
    with pytest.raises(S.DataError):
        partition(pima_df, 3, 3)


def expected_to_stats(exp: dict) -> dict:
    return {f: {"by_outcome": exp[f]} for f in exp}


def test_client_errors_are_clear_and_propagate(tmp_path, monkeypatch):
    monkeypatch.delenv("DATA_DIR", raising=False)
    monkeypatch.delenv("PIMA_CSV", raising=False)
    ctx = make_context(node_config={"partition-id": 0, "num-partitions": 2})
    with pytest.raises(S.DataError, match="PIMA_CSV"):
        client_app(query_message(), ctx)
    with pytest.raises(S.DataError, match="DATA_DIR"):
        client_app(query_message(), make_context())
    (tmp_path / "x.csv").write_text(f"{HEADER}\n6,148,72,35,0,33.6,0.627,50,7\n")
    monkeypatch.setenv("DATA_DIR", str(tmp_path))
    with pytest.raises(S.DataError, match=r"x\.csv.*Outcome.*row 1"):
        client_app(query_message(), ctx)


# --------------------------------------------------------------------------- ServerApp


class FakeSyftGrid(Grid):
    """In-process grid: node ids = crc32(email) like syft_flwr's SyftGrid; each node's
    ClientApp runs with its own DATA_DIR. Client exceptions become error replies."""

    def __init__(self, data_dirs: dict[str, Path], monkeypatch):
        self.datasites = list(data_dirs)
        self.client_map = {zlib.crc32(e.encode()): e for e in data_dirs}
        self.data_dirs = data_dirs
        self.monkeypatch = monkeypatch
        self.timeouts = []
        self.sent = []
        self._run_id = 1

    def set_run(self, run_id):
        self._run_id = run_id

    @property
    def run(self):
        return None

    def create_message(self, content, message_type, dst_node_id, group_id, ttl=None):
        return Message(content=content, dst_node_id=dst_node_id,
                       message_type=message_type, group_id=group_id, ttl=ttl)

    def get_node_ids(self):
        return list(self.client_map)

    def push_messages(self, messages):
        raise NotImplementedError

    def pull_messages(self, message_ids):
        raise NotImplementedError

    def send_and_receive(self, messages, *, timeout=None):
        self.timeouts.append(timeout)
        replies = []
        for msg in messages:
            self.sent.append(msg)
            email = self.client_map[msg.metadata.dst_node_id]
            self.monkeypatch.setenv("DATA_DIR", str(self.data_dirs[email]))
            ctx = make_context(node_config=app_config(), run_config=app_config())
            try:
                reply = client_app(msg, ctx)
            except Exception as exc:  # like Flower: error reply
                reply = Message(Error(code=0, reason=str(exc)), reply_to=msg)
            replies.append(reply)
        return replies


def check_png(path: Path) -> None:
    from PIL import Image

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    with Image.open(path) as im:
        im.load()
        assert im.size[0] >= 400 and im.size[1] >= 300
        colors = im.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colors is None or len(colors) > 10  # not a blank image
    import matplotlib.image as mpimg

    assert mpimg.imread(path).ndim == 3


def test_server_writes_aggregate_and_figures(pima_csv, pima_df, tmp_path, monkeypatch):
    dir_a, dir_b = write_halves(pima_csv, tmp_path)
    grid = FakeSyftGrid({EMAILS[0]: dir_a, EMAILS[1]: dir_b}, monkeypatch)
    results = tmp_path / "out"
    monkeypatch.setenv("RESULTS_DIR", str(results))
    monkeypatch.setenv("SYFT_FLWR_MSG_TIMEOUT", "12.5")
    monkeypatch.delenv("DATASET_NAME", raising=False)
    monkeypatch.delenv("DATASITES", raising=False)
    server_app(grid=grid, context=make_context(run_config=app_config()))

    assert grid.timeouts == [12.5]
    assert {m.metadata.message_type for m in grid.sent} == {MessageType.QUERY}
    assert sorted(m.metadata.dst_node_id for m in grid.sent) == sorted(grid.client_map)

    out = json.loads((results / "aggregate.json").read_text())
    assert set(out) == {"dataset", "datasites", "replied", "expected", "missing_datasites", "features"}
    assert out["missing_datasites"] == []
    assert out["dataset"] == "pima-indians-diabetes-database"
    assert out["datasites"] == sorted(EMAILS)
    assert (out["replied"], out["expected"]) == (2, 2)
    want = expected_local(pima_df)
    assert list(out["features"]) == S.FEATURES
    for feat in S.FEATURES:
        assert out["features"][feat]["bin_edges"] == pytest.approx(S.BIN_EDGES[feat])
        for o in ("0", "1"):
            g = out["features"][feat]["by_outcome"][o]
            assert g["hist"] == want[feat][o]["hist"]
            assert g["count"] == want[feat][o]["count"]
            assert g["missing"] == want[feat][o]["missing"]
            assert g["mean"] == pytest.approx(want[feat][o]["sum"] / want[feat][o]["count"])
    assert not list(results.glob(".*tmp"))  # atomic write left no temp file
    figs = sorted((results / "figures").glob("*.png"))
    assert [p.stem for p in figs] == sorted(S.FEATURES)
    for p in figs:
        check_png(p)


def test_server_skips_failed_replies_and_config_results_dir(
    pima_csv, tmp_path, monkeypatch
):
    dir_a, _ = write_halves(pima_csv, tmp_path)
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "x.csv").write_text(f"{HEADER}\n6,148,72,35,0,33.6,0.627,50,9\n")
    grid = FakeSyftGrid({EMAILS[0]: dir_a, EMAILS[1]: bad}, monkeypatch)
    monkeypatch.delenv("RESULTS_DIR", raising=False)
    monkeypatch.delenv("SYFT_FLWR_MSG_TIMEOUT", raising=False)
    monkeypatch.setenv("DATASET_NAME", "mock-pima")
    monkeypatch.chdir(tmp_path)
    # figures are checked in the test above; skip rendering here to save time
    import fed_app.figures

    monkeypatch.setattr(fed_app.figures, "write_figures", lambda features, out_dir: [])
    cfg = {**app_config(), "results-dir": "res", "reply-timeout": 3.0}
    server_app(grid=grid, context=make_context(run_config=cfg))
    assert grid.timeouts == [3.0]
    out = json.loads((tmp_path / "res" / "aggregate.json").read_text())
    assert out["dataset"] == "mock-pima"
    assert (out["replied"], out["expected"]) == (1, 2)
    assert out["datasites"] == [EMAILS[0]]
    assert out["missing_datasites"] == [EMAILS[1]]
    only_a = expected_local(pd.read_csv(next(dir_a.glob("*.csv"))))
    assert out["features"]["Age"]["by_outcome"]["1"]["hist"] == only_a["Age"]["1"]["hist"]

    # fewer replies than the DS's minimum -> the round fails naming who is missing
    monkeypatch.setenv("MIN_REPLIES", "2")
    grid = FakeSyftGrid({EMAILS[0]: dir_a, EMAILS[1]: bad}, monkeypatch)
    with pytest.raises(RuntimeError, match=r"only 1 of 2 .*at least 2 needed.*no reply from: " + EMAILS[1]):
        server_app(grid=grid, context=make_context(run_config=cfg))
    monkeypatch.setenv("MIN_REPLIES", "3")
    with pytest.raises(ValueError, match="MIN_REPLIES=3 but only 2"):
        server_app(grid=grid, context=make_context(run_config=cfg))
    monkeypatch.delenv("MIN_REPLIES")

    # nobody usable -> the run fails loudly
    grid = FakeSyftGrid({EMAILS[0]: bad, EMAILS[1]: bad}, monkeypatch)
    with pytest.raises(RuntimeError, match="no usable replies"):
        server_app(grid=grid, context=make_context(run_config=cfg))


def test_server_fails_when_too_few_nodes(tmp_path, monkeypatch):
    grid = FakeSyftGrid({EMAILS[0]: tmp_path}, monkeypatch)
    cfg = {**app_config(), "node-wait-timeout": 0.0}
    with pytest.raises(RuntimeError, match="min-nodes=2"):
        server_app(grid=grid, context=make_context(run_config=cfg))


# --------------------------------------------------------------------------- syft_flwr


def test_syft_flwr_bootstrap_and_client_message_path(pima_csv, tmp_path, monkeypatch):
    import syft_flwr
    from syft_flwr.config import load_flwr_pyproject
    from syft_flwr.flower_client import MessageHandler
    from syft_flwr.grid import SyftGrid
    from syft_flwr.serde import bytes_to_flower_message, flower_message_to_bytes

    app_dir = tmp_path / "fed_app"
    shutil.copytree(FED_APP_DIR, app_dir,
                    ignore=shutil.ignore_patterns("__pycache__", "results", "main.py"))
    syft_flwr.bootstrap(app_dir, aggregator="ds@openmined.org", datasites=EMAILS)
    assert (app_dir / "main.py").is_file()
    conf = load_flwr_pyproject(app_dir)  # validates and imports the components
    assert conf["tool"]["syft_flwr"]["datasites"] == EMAILS
    cfg = conf["tool"]["flwr"]["app"]["config"]
    assert cfg["partition-id"] == 0 and cfg["num-partitions"] == 1

    # client side as syftbox_run_flwr_client sets it up: node_config == app config
    dir_a, _ = write_halves(pima_csv, tmp_path)
    monkeypatch.setenv("DATA_DIR", str(dir_a))
    ctx = make_context(node_config=cfg, run_config=cfg)
    handler = MessageHandler(client_app, ctx, encryption_enabled=False)
    wire = flower_message_to_bytes(query_message(zlib.crc32(EMAILS[0].encode())))
    reply = bytes_to_flower_message(handler.process_message(bytes_to_flower_message(wire)))
    got = S.from_metrics(dict(reply.content["query_results"]))
    assert_local_equal(got, expected_local(pd.read_csv(next(dir_a.glob("*.csv")))))
    assert reply.metadata.src_node_id == zlib.crc32(EMAILS[0].encode())

    # the real SyftGrid's node ids map back to the datasite emails
    class _Client:
        email = "ds@openmined.org"

    grid = SyftGrid(app_name="flwr/test", datasites=EMAILS, client=_Client())
    mapping = node_email_map(grid)
    assert sorted(mapping[n] for n in grid.get_node_ids()) == sorted(EMAILS)


# --------------------------------------------------------------------------- Flower simulation

SIM_SCRIPT = """
import sys
from flwr.simulation import run_simulation
from fed_app.client_app import app as client_app
from fed_app.server_app import app as server_app
import fed_app.figures
fed_app.figures.write_figures = lambda features, out_dir: []  # figures tested elsewhere
run_simulation(
    server_app=server_app, client_app=client_app, num_supernodes=2,
    backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                    "init_args": {"num_cpus": 2, "include_dashboard": False}},
)
"""


def test_flower_simulation_end_to_end(pima_csv, pima_df, tmp_path):
    """Real in-process Flower simulation (Ray backend, offline) in a subprocess:
    2 supernodes get partition-id 0/1 of PIMA_CSV; the aggregate is the whole file."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PIMA_CSV": str(pima_csv), "RESULTS_DIR": str(tmp_path / "r"),
           "PYTHONPATH": str(FED_APP_DIR), "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("DATA_DIR", None)
    env.pop("SYFT_FLWR_MSG_TIMEOUT", None)
    proc = subprocess.run([sys.executable, "-c", SIM_SCRIPT], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    path = tmp_path / "r" / "aggregate.json"
    assert path.is_file(), log[-3000:]
    out = json.loads(path.read_text())
    assert (out["replied"], out["expected"]) == (2, 2)
    want = expected_local(pima_df)
    for feat in S.FEATURES:
        for o in ("0", "1"):
            g = out["features"][feat]["by_outcome"][o]
            assert (g["hist"], g["count"], g["missing"]) == (
                want[feat][o]["hist"], want[feat][o]["count"], want[feat][o]["missing"])
