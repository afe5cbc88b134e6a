"""A DS restarted mid-run finds the submission it made before, instead of submitting twice.

The DS notes each submission (`state/submission.json`: app folder, the app's code hash,
the owners, one job id each); on start it resumes that submission when the owners and the
app are the same and every job is still alive at its owner.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

from federation.common.codehash import code_hash
from federation.common.files import atomic_write_json, read_json
from federation.common.settings import ScientistSettings
from federation.common.statuses import JobStatus
from federation.scientist.session import OwnerSession

log = logging.getLogger(__name__)


def submission_file(settings: ScientistSettings) -> Path:
    return settings.party.state_dir / "submission.json"


def save_submission(settings: ScientistSettings, app_dir: Path, owners: list[OwnerSession]) -> None:
    atomic_write_json(submission_file(settings), {
        "app_dir": str(app_dir), "app_hash": code_hash(settings.fed_app), "datasites": settings.datasites,
        "jobs": {o.email: o.job.uid.hex for o in owners}}, indent=None)


def resume_submission(settings: ScientistSettings, owners: list[OwnerSession]) -> Path | None:
    """The app folder of a submission this DS made before it was restarted, when every job of
    it is still alive at its owner (same owners, same app); None means submit afresh."""
    saved = read_json(submission_file(settings))
    if not isinstance(saved, dict):
        return None
    app_dir = Path(saved.get("app_dir", ""))
    if (saved.get("datasites") != settings.datasites or not app_dir.is_dir()
            or saved.get("app_hash") != code_hash(settings.fed_app)):
        return None
    found = {}
    for o in owners:
        try:
            job = o.session.job.get(uid=uuid.UUID(saved["jobs"][o.email]))
        except Exception:  # not in the owner's store (any more): nothing to resume
            return None
        if (status := JobStatus.of(job.status)) is not None and status.ended:
            return None
        found[o.email] = job
    for o in owners:
        o.job, o.status, o.reason = found[o.email], found[o.email].status.value, found[o.email].error_message or ""
    log.info("found this DS's earlier submission (jobs %s): waiting for it instead of submitting again",
             ", ".join(j.uid.hex[:8] for j in found.values()))
    return app_dir
