"""The DS's live status lines, its restart (finding its own submission), and dataset checks."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest

from federation.codehash import code_hash
from federation.progress import Progress, owner_state, rounds_done, short_names
from federation.scientist import (Owner, WorkflowError, dataset_check, resume_submission, run_server, save_submission,
                                  server_rounds)
from federation.settings import Party, ScientistSettings

A, B = "do1@openmined.org", "do2@openmined.org"


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_one_line_per_change_with_elapsed_time_rounds_and_reasons():
    lines, clock = [], Clock()
    p = Progress([A, B], lines.append, clock)
    clock.now += 1.25
    p.show("approval", {A: ("pending_code_review", ""), B: ("approved", "")})
    clock.now += 1
    p.show("approval", {A: ("pending_code_review", ""), B: ("approved", "")})  # nothing changed but time
    p.show("server", {A: ("job_in_progress", ""), B: ("job_in_progress", "")}, (0, 1))
    p.show("server", {A: ("job_run_finished", ""), B: ("job_run_failed", "exit code 1: boom")}, (1, 1))
    assert lines == [
        "[   1.2 s] approval  do1: review · do2: approved",
        "[   2.2 s] server    do1: running · do2: running · rounds 0/1",
        "[   2.2 s] server    do1: finished · do2: FAILED (exit code 1: boom) · rounds 1/1",
    ]


def test_short_names_keep_the_whole_email_when_two_owners_share_a_name():
    assert short_names([A, "do1@hospital.org", B]) == {A: A, "do1@hospital.org": "do1@hospital.org", B: "do2"}


def test_reason_is_shown_only_for_an_ended_job():
    assert owner_state("rejected", "too broad") == "REJECTED (too broad)"
    assert owner_state("approved", "leftover") == "approved"
    assert owner_state("something_new") == "something new"


def test_rounds_done_counts_the_servers_wrote_lines(tmp_path):
    log = tmp_path / "server.log"
    assert rounds_done(log) == 0  # not started yet
    log.write_text("INFO : fed_app server: round 1: querying 2 node(s)\n"
                   "INFO : fed_app server: round 1: wrote /r/aggregate.json\n"
                   "INFO : fed_app server: round 2: querying 2 node(s)\n")
    assert rounds_done(log) == 1


def test_server_rounds_read_from_the_apps_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.flwr.app.config]\nnum-server-rounds = 3\n")
    assert server_rounds(tmp_path) == 3


# ---------------------------------------------------------------- a restarted DS


class Jobs:
    def __init__(self, stored: dict[uuid.UUID, str]):
        self.stored = stored

    def get(self, uid):
        if uid not in self.stored:
            raise ValueError(f"no job {uid}")
        return SimpleNamespace(uid=uid, status=SimpleNamespace(value=self.stored[uid]), error_message=None)


def settings_for(tmp_path: Path) -> ScientistSettings:
    app = tmp_path / "fed_app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "app.py").write_text("print('v1')\n")
    return ScientistSettings(party=Party("ds@openmined.org", "http://syftbox:5001", tmp_path / "home"),
                             dataset="d", datasites=[A, B], fed_app=app, results_dir=tmp_path / "results",
                             wait_timeout=5, round_timeout=5, min_replies=2)


def submitted(tmp_path: Path, statuses: dict[str, str]):
    """A DS that submitted to A and B, then stopped; the owners' stores hold `statuses`."""
    s = settings_for(tmp_path)
    s.party.state_dir.mkdir(parents=True)
    app_dir = tmp_path / "home" / "state" / "runs" / "r1" / "fed_app"
    app_dir.mkdir(parents=True)
    uids = {A: uuid.uuid4(), B: uuid.uuid4()}
    before = [Owner(e, job=SimpleNamespace(uid=uids[e])) for e in (A, B)]
    save_submission(s, app_dir, before)
    after = [Owner(e, session=SimpleNamespace(job=Jobs({uids[e]: statuses[e]}))) for e in (A, B)]
    return s, app_dir, after, uids


def test_a_restarted_ds_finds_its_jobs_still_alive_and_submits_nothing(tmp_path):
    s, app_dir, owners, uids = submitted(tmp_path, {A: "job_in_progress", B: "approved"})
    assert resume_submission(s, owners) == app_dir
    assert [(o.job.uid, o.status) for o in owners] == [(uids[A], "job_in_progress"), (uids[B], "approved")]


@pytest.mark.parametrize("ended", ["job_run_finished", "job_run_failed", "rejected"])
def test_a_submission_whose_job_ended_is_not_resumed(tmp_path, ended):
    s, _, owners, _ = submitted(tmp_path, {A: "job_in_progress", B: ended})
    assert resume_submission(s, owners) is None
    assert all(o.job is None for o in owners)


