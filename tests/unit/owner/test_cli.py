"""The owner's side of the datasite CLI."""

from __future__ import annotations

import uuid

import pytest

from federation import datasite
from federation.common.codehash import code_hash
from federation.common.settings import Policy
from federation.owner import cli as owner_cli
from federation.owner.jobs import Records
from federation.owner.runner import Runner
from tests.unit.fakes import (DS, GOOD_MAIN, STRANGER, UID_A, UID_B, UID_C, Status, statuses)

H1 = "1" * 64

# =========================================================================== datasite CLI


def test_parser_requires_a_reason_to_reject(capsys):
    with pytest.raises(SystemExit) as info:
        datasite.parser().parse_args(["reject", "abc"])
    assert info.value.code == 2
    assert "--reason" in capsys.readouterr().err
    args = datasite.parser().parse_args(["reject", "abc", "--reason", "too broad"])
    assert (args.job, args.reason, args.fn) == ("abc", "too broad", owner_cli.cmd_reject)


@pytest.mark.parametrize("command", ["show", "approve", "reject"])
def test_parser_requires_a_job(command, capsys):
    argv = [command] + (["--reason", "x"] if command == "reject" else [])
    with pytest.raises(SystemExit) as info:
        datasite.parser().parse_args(argv)
    assert info.value.code == 2
    assert "job" in capsys.readouterr().err
    args = datasite.parser().parse_args([command, "abc12"] + argv[1:])
    assert args.job == "abc12" and args.fn is getattr(owner_cli, f"cmd_{command}")


