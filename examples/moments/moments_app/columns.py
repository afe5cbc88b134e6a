"""An owner's numeric columns: every CSV file under DATA_DIR, every column all of whose values are numbers."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np


def numeric_columns(data_dir: str | Path) -> dict[str, np.ndarray]:
    files = sorted(Path(data_dir).rglob("*.csv"))
    if not files:
        raise ValueError(f"no CSV file under {data_dir}")
    values: dict[str, list[float]] = {}
    text: set[str] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            for row in reader:
                for column, cell in row.items():
                    if column is None or column in text:
                        continue
                    try:
                        number = float(cell)
                    except (TypeError, ValueError):
                        text.add(column)
                        values.pop(column, None)
                        continue
                    if math.isfinite(number):
                        values.setdefault(column, []).append(number)
    return {c: np.asarray(v) for c, v in sorted(values.items()) if c not in text}
