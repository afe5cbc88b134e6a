"""The DS's live status lines."""

from __future__ import annotations

from federation.common.statuses import short
from federation.scientist.flower_server import server_rounds
from federation.scientist.replies import Round, rounds_done
from federation.scientist.progress import Progress, short_names

A, B = "do1@openmined.org", "do2@openmined.org"

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
    assert short("rejected", "too broad") == "REJECTED (too broad)"
    assert short("approved", "leftover") == "approved"
    assert short("something_new") == "something new"


def test_rounds_done_from_the_messages(tmp_path):
    one = Round(1, ["a@x.org", "b@x.org"], ["a@x.org"])
    assert rounds_done([]) == 0  # not started yet
    assert rounds_done([one]) == 0  # b has not answered
    assert rounds_done([one], server_running=False) == 1  # the server gave up on b
    assert rounds_done([one, Round(2, ["a@x.org"])]) == 1  # a second round began
    assert rounds_done([Round(1, ["a@x.org"], [], {"a@x.org": "refused"})]) == 1  # an error is an answer


def test_server_rounds_read_from_the_apps_config(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.flwr.app.config]\nnum-server-rounds = 3\n")
    assert server_rounds(tmp_path) == 3


