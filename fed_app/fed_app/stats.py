"""Federated descriptive statistics for the Pima Indians Diabetes data.

Pure numpy/pandas (no Flower import), so the numbers can be tested on their own.

Per feature and per outcome (0/1) every datasite computes a histogram over the fixed
``BIN_EDGES``, the number of usable values (``count``), their ``sum`` and the number of
``missing`` values. Sums (not means) are exchanged so that replies can simply be added;
``aggregate`` turns them into means at the end.

Rules:
- a NaN/empty cell in a feature counts as ``missing``;
- in ``ZERO_MEANS_MISSING`` features a 0 means "not measured": it counts as ``missing``
  and is left out of hist, count and sum;
- histograms use ``numpy.histogram`` semantics (half-open bins, last bin closed). A value
  outside the edges of its feature does not land in any bin but still counts in
  ``count`` and ``sum`` (so ``sum(hist) <= count``). The edges below cover the whole
  range of the public Pima file, so there ``sum(hist) == count``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

FEATURES: list[str] = [
    "Pregnancies",
    "Glucose",
    "BloodPressure",
    "SkinThickness",
    "Insulin",
    "BMI",
    "DiabetesPedigreeFunction",
    "Age",
]
OUTCOME = "Outcome"
OUTCOMES = (0, 1)
COLUMNS: list[str] = [*FEATURES, OUTCOME]

ZERO_MEANS_MISSING = frozenset(
    {"Glucose", "BloodPressure", "SkinThickness", "Insulin", "BMI"}
)

FIELDS = ("hist", "count", "sum", "missing")


def _edges(start: float, stop: float, step: float) -> list[float]:
    """Evenly spaced edges start..stop (inclusive), rounded to kill float noise."""
    n = int(round((stop - start) / step))
    return [float(round(start + i * step, 10)) for i in range(n + 1)]


# Public data ranges: Pregnancies 0-17, Glucose 0-199, BloodPressure 0-122,
# SkinThickness 0-99, Insulin 0-846, BMI 0-67.1, DiabetesPedigreeFunction 0.078-2.42,
# Age 21-81: all covered.
BIN_EDGES: dict[str, list[float]] = {
    "Pregnancies": _edges(0, 18, 1),
    "Glucose": _edges(0, 200, 10),
    "BloodPressure": _edges(0, 130, 10),
    "SkinThickness": _edges(0, 100, 5),
    "Insulin": _edges(0, 850, 50),
    "BMI": _edges(0, 70, 5),
    "DiabetesPedigreeFunction": _edges(0, 2.5, 0.1),
    "Age": _edges(20, 85, 5),
}


class DataError(ValueError):
    """Invalid input data (message names file, column and 1-based data row)."""


class AggregationError(ValueError):
    """Replies that cannot be combined (different features or bins)."""


# --------------------------------------------------------------------------- loading


def load_csv(path: str | Path) -> pd.DataFrame:
    """Read and validate one CSV file; return the 9 columns (features float, Outcome int).

    The index of the result is the 0-based data row (row N of the file is index N-1).
    """
    path = Path(path)
    name = str(path)
    try:
        raw = pd.read_csv(
            path,
            dtype=str,
            skip_blank_lines=False,
            encoding="utf-8-sig",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{name}: file is empty (no header and no data rows)") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{name}: cannot parse CSV: {msg}") from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read file: {exc.strerror or exc}") from None

    raw.columns = [str(c).strip() for c in raw.columns]
    missing_cols = [c for c in COLUMNS if c not in raw.columns]
    if missing_cols:
        raise DataError(
            f"{name}: missing column(s): {', '.join(missing_cols)} "
            f"(expected columns: {', '.join(COLUMNS)})"
        )
    dup = sorted({c for c in raw.columns if c in COLUMNS and list(raw.columns).count(c) > 1})
    if dup:
        raise DataError(f"{name}: duplicate column(s): {', '.join(dup)}")

    raw = raw[COLUMNS]
    # blank lines (kept so that row numbers match the file) are dropped here
    raw = raw.loc[~raw.isna().all(axis=1)]
    if raw.empty:
        raise DataError(f"{name}: no data rows (only a header)")

    out = pd.DataFrame(index=raw.index)
    for col in COLUMNS:
        text = raw[col].str.strip()
        text = text.mask(text == "")
        values = pd.to_numeric(text, errors="coerce")
        bad = (text.notna() & values.isna()) | np.isinf(values.fillna(0.0))
        if bad.any():
            idx = bad.idxmax()
            raise DataError(
                f"{name}: column {col!r}, row {idx + 1}: "
                f"non-numeric value {raw.at[idx, col]!r}"
            )
        out[col] = values.astype(float)

    outcome = out[OUTCOME]
    bad = ~outcome.isin([float(o) for o in OUTCOMES])
    if bad.any():
        idx = bad.idxmax()
        shown = raw.at[idx, OUTCOME]
        shown = "<empty>" if shown is None or (isinstance(shown, float) and math.isnan(shown)) else repr(shown)
        raise DataError(
            f"{name}: column {OUTCOME!r}, row {idx + 1}: value {shown} is not 0 or 1"
        )
    out[OUTCOME] = outcome.astype(int)
    return out


def load_csvs(data_dir: str | Path) -> pd.DataFrame:
    """Read every ``*.csv`` directly in ``data_dir`` (sorted, non-recursive).

    ``data_dir`` may also be a single ``.csv`` file. Raises ``DataError``.
    """
    data_dir = Path(data_dir)
    if data_dir.is_file():
        files = [data_dir]
    elif data_dir.is_dir():
        files = sorted(
            p for p in data_dir.iterdir() if p.suffix.lower() == ".csv" and p.is_file()
        )
        if not files:
            raise DataError(f"{data_dir}: no CSV files (*.csv) in this folder")
    else:
        raise DataError(f"{data_dir}: data folder does not exist")
    frames = [load_csv(p) for p in files]
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------- statistics


def local_stats(df: pd.DataFrame) -> dict[str, Any]:
    """Per-feature, per-outcome hist/count/sum/missing of one datasite's data."""
    missing_cols = [c for c in COLUMNS if c not in df.columns]
    if missing_cols:
        raise DataError(f"data frame: missing column(s): {', '.join(missing_cols)}")
    outcome = pd.to_numeric(df[OUTCOME], errors="coerce")
    stats: dict[str, Any] = {}
    for feat in FEATURES:
        col = pd.to_numeric(df[feat], errors="coerce").astype(float)
        edges = np.asarray(BIN_EDGES[feat], dtype=float)
        by_outcome: dict[str, Any] = {}
        for o in OUTCOMES:
            vals = col[outcome == o].to_numpy()
            miss = np.isnan(vals)
            if feat in ZERO_MEANS_MISSING:
                miss |= vals == 0
            valid = vals[~miss]
            hist, _ = np.histogram(valid, bins=edges)
            by_outcome[str(o)] = {
                "hist": [int(h) for h in hist],
                "count": int(valid.size),
                "sum": float(valid.sum()),
                "missing": int(miss.sum()),
            }
        stats[feat] = {"by_outcome": by_outcome}
    return stats


