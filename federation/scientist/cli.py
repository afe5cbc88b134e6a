"""The data scientist's side of `datasite`: where my jobs stand.

    datasite status                     each owner: reachable, dataset present, my job's status
"""

from __future__ import annotations

from federation.common.settings import Party, ScientistSettings
from federation.common.statuses import JobStatus
from federation.common.text import table
from federation.scientist.run_record import RunRecord
from federation.scientist.session import guest_session


def cmd_status(party: Party, args) -> int:
    settings = ScientistSettings.from_env()
    datasites = party.syftbox_dir / "datasites"
    last_run = RunRecord.read(settings.results_dir / "run.json")
    rows = []
    for owner in settings.datasites:
        reachable = (datasites / owner / "public" / "did.json").exists()
        present, status, why = "no", "-", ""
        if reachable:
            rds = guest_session(settings, owner)
            present = "yes" if any(d.name == settings.dataset for d in rds.dataset.get_all()) else "no"
            mine = [j for j in rds.job.get_all() if j.created_by == party.email]
            if mine:
                job = max(mine, key=lambda j: j.created_at)
                status, why = f"{job.status.value} ({job.uid.hex[:8]})", job.error_message or ""
            else:  # an ended job leaves the owner's synced tree (its SYNCED_RETENTION): the last run saw it
                seen = last_run.owners.get(owner) if last_run else None
                ended = seen is not None and (known := JobStatus.of(seen.status)) is not None and known.ended
                status, why = ((f"{seen.status} (the last run's; moved out of the owner's synced tree)", seen.reason)
                               if ended else ("no job yet", ""))
        rows.append([owner, "yes" if reachable else "no", present, status, why])
    print(table(rows, ["OWNER", "REACHABLE", "DATASET", "MY LATEST JOB", "REASON"]))
    return 0


def add_commands(sub) -> None:
    sub.add_parser("status", help="(data scientist) where my jobs stand").set_defaults(fn=cmd_status)
