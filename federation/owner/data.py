"""What a data owner holds: its dataset folders, checked; the demo data; the synthetic mocks.

A dataset is a folder `<datasets>/<name>/` (the layout of OpenMined's own examples):
`private/` (required: any files; its CSVs must parse), `mock/` (optional) and `README.md`
(optional: the description). Only what holds for any dataset is checked here (folder
present, readable, not empty, CSVs well formed, a given mock consistent with the private
files and free of their rows); what a study needs of the data (columns, codes) its app checks.

When `mock/` is missing the owner makes one for every private CSV: same file name and
columns, each column drawn from the owner's values for it (within the same label, when the
last column is one), any row equal to a real row drawn again, so no real row is published.
Private data is read from the owner's folder and never written under the synced tree here.

It is longer than 300 lines because every check has its own message naming the dataset,
the file and the line, and the mock's generation must keep a real row from being published.
"""

from __future__ import annotations

import csv
import hashlib
import http.client
import io
import logging
import os
import random
import re
import shutil
import urllib.request
import zlib
from dataclasses import dataclass, field
from pathlib import Path

from federation.common.files import atomic_write

log = logging.getLogger(__name__)

PIMA_SHA256 = "bf81d06e0c0512662862248241ab46d7c29258c6ceaad32f3cab56b52a17fdab"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LABEL_VALUES = 10  # a last column with at most this many values is a label: the mock keeps its balance


class DatasetError(ValueError):
    """The owner's data cannot be published; the message names the dataset, file and line."""


@dataclass(frozen=True)
class Table:
    """Rows as strings, exactly as in the file (so a real row can be recognised anywhere)."""

    columns: list[str]
    rows: list[tuple[str, ...]]


@dataclass
class Dataset:
    """One dataset as the owner will publish it."""

    name: str
    private_dir: Path
    tables: dict[str, Table]  # every private CSV, by its path under private/
    mock_dir: Path | None = None  # the owner's own mock; None: made by `make_mock`
    readme: Path | None = None
    real_mock_rows: dict[str, int] = field(default_factory=dict)  # a given mock's real rows, by file
    made_mock: Path | None = None  # the mock the owner made (no mock/ given), before publishing

    @property
    def published_mock(self) -> Path | None:
        return self.mock_dir or self.made_mock

    @property
    def rows(self) -> int:
        return sum(len(t.rows) for t in self.tables.values())


def read_table(path: Path, shown: str) -> Table:
    """One CSV, checked only for form: a header of distinct names, rows as wide, at least one."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:  # -sig: CSVs saved by Excel
            records = list(csv.reader(f))
    except UnicodeDecodeError as e:
        raise DatasetError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise DatasetError(f"{shown}: not a CSV file ({e})") from None
    except OSError as e:
        raise DatasetError(f"{shown}: cannot be read ({e.strerror})") from None
    if not records:
        raise DatasetError(f"{shown}: empty file (no header, no rows)")
    header = [h.strip() for h in records[0]]
    if not any(header):
        raise DatasetError(f"{shown}: its first line is not a header")
    twice = sorted({h for h in header if header.count(h) > 1})
    if twice:
        raise DatasetError(f"{shown}: column(s) {', '.join(map(repr, twice))} appear twice in the header")
    rows = []
    for line_no, record in enumerate(records[1:], start=2):
        if not any(cell.strip() for cell in record):
            continue
        if len(record) != len(header):
            raise DatasetError(f"{shown}: line {line_no} has {len(record)} fields, the header {len(header)}")
        rows.append(tuple(cell.strip() for cell in record))
    if not rows:
        raise DatasetError(f"{shown}: no data rows")
    return Table(header, rows)


def write_csv(table: Table, path: Path) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    writer.writerows(table.rows)
    atomic_write(path, buf.getvalue())


def _files(folder: Path) -> list[Path]:
    """Every file under `folder`, or DatasetError naming the first one that cannot be read
    (rglob would skip an unreadable subfolder silently)."""
    out = []
    for root, dirs, files in os.walk(folder, onerror=_raise):
        out += [Path(root, f) for f in files]
    for path in out:
        if path.is_symlink():
            raise DatasetError(f"{path}: a symlink; datasets hold files only")
        if not os.access(path, os.R_OK):
            raise DatasetError(f"{path}: cannot be read (the owner runs as uid 1000)")
    return sorted(out)


def _part_files(name: str, part: Path) -> list[Path]:
    """The files of a dataset's private/ or mock/ folder: at least one, every one readable."""
    try:
        files = _files(part)
    except DatasetError as e:
        raise DatasetError(f"dataset {name}: {e}") from None
    if not files:
        raise DatasetError(f"dataset {name}: {part.name}/ holds no file")
    return files


def _raise(error: OSError) -> None:
    raise DatasetError(f"{error.filename}: cannot be read ({error.strerror})")


def _is_csv(path: Path) -> bool:
    return path.suffix.lower() == ".csv"


