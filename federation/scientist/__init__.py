"""What only the data scientist runs: its session with each owner, the workflow's steps, the
Flower server's supervision, progress, the run record, the results page, simulate.
Nothing here imports federation.owner.

The public API, for a person in a notebook (ds/ds.ipynb) as much as for `federation ds`:

    settings = ScientistSettings.from_env()
    sync = attach(settings)                       # the ds container's running SyftBox client
    owners = [OwnerSession(e) for e in settings.datasites]
    login(sync, settings, owner); explore(settings, owner)
    app_dir = bootstrap(settings, run_dir); submit(settings, app_dir, owner)
    wait_until_running(settings, owners, sync); rounds = run_server(settings, app_dir, run_dir)
    replied, missing = check_replies(settings, rounds)   # from the Flower messages, for any app
    aggregate = read_aggregate(settings)                 # the bundled app's aggregate.json, or None

Every module behind it imports only the standard library at import time (syft-rds and
syft_flwr are imported where they are used), so the host scripts may import
`federation.scientist.run_record` without the app environment.
"""

from federation.common.logs import configure_logging
from federation.common.settings import ScientistSettings
from federation.common.syftbox import SyncClient, wait_for
from federation.scientist.errors import WorkflowError
from federation.scientist.flower_server import run_server
from federation.scientist.run_record import RunRecord
from federation.scientist.session import OwnerSession, attach, explore, login
from federation.scientist.steps import (bootstrap, check_replies, read_aggregate, submit, wait_until_running)

__all__ = ["OwnerSession", "RunRecord", "ScientistSettings", "SyncClient", "WorkflowError", "attach",
           "bootstrap", "check_replies", "configure_logging", "explore", "login", "read_aggregate", "run_server",
           "submit", "wait_for", "wait_until_running"]
