"""Unit tests for federation.owner.data: the owner's CSV contract, demo data and synthetic mock.

Expected rows are parsed here independently (plain str.split on the real file, which
has no quoting), never taken from the code under test.
"""

from __future__ import annotations

import hashlib
import logging
import math
import signal
from collections import Counter
from contextlib import contextmanager
from pathlib import Path

import pytest

from federation.owner import data
from federation.owner.data import DatasetError, Table

HEADER = "Pregnancies,Glucose,BloodPressure,SkinThickness,Insulin,BMI,DiabetesPedigreeFunction,Age,Outcome"
COLS = HEADER.split(",")


# --------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def real_lines(pima_csv) -> list[str]:
    lines = pima_csv.read_text().splitlines()
    assert lines[0] == HEADER
    return lines


@pytest.fixture(scope="module")
def real_rows(real_lines) -> list[tuple[str, ...]]:
    rows = [tuple(line.split(",")) for line in real_lines[1:] if line.strip()]
    assert len(rows) == 768
    return rows


@pytest.fixture(scope="module")
def real_table(real_rows) -> Table:
    return Table(list(COLS), list(real_rows))


def write(path: Path, *lines: str, end: str = "\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(end.join(lines) + (end if lines else ""))
    return path


def good_row(outcome: str = "0", bmi: str = "33.6") -> str:
    return f"6,148,72,35,0,{bmi},0.627,50,{outcome}"


@contextmanager
def deadline(seconds: float):
    """Fail (instead of hanging) when the block runs longer than `seconds`."""
    def expired(*_):
        raise TimeoutError(f"still running after {seconds} s: it loops instead of giving up")
    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def raises_dataset_error(fn, *args) -> str:
    with pytest.raises(DatasetError) as info:
        fn(*args)
    return str(info.value)


# --------------------------------------------------------------------------- reading real rows


def read(path: Path) -> Table:
    return data.read_table(path, path.name)


def test_read_table_real_file(pima_csv, real_rows):
    table = read(pima_csv)
    assert table.columns == COLS and table.rows == real_rows


def test_any_columns_spaces_trimmed_and_excel_bom(tmp_path):
    path = tmp_path / "x.csv"
    path.write_bytes("\ufeffage, y ,name\n 50 ,1, Ann \n".encode())
    assert read(path) == Table(["age", "y", "name"], [("50", "1", "Ann")])


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = write(tmp_path / "gaps.csv", "a,b", "1,2", "", "3")
    msg = raises_dataset_error(read, path)
    assert msg == "gaps.csv: line 4 has 1 fields, the header 2"


def test_crlf_line_endings(tmp_path):
    path = write(tmp_path / "crlf.csv", "a,b", "1,2", "3,4", end="\r\n")
    assert read(path).rows == [("1", "2"), ("3", "4")]


@pytest.mark.parametrize("lines, message", [
    ((), "empty file (no header, no rows)"),
    (("a,b",), "no data rows"),
    (("a,b", "", ""), "no data rows"),
    (("a,a,b", "1,2,3"), "column(s) 'a' appear twice in the header"),
    ((",,", "1,2,3"), "its first line is not a header"),
])
def test_a_csv_that_is_not_a_table_is_refused_naming_the_file(tmp_path, lines, message):
    assert raises_dataset_error(read, write(tmp_path / "bad.csv", *lines)) == f"bad.csv: {message}"


def test_a_file_that_is_not_text(tmp_path):
    path = tmp_path / "blob.csv"
    path.write_bytes(b"a,b\n\xff\xfe,1\n")
    assert "blob.csv: not UTF-8 text" in raises_dataset_error(read, path)


# --------------------------------------------------------------------------- dataset folders


def openmined_dataset(root: Path, name: str = "vitals", mock_rows=None, readme: bool = True) -> Path:
    """OpenMined's example layout: private/train.csv + test.csv (outcome y), mock/ optional."""
    folder = root / name
    write(folder / "private" / "train.csv", "age,bmi,y", "50,31.2,1", "41,22.0,0", "63,28.5,1")
    write(folder / "private" / "test.csv", "age,bmi,y", "35,24.1,0", "58,30.3,1")
    if mock_rows is not None:
        write(folder / "mock" / "train.csv", "age,bmi,y", *mock_rows)
        write(folder / "mock" / "test.csv", "age,bmi,y", "44,26.0,0")
    if readme:
        write(folder / "README.md", "# vitals", "Two clinics' vitals.")
    return folder


def test_a_dataset_in_openmined_layout_without_a_mock(tmp_path):
    ds = data.read_dataset(openmined_dataset(tmp_path))
    assert ds.name == "vitals" and ds.mock_dir is None and ds.readme == tmp_path / "vitals" / "README.md"
    assert sorted(ds.tables) == ["test.csv", "train.csv"] and ds.rows == 5
    assert ds.tables["test.csv"].rows == [("35", "24.1", "0"), ("58", "30.3", "1")]


def test_a_synthetic_mock_given_by_the_owner_is_kept(tmp_path):
    ds = data.read_dataset(openmined_dataset(tmp_path, mock_rows=["49,27.7,1", "40,23.3,0"]))
    assert ds.mock_dir == tmp_path / "vitals" / "mock" and ds.real_mock_rows == {}


def test_a_mock_sampled_from_the_private_data_is_refused_naming_the_file_and_the_count(tmp_path):
    folder = openmined_dataset(tmp_path, mock_rows=["50,31.2,1", "35,24.1,0", "49,27.7,1"])
    msg = raises_dataset_error(data.read_dataset, folder)
    assert msg.startswith("dataset vitals: mock/train.csv: 2 of its 3 rows are rows of the private data")
    assert "ALLOW_REAL_ROWS_IN_MOCK=true" in msg


def test_a_mock_with_real_rows_is_published_when_the_owner_allows_it_and_logged(tmp_path, caplog):
    folder = openmined_dataset(tmp_path, mock_rows=["50,31.2,1", "49,27.7,1"])
    with caplog.at_level(logging.WARNING):
        ds = data.read_dataset(folder, allow_real_mock_rows=True)
    assert ds.real_mock_rows == {"train.csv": 1}
    assert "mock/train.csv holds 1 real row(s) of 2: published anyway (ALLOW_REAL_ROWS_IN_MOCK)" in caplog.text


def test_a_given_mock_must_mirror_every_private_csv(tmp_path):
    folder = openmined_dataset(tmp_path, mock_rows=["49,27.7,1"])
    (folder / "mock" / "test.csv").unlink()
    assert raises_dataset_error(data.read_dataset, folder) == (
        "dataset vitals: mock/ has no test.csv (private/ has it): code written against the mock would not find it")
    write(folder / "mock" / "test.csv", "age,weight,y", "44,80,0")
    assert raises_dataset_error(data.read_dataset, folder) == (
        "dataset vitals: mock/test.csv has columns age, weight, y; private/test.csv has age, bmi, y")


@pytest.mark.parametrize("setup, message", [
    (lambda f: f.mkdir(), "dataset clinic: no private/ folder in"),
    (lambda f: (f / "private").mkdir(parents=True), "dataset clinic: private/ holds no file"),
    (lambda f: write(f / "private" / "scan.dcm", "binary"),
     "dataset clinic: private/ holds no CSV file, of which the owner cannot make a mock"),
    (lambda f: (write(f / "private" / "a.csv", "x,y", "1,2"), write(f / "private" / "scan.dcm", "binary")),
     "dataset clinic: private/ holds scan.dcm, of which the owner cannot make a mock"),
    (lambda f: write(f / "private" / "a.csv", "x,y", "1"), "dataset clinic: private/a.csv: line 2 has 1 fields"),
])
def test_a_dataset_folder_that_cannot_be_published_says_why(tmp_path, setup, message):
    setup(tmp_path / "clinic")
    assert message in raises_dataset_error(data.read_dataset, tmp_path / "clinic")


def test_files_that_are_not_csv_are_fine_with_a_given_mock(tmp_path):
    folder = tmp_path / "scans"
    write(folder / "private" / "scan.dcm", "binary")
    write(folder / "mock" / "scan.dcm", "synthetic")
    ds = data.read_dataset(folder)
    assert ds.tables == {} and ds.mock_dir == folder / "mock"


def test_a_dataset_name_is_one_path_segment_of_plain_characters(tmp_path):
    write(tmp_path / "my data" / "private" / "a.csv", "x", "1")
    assert "a dataset's name is letters, digits" in raises_dataset_error(data.read_dataset, tmp_path / "my data")


def test_every_folder_is_one_dataset(tmp_path):
    openmined_dataset(tmp_path, "vitals")
    openmined_dataset(tmp_path, "labs", readme=False)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "README.md").write_text("about these datasets")
    found = data.find_datasets(tmp_path)
    assert [d.name for d in found] == ["labs", "vitals"] and found[0].readme is None
    assert data.find_datasets(tmp_path / "nowhere") == []