def _check_reply(i: int, reply: Mapping[str, Any]) -> None:
    if not isinstance(reply, Mapping):
        raise AggregationError(f"reply {i}: expected a dict, got {type(reply).__name__}")
    got, want = set(reply), set(FEATURES)
    if got != want:
        parts = []
        if want - got:
            parts.append(f"missing feature(s) {sorted(want - got)}")
        if got - want:
            parts.append(f"unexpected feature(s) {sorted(got - want)}")
        raise AggregationError(f"reply {i}: different set of features: {'; '.join(parts)}")
    for feat in FEATURES:
        nbins = len(BIN_EDGES[feat]) - 1
        by = reply[feat].get("by_outcome") if isinstance(reply[feat], Mapping) else None
        if not isinstance(by, Mapping) or set(by) != {str(o) for o in OUTCOMES}:
            raise AggregationError(
                f"reply {i}: feature {feat!r}: expected outcomes "
                f"{[str(o) for o in OUTCOMES]}, got {sorted(by) if isinstance(by, Mapping) else by!r}"
            )
        for o in by:
            entry = by[o]
            missing_fields = [f for f in FIELDS if f not in entry]
            if missing_fields:
                raise AggregationError(
                    f"reply {i}: feature {feat!r}, outcome {o}: missing field(s) {missing_fields}"
                )
            if len(entry["hist"]) != nbins:
                raise AggregationError(
                    f"reply {i}: feature {feat!r}, outcome {o}: hist has "
                    f"{len(entry['hist'])} bins, expected {nbins}"
                )


