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


def test_read_private_csvs_two_files_hold_every_real_row(tmp_path, real_lines, real_rows):
    header, rows = real_lines[0], real_lines[1:]
    write(tmp_path / "a_first.csv", header, *rows[:400])
    write(tmp_path / "b_second.csv", header, *rows[400:])
    (tmp_path / "notes.txt").write_text("not a csv, must be ignored\n")

    table = data.read_private_csvs(tmp_path)

    assert table.columns == COLS
    assert len(table.rows) == 768
    assert table.rows == real_rows  # string cells identical to the file's, in file order
    assert all(isinstance(c, str) for r in table.rows for c in r)


def test_read_csv_real_file(pima_csv, real_rows):
    table = data.read_csv(pima_csv)
    assert table.columns == COLS
    assert table.rows == real_rows
    outcomes = Counter(r[-1] for r in table.rows)
    assert outcomes == Counter(r[-1] for r in real_rows)
    assert set(outcomes) == {"0", "1"}


def test_columns_in_another_order_are_reordered(tmp_path, real_rows):
    order = list(reversed(COLS))
    idx = [COLS.index(c) for c in order]
    lines = [",".join(order)] + [",".join(r[i] for i in idx) for r in real_rows[:50]]
    table = data.read_csv(write(tmp_path / "rev.csv", *lines))
    assert table.columns == COLS
    assert table.rows == real_rows[:50]


def test_extra_column_and_spaces_around_cells(tmp_path):
    path = write(tmp_path / "x.csv", "Id, " + HEADER.replace(",", " , "), "17, " + good_row().replace(",", " , "))
    table = data.read_csv(path)
    assert table.rows == [tuple(good_row().split(","))]


def test_blank_lines_are_skipped_and_line_numbers_still_count_them(tmp_path):
    path = write(tmp_path / "blank.csv", HEADER, good_row(), "", "   ", ",,,,,,,,", good_row("1"), "")
    table = data.read_csv(path)
    assert table.rows == [tuple(good_row().split(",")), tuple(good_row("1").split(","))]

    # the bad cell is on file line 5 (header = 1, then a row, then two blank lines)
    bad = write(tmp_path / "blank_bad.csv", HEADER, good_row(), "", "", good_row(bmi="fat"))
    msg = raises_dataset_error(data.read_csv, bad)
    assert "blank_bad.csv" in msg and "BMI" in msg and "line 5" in msg and "'fat'" in msg


def test_crlf_line_endings(tmp_path):
    path = write(tmp_path / "crlf.csv", HEADER, good_row(), good_row("1"), end="\r\n")
    assert data.read_csv(path).rows == [tuple(good_row().split(",")), tuple(good_row("1").split(","))]


# --------------------------------------------------------------------------- bad input


def test_missing_column_is_named(tmp_path):
    cols = [c for c in COLS if c != "Insulin"]
    path = write(tmp_path / "no_insulin.csv", ",".join(cols), "6,148,72,35,33.6,0.627,50,1")
    msg = raises_dataset_error(data.read_csv, path)
    assert "no_insulin.csv" in msg
    assert "Insulin" in msg
    assert "missing column" in msg
    for other in ("Glucose", "BMI", "Outcome"):  # only the missing one is named
        assert other not in msg


def test_non_numeric_cell_names_file_column_and_file_line(tmp_path):
    path = write(tmp_path / "bad_cell.csv", HEADER, good_row(), good_row(), "6,high,72,35,0,33.6,0.627,50,1")
    msg = raises_dataset_error(data.read_csv, path)
    assert "bad_cell.csv" in msg
    assert "column Glucose" in msg
    assert "line 4" in msg  # header is line 1, the bad row is the 4th line of the file
    assert "'high'" in msg