def test_the_owner_makes_a_mock_for_every_private_csv_with_no_real_row(tmp_path):
    ds = data.read_dataset(openmined_dataset(tmp_path))
    mock = data.make_mock(ds, tmp_path / "made", n_rows=12, seed_text="do1@x.org")
    made = {p.name: read(p) for p in mock.glob("*.csv")}
    assert sorted(made) == ["test.csv", "train.csv"]
    real = {r for t in ds.tables.values() for r in t.rows}
    for name, table in made.items():
        assert table.columns == ["age", "bmi", "y"]
        assert not set(table.rows) & real
        values = [set(col) for col in zip(*ds.tables[name].rows)]
        assert all(cell in allowed for row in table.rows for cell, allowed in zip(row, values))


def test_the_demo_share_is_a_dataset_with_its_readme(tmp_path, pima_csv):
    ds = data.demo_dataset("pima-indians-diabetes-database", pima_csv, 2, 2, tmp_path / "demo", "do2@x.org")
    assert list(ds.tables) == ["pima-part-2-of-2.csv"] and ds.rows == 384
    assert "held by do2@x.org" in ds.readme.read_text() and "(384 rows)" in ds.readme.read_text()
    again = data.demo_dataset("pima-indians-diabetes-database", pima_csv, 1, 3, tmp_path / "demo", "do2@x.org")
    assert [p.name for p in again.private_dir.iterdir()] == ["pima-part-1-of-3.csv"]  # the old share is gone