def aggregate(replies: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """Sum the replies' hist/count/sum/missing and compute means."""
    replies = list(replies)
    if not replies:
        raise AggregationError("no replies to aggregate")
    for i, reply in enumerate(replies):
        _check_reply(i, reply)

    result: dict[str, Any] = {}
    for feat in FEATURES:
        nbins = len(BIN_EDGES[feat]) - 1
        by_outcome: dict[str, Any] = {}
        for o in (str(o) for o in OUTCOMES):
            hist = [0] * nbins
            count = missing = 0
            total = 0.0
            for reply in replies:
                entry = reply[feat]["by_outcome"][o]
                hist = [a + int(b) for a, b in zip(hist, entry["hist"])]
                count += int(entry["count"])
                missing += int(entry["missing"])
                total += float(entry["sum"])
            by_outcome[o] = {
                "hist": hist,
                "count": count,
                "mean": total / count if count else 0.0,
                "missing": missing,
            }
        result[feat] = {"bin_edges": list(BIN_EDGES[feat]), "by_outcome": by_outcome}
    return result


# --------------------------------------------------------------------------- encoding


def to_metrics(stats: Mapping[str, Any]) -> dict[str, int | float | list[int] | list[float]]:
    """Flatten ``local_stats`` output to ``{"<feature>/<outcome>/<field>": value}``.

    Values are plain ints, floats and lists of ints, as Flower's MetricRecord requires.
    """
    flat: dict[str, int | float | list[int] | list[float]] = {}
    for feat, fstats in stats.items():
        if "/" in feat:
            raise ValueError(f"feature name {feat!r} must not contain '/'")
        for o, entry in fstats["by_outcome"].items():
            prefix = f"{feat}/{o}/"
            flat[prefix + "hist"] = [int(h) for h in entry["hist"]]
            flat[prefix + "count"] = int(entry["count"])
            flat[prefix + "sum"] = float(entry["sum"])
            flat[prefix + "missing"] = int(entry["missing"])
    return flat


def from_metrics(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of ``to_metrics``. Raises ``ValueError`` on malformed input."""
    stats: dict[str, Any] = {}
    for key, value in flat.items():
        parts = str(key).rsplit("/", 2)
        if len(parts) != 3 or parts[2] not in FIELDS or not parts[0] or not parts[1]:
            raise ValueError(f"malformed metrics key {key!r}")
        feat, o, field = parts
        entry = stats.setdefault(feat, {"by_outcome": {}})["by_outcome"].setdefault(o, {})
        if field == "hist":
            entry[field] = [int(h) for h in value]
        elif field == "sum":
            entry[field] = float(value)
        else:
            entry[field] = int(value)
    for feat, fstats in stats.items():
        for o, entry in fstats["by_outcome"].items():
            missing = [f for f in FIELDS if f not in entry]
            if missing:
                raise ValueError(f"metrics for {feat}/{o} lack field(s) {missing}")
            # canonical field order
            fstats["by_outcome"][o] = {f: entry[f] for f in FIELDS}
    return stats
