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
    (results / "server.log").write_text("an app's file")
    before["server.log"] = b"an app's file"
    (results / "simulation").mkdir()
    archive_previous(results)

    history = results / "history"
    stamps = list(history.iterdir())
    assert len(stamps) == 1
    stamp = stamps[0]
    assert stamp.name == time.strftime("%Y%m%d-%H%M%S", time.localtime(1_700_000_000))
    assert snapshot(stamp) == before  # nothing lost, contents identical
    for name in ("aggregate.json", "figures", "run.json", "server.log"):
        assert not (results / name).exists()
    assert (stamp / "server.log").read_text() == "an app's file"  # any app's files go with their run
    assert (results / "simulation").is_dir()  # simulate's, not a run's


def test_archive_previous_without_run_json_leaves_the_folder_alone(tmp_path):
    """No run.json: no run of ours was here (RESULTS_DIR may be any folder): nothing moves."""
    results = tmp_path / "results"
    results.mkdir()
    (results / "notes.txt").write_text("a person's file")
    archive_previous(results)
    assert sorted(p.name for p in results.iterdir()) == ["notes.txt"]


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