@pytest.mark.parametrize("count", [1, 2, 3, 5, 7])
def test_partition_slices_are_disjoint_contiguous_and_cover_all(real_table, count):
    parts = [data.partition(real_table, i, count) for i in range(1, count + 1)]
    for p in parts:
        assert p.columns == COLS
        assert p.rows  # every owner gets a share
    sizes = [len(p.rows) for p in parts]
    assert sum(sizes) == 768
    assert max(sizes) - min(sizes) <= 1
    # contiguous and in order: the concatenation is the original table
    assert [r for p in parts for r in p.rows] == real_table.rows
    # disjoint by position: slice i starts exactly where slice i-1 stopped
    starts = [0]
    for s in sizes[:-1]:
        starts.append(starts[-1] + s)
    for p, start, size in zip(parts, starts, sizes):
        assert p.rows == real_table.rows[start:start + size]


def test_partition_halves_and_thirds_exact_bounds(real_table):
    rows = real_table.rows
    assert data.partition(real_table, 1, 2).rows == rows[:384]
    assert data.partition(real_table, 2, 2).rows == rows[384:]
    assert data.partition(real_table, 1, 3).rows == rows[:256]
    assert data.partition(real_table, 2, 3).rows == rows[256:512]
    assert data.partition(real_table, 3, 3).rows == rows[512:]


