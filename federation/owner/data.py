"""What a data owner holds: its private CSVs, checked; the demo data; the synthetic mock.

Private data is read from the owner's folder and never written under the synced
tree by this module. The mock is synthetic: each column is drawn from the
owner's values for that outcome independently, and any row that equals a real
row is drawn again, so the mock contains no real row.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import math
import random
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from federation.common.files import atomic_write

log = logging.getLogger(__name__)

COLUMNS = [
    "Pregnancies", "Glucose", "BloodPressure", "SkinThickness", "Insulin",
    "BMI", "DiabetesPedigreeFunction", "Age", "Outcome",
]
OUTCOMES = ("0", "1")
PIMA_SHA256 = "bf81d06e0c0512662862248241ab46d7c29258c6ceaad32f3cab56b52a17fdab"


class DatasetError(ValueError):
    """The owner's data cannot be published; the message names file, column and row."""


@dataclass(frozen=True)
class Table:
    """Rows as strings, exactly as in the files (so a real row can be recognised anywhere)."""

    columns: list[str]
    rows: list[tuple[str, ...]]


def read_private_csvs(folder: Path) -> Table:
    """Read and check every CSV in `folder`: the owner's data contract for this dataset."""
    files = sorted(p for p in folder.glob("*.csv") if p.is_file())
    if not files:
        raise DatasetError(f"{folder}: no CSV file")
    rows: list[tuple[str, ...]] = []
    for path in files:
        rows.extend(read_csv(path).rows)
    return Table(COLUMNS, rows)


def read_csv(path: Path) -> Table:
    """One CSV, checked: the columns of COLUMNS (in that order), numbers, Outcome 0/1, rows."""
    with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: CSVs saved by Excel
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None:
            raise DatasetError(f"{path.name}: empty file (no header, no rows)")
        header = [h.strip() for h in header]
        missing = [c for c in COLUMNS if c not in header]
        if missing:
            raise DatasetError(f"{path.name}: missing column(s) {', '.join(missing)}")
        index = [header.index(c) for c in COLUMNS]
        rows = []
        for line_no, record in enumerate(reader, start=2):
            if not any(cell.strip() for cell in record):
                continue
            row = []
            for col, i in zip(COLUMNS, index):
                cell = record[i].strip() if i < len(record) else ""
                if not _is_number(cell):
                    raise DatasetError(
                        f"{path.name}: column {col}, line {line_no}: {cell!r} is not a number"
                    )
                row.append(cell)
            if row[-1] not in OUTCOMES:
                raise DatasetError(f"{path.name}: column Outcome, line {line_no}: {row[-1]!r} is not 0 or 1")
            rows.append(tuple(row))
    if not rows:
        raise DatasetError(f"{path.name}: no data rows")
    return Table(COLUMNS, rows)


def _is_number(cell: str) -> bool:
    try:
        return math.isfinite(float(cell))
    except ValueError:
        return False


def write_csv(table: Table, path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    atomic_write(path, buf.getvalue())


# ---- demo data: a partition of the public Pima file -------------------------------------

def public_pima(local_copy: Path | None, url: str, cache: Path) -> Path:
    """The public Pima file, checked against its sha256: a local copy, else a download."""
    candidates = [p for p in (local_copy, cache) if p is not None and p.is_file()]
    for path in candidates:
        if _sha256(path.read_bytes()) == PIMA_SHA256:
            return path
        log.warning("%s does not match the Pima sha256; ignoring it", path)
    log.info("downloading the public Pima file from %s", url)
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            content = resp.read()
    except (OSError, ValueError, http.client.HTTPException) as e:
        raise DatasetError(f"no private data and the public Pima file could not be downloaded from {url}: {e}") from e
    digest = _sha256(content)
    if digest != PIMA_SHA256:
        raise DatasetError(f"download from {url} has sha256 {digest}, expected {PIMA_SHA256}; not used")
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_bytes(content)
    return cache


def _sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


def partition(table: Table, index: int, count: int) -> Table:
    """Contiguous slice `index` (from 1) of `count` equal parts: each owner a different share."""
    n = len(table.rows)
    start, stop = (index - 1) * n // count, index * n // count
    return Table(table.columns, table.rows[start:stop])


# ---- the synthetic mock ---------------------------------------------------------------

def synthesize_mock(private: Table, n_rows: int, seed: int = 0) -> Table:
    """`n_rows` synthetic rows with the outcome balance of `private` and no real row."""
    rng = random.Random(seed)
    real = set(private.rows)
    by_outcome = {o: [r for r in private.rows if r[-1] == o] for o in OUTCOMES}
    total = len(private.rows)
    mock: list[tuple[str, ...]] = []
    for outcome, rows in by_outcome.items():
        if not rows:
            continue
        want = max(1, round(n_rows * len(rows) / total))
        columns = list(zip(*rows))[:-1]
        attempts = 0
        while want > 0:
            attempts += 1
            if attempts > 100 * n_rows:
                raise DatasetError("could not draw a mock row that differs from every real row")
            row = tuple(rng.choice(col) for col in columns) + (outcome,)
            if row in real:
                continue
            mock.append(row)
            want -= 1
    rng.shuffle(mock)
    return Table(private.columns, mock)