def test_a_changed_app_or_other_owners_are_submitted_afresh(tmp_path):
    s, app_dir, owners, _ = submitted(tmp_path, {A: "approved", B: "approved"})
    (s.fed_app / "app.py").write_text("print('v2')\n")
    assert resume_submission(s, owners) is None
    s, app_dir, owners, _ = submitted(tmp_path / "b", {A: "approved", B: "approved"})
    s.datasites.reverse()
    assert resume_submission(s, owners) is None


def test_a_job_gone_from_the_owners_store_or_no_record_means_submit(tmp_path):
    s, _, owners, _ = submitted(tmp_path, {A: "approved", B: "approved"})
    owners[1].session.job.stored.clear()
    assert resume_submission(s, owners) is None
    assert resume_submission(settings_for(tmp_path / "fresh"), owners) is None
    saved = json.loads((s.party.state_dir / "submission.json").read_text())
    assert saved["app_hash"] == code_hash(s.fed_app)


# ---------------------------------------------------------------- the dataset an owner publishes


def owner_with(names: list[str]) -> Owner:
    datasets = SimpleNamespace(get_all=lambda: [SimpleNamespace(name=n) for n in names])
    return Owner(A, session=SimpleNamespace(dataset=datasets))


def test_the_named_dataset_is_found():
    assert dataset_check("pima", owner_with(["cancer", "pima"]))() is True


def test_nothing_published_yet_keeps_waiting():
    check = dataset_check("pima", owner_with([]), grace=0)
    assert check() is False and check() is False


def test_other_datasets_but_never_ours_is_a_clear_error_after_the_grace():
    check = dataset_check("pima", owner_with(["cancer", "asthma"]), grace=0.05)
    assert check() is False  # could still be syncing
    time.sleep(0.1)
    with pytest.raises(WorkflowError, match=f"{A} has no dataset 'pima'; it publishes: asthma, cancer"):
        check()


# ---------------------------------------------------------------- the mock preview


def test_preview_writes_the_same_aggregate_the_server_writes(pima_csv, tmp_path):
    import pandas as pd

    from fed_app.preview import preview

    folders = []
    whole = pd.read_csv(pima_csv)
    for i, part in enumerate((whole.iloc[:100], whole.iloc[100:130])):
        folders.append(tmp_path / f"mock{i}")
        folders[-1].mkdir()
        part.to_csv(folders[-1] / "mock.csv", index=False)
    out = tmp_path / "out"
    result = preview(out, folders, "pima")
    saved = json.loads((out / "aggregate.json").read_text())
    assert saved == json.loads(json.dumps(result))
    age = saved["features"]["Age"]["by_outcome"]
    assert age["0"]["count"] + age["1"]["count"] == 130
    assert age["1"]["count"] == int((whole.iloc[:130]["Outcome"] == 1).sum())
    assert sorted(p.stem for p in (out / "figures").glob("*.png")) == sorted(saved["features"])


# ---------------------------------------------------------------- the Flower server's outcome


def fake_server(tmp_path: Path, main_py: str) -> tuple[ScientistSettings, Path]:
    app = tmp_path / "run" / "fed_app"
    app.mkdir(parents=True)
    (app / "pyproject.toml").write_text("[tool.flwr.app.config]\nnum-server-rounds = 1\n")
    (app / "main.py").write_text(main_py)
    return settings_for(tmp_path), app


def test_a_server_error_that_syft_flwr_swallows_still_fails_the_run_with_its_message(tmp_path):
    s, app = fake_server(tmp_path, "print('ERROR | Server encountered an error: round 1: only 1 of 3 datasite(s) "
                                   "replied, at least 2 needed (MIN_REPLIES)')\n")
    lines = []
    with pytest.raises(WorkflowError, match=r"^the Flower server failed: round 1: only 1 of 3 .*MIN_REPLIES\)$"):
        run_server(s, app, app.parent, [], Progress([], lines.append))
    assert lines and lines[-1].endswith("rounds 0/1")


def test_a_server_that_exits_non_zero_fails_the_run_with_its_last_lines(tmp_path):
    s, app = fake_server(tmp_path, "import sys\nprint('fed_app server: round 1: wrote x')\nsys.exit(3)\n")
    rounds = []
    with pytest.raises(WorkflowError, match=r"Flower server exited with 3:\nfed_app server: round 1: wrote x"):
        run_server(s, app, app.parent, rounds_seen=lambda done, total: rounds.append((done, total)))
    assert rounds[-1] == (1, 1)