@pytest.mark.parametrize("cell", ["", "nan", "inf", "1,5", "NA"])
def test_non_finite_or_empty_cells_are_refused(tmp_path, cell):
    row = f'6,148,72,35,"{cell}",33.6,0.627,50,0'
    path = write(tmp_path / "cells.csv", HEADER, good_row(), row)
    msg = raises_dataset_error(data.read_csv, path)
    assert "cells.csv" in msg and "column Insulin" in msg and "line 3" in msg


def test_short_row_names_the_first_missing_cell(tmp_path):
    path = write(tmp_path / "short.csv", HEADER, "6,148,72,35,0,33.6")
    msg = raises_dataset_error(data.read_csv, path)
    assert "short.csv" in msg and "column DiabetesPedigreeFunction" in msg and "line 2" in msg


@pytest.mark.parametrize("outcome", ["2", "-1", "1.0", "0.5"])
def test_outcome_not_0_or_1(tmp_path, outcome):
    path = write(tmp_path / "outcome.csv", HEADER, good_row("1"), good_row(outcome))
    msg = raises_dataset_error(data.read_csv, path)
    assert "outcome.csv" in msg and "column Outcome" in msg and "line 3" in msg
    assert repr(outcome) in msg


def test_header_only_has_no_data_rows(tmp_path):
    msg = raises_dataset_error(data.read_csv, write(tmp_path / "header_only.csv", HEADER))
    assert "header_only.csv" in msg and "no data rows" in msg

    msg = raises_dataset_error(data.read_csv, write(tmp_path / "header_blank.csv", HEADER, "", ""))
    assert "header_blank.csv" in msg and "no data rows" in msg


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    msg = raises_dataset_error(data.read_csv, path)
    assert "empty.csv" in msg and "empty" in msg.replace("empty.csv", "")


def test_folder_without_csv(tmp_path):
    (tmp_path / "readme.txt").write_text(HEADER + "\n" + good_row() + "\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "nested.csv", HEADER, good_row())  # not read: only the folder itself
    msg = raises_dataset_error(data.read_private_csvs, tmp_path)
    assert str(tmp_path) in msg and "no CSV" in msg


def test_bad_second_file_is_named(tmp_path, real_lines):
    write(tmp_path / "a.csv", real_lines[0], *real_lines[1:20])
    write(tmp_path / "b.csv", HEADER, good_row(), good_row("7"))
    msg = raises_dataset_error(data.read_private_csvs, tmp_path)
    assert "b.csv" in msg and "a.csv" not in msg and "line 3" in msg and "Outcome" in msg


# --------------------------------------------------------------------------- partition


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
                assert cell in values, (col, cell, o)


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
    # drawn from this share only: nothing outside the share's per-outcome values
    for o in ("0", "1"):
        allowed = column_values(share.rows, o)
        assert all(c in v for r in mock.rows if r[-1] == o for c, v in zip(r, allowed))


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
def test_mock_impossible_one_row_per_outcome_raises_not_loops(seed):
    rows = [("1", "100", "70", "20", "0", "30.0", "0.5", "40", "0"),
            ("3", "150", "80", "30", "90", "35.5", "0.9", "52", "1")]
    with deadline(5), pytest.raises(DatasetError, match="real row"):
        data.synthesize_mock(Table(list(COLS), rows), 40, seed=seed)


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
    assert data.read_csv(got).rows == data.read_csv(pima_csv).rows
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
    assert data.read_csv(path) == real_table
    assert path.read_text().splitlines()[0] == HEADER
    assert not list(path.parent.glob("*.tmp"))


def test_write_csv_round_trips_a_mock_and_overwrites(tmp_path, real_table):
    path = tmp_path / "mock.csv"
    data.write_csv(real_table, path)
    mock = data.synthesize_mock(real_table, 25, seed=9)
    data.write_csv(mock, path)
    again = data.read_csv(path)
    assert again.rows == mock.rows
    assert len(again.rows) == len(mock.rows)
    assert math.isclose(len(again.rows), 25, abs_tol=2)