def _canonical(row: tuple[str, ...]) -> tuple[str, ...]:
    """A row as numbers where cells are numbers (31.20 and 31.2 are the same value)."""
    out = []
    for cell in row:
        try:
            out.append(repr(float(cell)))
        except ValueError:
            out.append(cell.strip().lower())
    return tuple(out)


def read_dataset(folder: Path, allow_real_mock_rows: bool = False) -> Dataset:
    """The dataset in `folder`, checked; DatasetError naming the first thing wrong."""
    name = folder.name
    if not NAME_RE.match(name):
        raise DatasetError(f"dataset folder {name!r}: a dataset's name is letters, digits, '.', '_' and '-'")
    private = folder / "private"
    if not private.is_dir():
        raise DatasetError(f"dataset {name}: no private/ folder in {folder}")
    files = _part_files(name, private)
    tables = {}
    for path in files:
        if _is_csv(path):
            rel = path.relative_to(private).as_posix()
            tables[rel] = read_table(path, f"dataset {name}: private/{rel}")
    mock = folder / "mock"
    readme = folder / "README.md"
    dataset = Dataset(name, private, tables, mock if mock.is_dir() else None, readme if readme.is_file() else None)
    if dataset.mock_dir is not None:
        check_given_mock(dataset, files, allow_real_mock_rows)
    else:
        others = [p.relative_to(private).as_posix() for p in files if not _is_csv(p)]
        if others or not tables:
            raise DatasetError(f"dataset {name}: private/ holds {'no CSV file' if not tables else others[0]}, of "
                               "which the owner cannot make a mock (it makes mocks of CSV files only): give a "
                               "mock/ folder")
    return dataset


def check_given_mock(dataset: Dataset, private_files: list[Path], allow_real_rows: bool) -> None:
    """A given mock must mirror every private CSV (same file, same columns) and hold none of
    the private rows, in any of its files (unless the owner allows it: then it is published,
    and logged as such); no file of it may be a copy of a private file."""
    name, mock = dataset.name, dataset.mock_dir
    given_files = _part_files(name, mock)
    given_tables = {rel: read_table(path, f"dataset {name}: mock/{rel}") for path in given_files
                    if _is_csv(path) and (rel := path.relative_to(mock).as_posix())}
    for rel, private in dataset.tables.items():
        if rel not in given_tables:
            raise DatasetError(f"dataset {name}: mock/ has no {rel} (private/ has it): code written "
                               "against the mock would not find it")
        given = given_tables[rel]
        if given.columns != private.columns:
            raise DatasetError(f"dataset {name}: mock/{rel} has columns {', '.join(given.columns)}; "
                               f"private/{rel} has {', '.join(private.columns)}")
    private_suffixes = {p.suffix.lower() for p in private_files}
    extra = sorted({p.suffix.lower() for p in given_files} - private_suffixes)
    if extra:  # syft-rds publishes a mock only with the private part's kinds of file
        raise DatasetError(f"dataset {name}: mock/ holds {', '.join(extra) or 'extensionless'} files, private/ none")
    digests = {_digest(p) for p in private_files}
    real = {_canonical(r) for t in dataset.tables.values() for r in t.rows}
    for path in given_files:
        rel = path.relative_to(mock).as_posix()
        if _digest(path) in digests:
            raise DatasetError(f"dataset {name}: mock/{rel} is a copy of a private file; a mock is published "
                               "to everyone")
        if rel not in given_tables:
            continue
        rows = given_tables[rel].rows
        found = sum(_canonical(row) in real for row in rows)
        if not found:
            continue
        dataset.real_mock_rows[rel] = found
        if not allow_real_rows:
            raise DatasetError(
                f"dataset {name}: mock/{rel}: {found} of its {len(rows)} rows are rows of the private "
                "data; a mock is published to everyone, so it must be synthetic (remove mock/ and the owner "
                "makes one; or set ALLOW_REAL_ROWS_IN_MOCK=true to publish it anyway)")
        log.warning("dataset %s: mock/%s holds %d real row(s) of %d: published anyway (ALLOW_REAL_ROWS_IN_MOCK)",
                    name, rel, found, len(rows))


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def find_datasets(root: Path, allow_real_mock_rows: bool = False) -> list[Dataset]:
    """Every dataset folder under `root`, checked (none when `root` does not exist)."""
    if not root.is_dir():
        return []
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    return [read_dataset(folder, allow_real_mock_rows) for folder in folders]


# ---- the synthetic mock ---------------------------------------------------------------

