"""The DS's side of the datasite CLI: `datasite status`."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

from federation.common.settings import Party
from federation.scientist import cli as scientist_cli
from federation.scientist.run_record import OwnerRecord, RunRecord

DS, DO1, DO2 = "ds@openmined.org", "do1@openmined.org", "do2@openmined.org"


def test_status_shows_each_owners_latest_job_or_what_the_last_run_saw_once_it_moved_out(
        tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SYFTBOX_EMAIL", DS)
    monkeypatch.setenv("DATASITES", f"{DO1},{DO2}")
    monkeypatch.setenv("FEDERATION_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("RESULTS_DIR", str(tmp_path / "results"))
    party = Party.from_env()
    for owner in (DO1, DO2):
        (party.syftbox_dir / "datasites" / owner / "public").mkdir(parents=True)
        (party.syftbox_dir / "datasites" / owner / "public" / "did.json").write_text("{}")
    job = SimpleNamespace(created_by=DS, created_at=datetime.now(timezone.utc), uid=SimpleNamespace(hex="ab12" * 8),
                          status=SimpleNamespace(value="job_in_progress"), error_message=None)
    stores = {DO1: [job], DO2: []}  # do2 moved its ended job out of its synced tree
    monkeypatch.setattr(scientist_cli, "guest_session", lambda settings, owner: SimpleNamespace(
        dataset=SimpleNamespace(get_all=lambda: [SimpleNamespace(name="pima-indians-diabetes-database")]),
        job=SimpleNamespace(get_all=lambda: stores[owner])))
    (tmp_path / "results").mkdir()
    RunRecord(status="ok", owners={DO2: OwnerRecord("job_run_finished", "70 small count(s) sent as 0")}).write(
        tmp_path / "results" / "run.json")

    assert scientist_cli.cmd_status(party, None) == 0
    lines = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "job_in_progress (ab12ab12)" in lines[DO1]
    assert "job_run_finished (the last run's; moved out of the owner's synced tree)" in lines[DO2]
    assert "70 small count(s) sent as 0" in lines[DO2]

    # no run record, or one that never got a job there: no job yet
    (tmp_path / "results" / "run.json").unlink()
    scientist_cli.cmd_status(party, None)
    assert "no job yet" in capsys.readouterr().out