@pytest.fixture
def cli(world, tmp_path, monkeypatch, capsys):
    """Run `datasite ...` against the fake RDS; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("SYFTBOX_EMAIL", "do1@openmined.org")
    monkeypatch.setenv("FEDERATION_HOME", str(tmp_path))  # state_dir == the runner's
    monkeypatch.setattr(owner_cli, "_session", lambda party: world.rds)
    monkeypatch.setattr(datasite, "_quiet_libraries", lambda: None)  # leave logging/warnings of the test run alone
    assert world.state == tmp_path / "state"

    def run(*argv):
        capsys.readouterr()
        code = datasite.main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err
    return run


def test_cli_jobs_lists_every_job(world, cli):
    a, b, c = (world.rds.job.stored[u] for u in (UID_A, UID_B, UID_C))
    b.created_by = STRANGER
    world.runner = Runner(world.rds, world.sync, Policy(mode="auto", allowlist=(DS,), pinned_hashes=(H1,)),
                          world.state, 20)
    world.runner.serve_once()  # a: hash not pinned, b: stranger; both left pending, with the reason
    assert cli("reject", UID_C.hex[:8], "--reason", "too broad")[0] == 0
    d = world.add_job(GOOD_MAIN + "# new\n", submitter="eve@openmined.org")  # not reviewed yet
    e = world.add_job(GOOD_MAIN, status=Status.job_run_failed)  # approved and run earlier; it failed
    e.error_message = "exit code 1; see stderr.log"
    Records(world.state).update(e, "decision", {"action": "approve", "reason": "submitter on the allowlist"})

    code, out, err = cli("jobs")
    assert code == 0, err
    lines = out.strip().splitlines()
    assert len(lines) == 6 and lines[0].split()[0] == "ID"
    expected = {
        a: ("pending_code_review", "is not one of the owner's approved hashes"),
        b: ("pending_code_review", f"submitter {STRANGER} is not on the allowlist"),
        c: ("rejected", "too broad"),
        d: ("pending_code_review", None),
        e: ("job_run_failed", "exit code 1; see stderr.log"),  # why it failed, not why it was approved
    }
    for job, (status, why) in expected.items():
        rows = [line for line in lines if line.startswith(job.uid.hex[:12] + " ")]
        assert len(rows) == 1, (job.uid.hex, out)
        row = rows[0]
        digest = code_hash(world.code_dir(job))
        assert job.created_by in row and f" {status} " in row
        assert f" {digest[:16]} " in row or row.endswith(digest[:16]), row
        assert digest[:17] not in row
        assert job.uid.hex[:13] not in row
        if why:
            assert why in row
            if job in (c, e):
                assert row.endswith(why)
        else:
            assert row.endswith(digest[:16])  # nothing decided yet: no reason


def test_cli_show_prints_the_code_and_its_hash(world, cli):
    job = world.add_job(GOOD_MAIN, uid=uuid.UUID("fe" * 16), extra_files={
        "fed_app/util.py": "def helper():\n    return 42\n",
        "__pycache__/main.cpython-311.pyc": "compiled",
    })
    code, out, err = cli("show", "FE-FE")
    assert code == 0, err
    digest = code_hash(world.code_dir(job))
    assert digest in out and job.uid.hex in out
    for rel in ("main.py", "helper.txt", "pyproject.toml", "fed_app/util.py"):
        text = (world.code_dir(job) / rel).read_text().strip()
        assert f"===== {rel} =====" in out
        assert text in out
    assert "__pycache__" not in out and "compiled" not in out
    assert out.count("=====") == 2 * 4  # and pyproject.toml


def test_cli_approve(world, cli):
    code, out, err = cli("approve", "abc1234")
    assert code == 0, err
    assert UID_B.hex[:12] in out
    assert world.rds.job.stored[UID_B].status == Status.approved
    assert world.rds.job.approved == [UID_B]
    assert world.rds.job.stored[UID_A].status == Status.pending_code_review
    rec = Records(world.state).read(world.rds.job.stored[UID_B])
    assert rec["decision"]["action"] == "approve" and rec["decision"]["by"] == "datasite"


@pytest.mark.parametrize("argv,message", [
    (("approve", "ffff"), "no job with id"),
    (("reject", "ffff", "--reason", "too broad"), "no job with id"),
    (("show", "ffff"), "no job with id"),
    (("approve", "abc12"), "ambiguous"),
])
def test_cli_unknown_or_ambiguous_id_changes_nothing(world, cli, argv, message):
    before = statuses(world)
    code, out, err = cli(*argv)
    assert code == 2
    assert message in err
    assert statuses(world) == before
    assert world.rds.job.approved == [] and world.rds.job.updates == []
    assert not (world.state / "jobs").exists()


def test_cli_reject_then_reject_again(world, cli):
    code, out, err = cli("reject", UID_C.hex, "--reason", "too broad")
    assert code == 0, err
    stored = world.rds.job.stored[UID_C]
    assert stored.status == Status.rejected and stored.error_message == "too broad"
    assert Records(world.state).read(stored)["decision"]["reason"] == "too broad"

    code, out, err = cli("reject", UID_C.hex, "--reason", "really too broad")
    assert code == 2
    assert "already rejected" in err
    assert stored.error_message == "too broad"
    assert world.rds.job.history(UID_C) == ["rejected"]
    assert Records(world.state).read(stored)["decision"]["reason"] == "too broad"

    code, out, err = cli("approve", UID_C.hex)
    assert code == 2 and "rejected" in err
    assert stored.status == Status.rejected and world.rds.job.approved == []


def test_cli_lists_shows_and_refuses_to_decide_a_job_moved_out_of_the_synced_tree(world, cli):
    """An ended job whose files moved to jobs/<id>/synced/ (retention) is still the owner's history."""
    from datetime import datetime, timezone

    import yaml
    from syft_rds.models import Job

    live = world.add_job(GOOD_MAIN)
    moved = Job(name="old-study", created_by=DS, dataset_name="pima-indians-diabetes-database",
                user_code_id=uuid.uuid4(), status="job_run_finished",
                created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc))
    folder = world.state / "jobs" / moved.uid.hex / "synced"
    (folder / "code").mkdir(parents=True)
    (folder / "code" / "main.py").write_text("print('the moved code')\n")
    (folder / "job.yaml").write_text(yaml.safe_dump(moved.model_dump(mode="json")))

    code, out, err = cli("jobs")
    assert code == 0, err
    rows = {line.split()[0]: line for line in out.strip().splitlines()[1:]}
    assert len(rows) == 5 and live.uid.hex[:12] in rows  # the world's three, the live one, the moved one
    row = rows[moved.uid.hex[:12]]
    assert "old-study" in row and "job_run_finished" in row and "2026-01-02 03:04:05" in row
    assert code_hash(folder / "code")[:16] in row

    code, out, err = cli("show", moved.uid.hex[:8])
    assert code == 0, err
    assert "===== main.py =====" in out and "print('the moved code')" in out

    code, out, err = cli("approve", moved.uid.hex[:8])
    assert code != 0 and "ended more than SYNCED_RETENTION ago" in err and "nothing to decide" in err