def test_partition_uneven_small_table():
    table = Table(list(COLS), [(str(i),) * 8 + ("0",) for i in range(10)])
    parts = [data.partition(table, i, 3).rows for i in (1, 2, 3)]
    assert sorted(len(p) for p in parts) == [3, 3, 4]
    assert [r for p in parts for r in p] == table.rows
    assert not set(parts[0]) & set(parts[1]) and not set(parts[1]) & set(parts[2])


# --------------------------------------------------------------------------- synthetic mock


def column_values(rows, outcome):
    sel = [r for r in rows if r[-1] == outcome]
    return [set(col) for col in zip(*sel)][:-1]


def assert_valid_mock(mock: Table, private: Table, n_rows: int) -> None:
    assert mock.columns == COLS
    counts = Counter(r[-1] for r in mock.rows)
    real_counts = Counter(r[-1] for r in private.rows)
    total = len(private.rows)
    assert set(counts) == {o for o in ("0", "1") if real_counts[o]}
    assert abs(len(mock.rows) - n_rows) <= 2  # at most 1 per outcome from rounding
    for o in counts:
        expected = n_rows * real_counts[o] / total
        assert abs(counts[o] - expected) <= 1, (o, counts[o], expected)
    real = set(private.rows)
    assert not [r for r in mock.rows if r in real], "a real row leaked into the mock"
    for o in counts:
        allowed = column_values(private.rows, o)
        for r in (r for r in mock.rows if r[-1] == o):
            assert len(r) == 9
            for col, cell, values in zip(COLS, r, allowed):
                assert_plausible(col, cell, values)


def assert_plausible(col: str, cell: str, values: set[str]) -> None:
    """One of the column's few values, or a number within its range (never outside it)."""
    if len(values) <= data.LABEL_VALUES:
        assert cell in values, (col, cell)
    else:
        numbers = [float(v) for v in values]
        assert min(numbers) <= float(cell) <= max(numbers), (col, cell)


@pytest.mark.parametrize("n_rows", [40, 101])
def test_mock_of_the_real_table(real_table, n_rows):
    mock = data.synthesize_mock(real_table, n_rows, seed=3)
    assert_valid_mock(mock, real_table, n_rows)
    # it is a synthetic mix, not one real row repeated: several distinct rows per outcome
    for o in ("0", "1"):
        assert len({r for r in mock.rows if r[-1] == o}) > 5


def test_mock_of_an_owner_share(real_table):
    share = data.partition(real_table, 2, 3)
    mock = data.synthesize_mock(share, 60, seed=11)
    assert_valid_mock(mock, share, 60)
    # drawn from this share only: nothing outside the share's per-outcome values or ranges
    for o in ("0", "1"):
        allowed = column_values(share.rows, o)
        for r in (r for r in mock.rows if r[-1] == o):
            for col, cell, values in zip(COLS, r, allowed):
                assert_plausible(col, cell, values)


def test_mock_is_deterministic_per_seed(real_table):
    a = data.synthesize_mock(real_table, 30, seed=5)
    b = data.synthesize_mock(real_table, 30, seed=5)
    c = data.synthesize_mock(real_table, 30, seed=6)
    assert a.rows == b.rows
    assert a.rows != c.rows


def test_mock_rare_outcome_still_present():
    rows = [(str(i), "100", "70", "20", "0", "30.1", "0.5", str(20 + i), "0") for i in range(99)]
    rows.append(("1", "150", "80", "30", "100", "35.0", "0.9", "55", "1"))
    rows.append(("2", "160", "85", "31", "110", "36.0", "1.0", "56", "1"))
    private = Table(list(COLS), rows)
    mock = data.synthesize_mock(private, 20, seed=0)
    counts = Counter(r[-1] for r in mock.rows)
    assert counts["1"] >= 1 and counts["0"] >= 19
    assert not set(mock.rows) & set(rows)