def synthesize_mock(private: Table, n_rows: int, seed: int = 0) -> Table:
    """`n_rows` synthetic rows shaped like `private` with none of its rows and none of its
    identifying values.

    Per column: one of few values (a category, a label) is drawn from the real values; a number
    is drawn uniformly between the column's smallest and largest, with its decimals; any other
    text is a placeholder (`<column>-<n>`), so no name, id or note is published. When the last
    column is a label, rows are drawn within each label, in its share of the private rows (and
    across labels when a label has too few rows for that)."""
    labels = sorted({r[-1] for r in private.rows})
    if len(private.columns) > 1 and len(labels) <= LABEL_VALUES:
        try:
            return _draw(private, n_rows, seed, {label: [r for r in private.rows if r[-1] == label]
                                                 for label in labels})
        except DatasetError:
            pass  # a label with one row (or a few that cover every mix): draw across labels
    return _draw(private, n_rows, seed, {None: private.rows})


def _column_drawer(name: str, values: tuple[str, ...]):
    """How to draw one cell of a column, from the values the owner holds in it."""
    distinct = sorted(set(values))
    if len(distinct) <= LABEL_VALUES:
        return lambda rng: rng.choice(values)
    try:
        numbers = [float(v) for v in values]
    except ValueError:
        return lambda rng: f"{name}-{rng.randint(1, 10 ** 6)}"
    low, high = min(numbers), max(numbers)
    decimals = max((len(v.split(".", 1)[1]) if "." in v else 0) for v in values)
    if decimals == 0 and not any("e" in v.lower() for v in values):
        return lambda rng: str(rng.randint(int(low), int(high)))
    return lambda rng: f"{rng.uniform(low, high):.{min(decimals, 6) or 1}f}"


def _draw(private: Table, n_rows: int, seed: int, groups: dict) -> Table:
    rng = random.Random(seed)
    real = {_canonical(r) for r in private.rows}
    mock: list[tuple[str, ...]] = []
    for label, rows in groups.items():
        want = max(1, round(n_rows * len(rows) / len(private.rows)))
        drawers = [_column_drawer(name, col) for name, col in zip(private.columns, zip(*rows))]
        attempts = 0
        while want > 0:
            attempts += 1
            if attempts > 100 * n_rows:
                raise DatasetError("could not draw a mock row that differs from every real row "
                                   "(too few distinct values): give a mock/ folder")
            row = tuple(draw(rng) for draw in drawers)
            if label is not None:
                row = row[:-1] + (label,)
            if _canonical(row) in real:
                continue
            mock.append(row)
            want -= 1
    rng.shuffle(mock)
    return Table(private.columns, mock)


def make_mock(dataset: Dataset, dest: Path, n_rows: int, seed_text: str) -> Path:
    """The mock folder of a dataset without one: a synthetic file for every private CSV (the
    dataset has no other file: read_dataset asks for a mock/ then)."""
    shutil.rmtree(dest, ignore_errors=True)
    for rel, table in dataset.tables.items():
        seed = zlib.crc32(f"{seed_text}/{dataset.name}/{rel}".encode())
        try:
            mock = synthesize_mock(table, n_rows, seed)
        except DatasetError as e:
            raise DatasetError(f"dataset {dataset.name}: private/{rel}: {e}") from None
        write_csv(mock, dest / rel)
    return dest


def describe(dataset: Dataset, email: str) -> str:
    """The README of a dataset that has none: its files, columns and rows."""
    lines = [f"# {dataset.name}", "", f"Data held by {email}. The private part never leaves this datasite: "
             "submit code to use it. The mock has the same files and columns with synthetic rows"
             + (" (made by the owner: no real row)." if dataset.mock_dir is None else " (the owner's own)."), ""]
    for rel, table in dataset.tables.items():
        lines.append(f"- `{rel}`: {len(table.rows)} rows; columns {', '.join(table.columns)}")
    return "\n".join(lines) + "\n"


# ---- demo data: a partition of the public Pima file -------------------------------------

PIMA_README = """# {name}

Pima Indians Diabetes data held by {email} (its demo share of the public file). Columns:
{columns}. Outcome 1 = diabetes. A zero in Glucose, BloodPressure, SkinThickness, Insulin
or BMI means "not measured". The mock holds synthetic rows (no real row); the private
part ({rows} rows) never leaves this datasite: submit code to use it.
"""


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
        raise DatasetError(f"the public Pima file (the demo share) is not at PIMA_CSV and could not be "
                           f"downloaded from {url}: {e}") from e
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


def demo_dataset(name: str, public_csv: Path, index: int, count: int, folder: Path, email: str) -> Dataset:
    """The owner's demo share of the public Pima file as a dataset, written to `folder`
    (outside the synced tree)."""
    share = partition(read_table(public_csv, str(public_csv)), index, count)
    rel = f"pima-part-{index}-of-{count}.csv"
    shutil.rmtree(folder / "private", ignore_errors=True)  # another share before: not this one
    write_csv(share, folder / "private" / rel)
    readme = folder / "README.md"
    atomic_write(readme, PIMA_README.format(name=name, email=email, columns=", ".join(share.columns),
                                            rows=len(share.rows)))
    return Dataset(name, folder / "private", {rel: share}, readme=readme)
