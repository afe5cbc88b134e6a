"""The run record and the archive of earlier runs."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from federation.scientist.run_record import (archive_previous)

DATASITES = ["do1@openmined.org", "do2@openmined.org"]


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def fill_results(results: Path, tag: str, mtime: float | None = None) -> dict[str, bytes]:
    (results / "figures").mkdir(parents=True, exist_ok=True)
    (results / "aggregate.json").write_text(json.dumps({"run": tag, "datasites": DATASITES}))
    (results / "figures" / f"BMI-{tag}.png").write_bytes(b"\x89PNG" + tag.encode() * 50)
    (results / "figures" / "Age.png").write_bytes(b"\x89PNG age " + tag.encode())
    (results / "run.json").write_text(json.dumps({"status": "ok", "run": tag}))
    if mtime is not None:
        os.utime(results / "run.json", (mtime, mtime))
    return {k: v for k, v in snapshot(results).items() if not k.startswith("history/")}


def test_archive_previous_moves_everything_under_history(tmp_path):
    results = tmp_path / "results"
    before = fill_results(results, "one", mtime=1_700_000_000)
    (results / "keep.txt").write_text("not a result file")
    archive_previous(results)

    history = results / "history"
    stamps = list(history.iterdir())
    assert len(stamps) == 1
    stamp = stamps[0]
    assert stamp.name == time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    assert snapshot(stamp) == before  # nothing lost, contents identical
    for name in ("aggregate.json", "figures", "run.json"):
        assert not (results / name).exists()
    assert (results / "keep.txt").read_text() == "not a result file"


def test_archive_previous_without_run_json(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "aggregate.json").write_text('{"run": "partial"}')
    archive_previous(results)
    [stamp] = list((results / "history").iterdir())
    assert (stamp / "aggregate.json").read_text() == '{"run": "partial"}'
    assert not (results / "aggregate.json").exists()


def test_archive_previous_empty_folder_is_a_no_op(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    archive_previous(results)
    assert list(results.iterdir()) == []


def test_archive_previous_twice_keeps_both_runs(tmp_path):
    """Two runs whose run.json were written in the same second must both be kept."""
    results = tmp_path / "results"
    first = fill_results(results, "one", mtime=1_700_000_000.1)
    archive_previous(results)
    second = fill_results(results, "two", mtime=1_700_000_000.7)
    archive_previous(results)

    archived = [snapshot(d) for d in sorted((results / "history").iterdir())]
    assert first in archived, "the first archived run was overwritten or moved"
    assert second in archived, "the second archived run is not where it belongs"