def test_mock_nearly_constant_columns_still_contain_no_real_row():
    """Most random draws equal a real row; the mock must still succeed without one."""
    rows = []
    for outcome in ("0", "1"):
        base = ("1", "100", "70", "20", "0", "30.0", "0.5", "40", outcome)
        odd = ("2", "101", "71", "21", "1", "30.1", "0.6", "41", outcome)
        rows += [base] * 40 + [odd]
    private = Table(list(COLS), rows)
    # the adversarial premise, computed independently: P(draw is a real row) per outcome
    p_real = (40 / 41) ** 8 + (1 / 41) ** 8
    assert p_real > 0.8
    with deadline(5):
        mock = data.synthesize_mock(private, 30, seed=1)
    assert_valid_mock(mock, private, 30)
    real = set(rows)
    assert all(r not in real for r in mock.rows)
    # every mock row mixes the two real value sets (neither all-base nor all-odd)
    for r in mock.rows:
        assert len({c == b for c, b in zip(r[:-1], rows[0][:-1])}) == 2


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mock_with_one_row_per_outcome_draws_across_outcomes_and_holds_no_real_row(seed):
    rows = [("1", "100", "70", "20", "0", "30.0", "0.5", "40", "0"),
            ("3", "150", "80", "30", "90", "35.5", "0.9", "52", "1")]
    with deadline(5):
        mock = data.synthesize_mock(Table(list(COLS), rows), 40, seed=seed)
    assert len(mock.rows) == 40 and not set(mock.rows) & set(rows)
    assert all(cell in {a, b} for row in mock.rows for cell, a, b in zip(row, *rows))


def test_mock_impossible_every_combination_is_real_raises():
    """Several rows per outcome, but every combination of their values is a real row."""
    rows = []
    for outcome in ("0", "1"):
        for a in ("1", "2"):
            for b in ("100", "120"):
                rows.append((a, b, "70", "20", "0", "30.0", "0.5", "40", outcome))
    with deadline(5), pytest.raises(DatasetError):
        data.synthesize_mock(Table(list(COLS), rows), 10, seed=0)


# --------------------------------------------------------------------------- public_pima


@pytest.fixture(scope="module")
def pima_sha(pima_csv) -> str:
    return hashlib.sha256(pima_csv.read_bytes()).hexdigest()


def test_public_pima_uses_a_matching_local_copy(tmp_path, pima_csv, pima_sha):
    cache = tmp_path / "cache" / "pima.csv"
    got = data.public_pima(pima_csv, "file:///nonexistent/never-used.csv", cache)
    assert got == pima_csv
    assert not cache.exists()  # nothing downloaded
    assert hashlib.sha256(got.read_bytes()).hexdigest() == pima_sha


def test_public_pima_wrong_local_copy_falls_back_to_url_and_caches(tmp_path, pima_csv, caplog):
    wrong = tmp_path / "wrong.csv"
    wrong.write_bytes(pima_csv.read_bytes().replace(b"148", b"149", 1))
    cache = tmp_path / "cache" / "pima.csv"
    with caplog.at_level(logging.WARNING, logger="federation.owner.data"):
        got = data.public_pima(wrong, pima_csv.resolve().as_uri(), cache)
    assert got == cache
    assert cache.read_bytes() == pima_csv.read_bytes()
    assert str(wrong) in caplog.text


def test_public_pima_download_by_file_url_is_cached_and_reused(tmp_path, pima_csv):
    cache = tmp_path / "state" / "cache" / "pima.csv"  # parents do not exist yet
    got = data.public_pima(None, pima_csv.resolve().as_uri(), cache)
    assert got == cache
    assert cache.read_bytes() == pima_csv.read_bytes()
    assert read(got).rows == read(pima_csv).rows
    # the cache is used next time: an unreachable URL no longer matters
    assert data.public_pima(None, "file:///nonexistent/pima.csv", cache) == cache


def test_public_pima_wrong_cache_is_replaced_by_download(tmp_path, pima_csv):
    cache = tmp_path / "pima.csv"
    cache.write_text(HEADER + "\n" + good_row() + "\n")
    got = data.public_pima(None, pima_csv.resolve().as_uri(), cache)
    assert got == cache and cache.read_bytes() == pima_csv.read_bytes()


def test_public_pima_url_with_wrong_content_is_refused(tmp_path, pima_csv, pima_sha):
    tampered = tmp_path / "tampered.csv"
    tampered.write_bytes(pima_csv.read_bytes() + b"1,100,70,20,0,30.0,0.5,40,1\n")
    cache = tmp_path / "cache" / "pima.csv"
    url = tampered.as_uri()
    with pytest.raises(DatasetError) as info:
        data.public_pima(None, url, cache)
    msg = str(info.value)
    assert pima_sha in msg  # the expected sha, computed here from the real file
    assert hashlib.sha256(tampered.read_bytes()).hexdigest() in msg
    assert url in msg
    assert not cache.exists()  # a refused download is not cached


def test_public_pima_unreachable_url(tmp_path):
    url = "file:///nonexistent/dir/pima.csv"
    with pytest.raises(DatasetError) as info:
        data.public_pima(None, url, tmp_path / "cache.csv")
    msg = str(info.value)
    assert url in msg and "could not be downloaded" in msg
    assert not (tmp_path / "cache.csv").exists()


# --------------------------------------------------------------------------- write_csv


def test_write_csv_round_trips(tmp_path, real_table):
    path = tmp_path / "deep" / "er" / "out.csv"
    data.write_csv(real_table, path)
    assert read(path) == real_table
    assert path.read_text().splitlines()[0] == HEADER
    assert not list(path.parent.glob("*.tmp"))


def test_write_csv_round_trips_a_mock_and_overwrites(tmp_path, real_table):
    path = tmp_path / "mock.csv"
    data.write_csv(real_table, path)
    mock = data.synthesize_mock(real_table, 25, seed=9)
    data.write_csv(mock, path)
    again = read(path)
    assert again.rows == mock.rows
    assert len(again.rows) == len(mock.rows)
    assert math.isclose(len(again.rows), 25, abs_tol=2)


def test_a_mock_publishes_no_name_or_id_of_the_private_data(tmp_path):
    """Text columns with many values become placeholders; numbers keep their range and decimals."""
    rows = [(f"patient-{i}", f"P{1000 + i}", f"{30 + i % 40}", f"{20 + (i * 7) % 19}.{i % 10}", str(i % 2))
            for i in range(60)]
    private = Table(["name", "id", "age", "bmi", "y"], rows)
    mock = data.synthesize_mock(private, 30, seed=4)
    names, ids = {r[0] for r in rows}, {r[1] for r in rows}
    assert not any(r[0] in names or r[1] in ids for r in mock.rows)
    assert all(r[0].startswith("name-") and r[1].startswith("id-") for r in mock.rows)
    for r in mock.rows:
        assert 30 <= int(r[2]) <= 69 and "." not in r[2]
        assert 20.0 <= float(r[3]) <= 38.9 and len(r[3].split(".")[1]) == 1
        assert r[4] in ("0", "1")


def test_a_given_mock_may_not_hide_private_rows_in_other_files_or_formats(tmp_path):
    folder = openmined_dataset(tmp_path, mock_rows=["49,27.7,1"])
    write(folder / "mock" / "ALL.CSV", "age,bmi,y", "50,31.20,1.0")  # a real row, reformatted, other name
    msg = raises_dataset_error(data.read_dataset, folder)
    assert msg.startswith("dataset vitals: mock/ALL.CSV: 1 of its 1 rows are rows of the private data")
    (folder / "mock" / "ALL.CSV").unlink()
    (folder / "mock" / "copy.csv").write_bytes((folder / "private" / "test.csv").read_bytes())
    assert "mock/copy.csv is a copy of a private file" in raises_dataset_error(data.read_dataset, folder)
    (folder / "mock" / "copy.csv").unlink()
    write(folder / "mock" / "notes.txt", "hello")
    assert "mock/ holds .txt files, private/ none" in raises_dataset_error(data.read_dataset, folder)
