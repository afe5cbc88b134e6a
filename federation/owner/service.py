"""A data owner's datasite, from start to serving jobs.

settings → private data checked → SyftBox client up → private folder kept off the
wire → keys → RDS server (admin) → guest permissions → dataset published
(synthetic mock public, private local) → runner.
"""

from __future__ import annotations

import logging
import time
import zlib
from pathlib import Path

from federation.common import health
from federation.common.kit import load_kit
from federation.common.settings import OwnerSettings
from federation.common.syftbox import SyncClient, point_libraries_at
from federation.owner import data
from federation.owner.permissions import grant_guest_access
from federation.owner.runner import Runner

log = logging.getLogger(__name__)

README = """# {name}

Pima Indians Diabetes data held by {email}. Columns: {columns}.
Outcome 1 = diabetes. A zero in Glucose, BloodPressure, SkinThickness, Insulin or BMI
means "not measured". The mock holds {mock} synthetic rows (no real row); the private
part ({rows} rows) never leaves this datasite: submit code to use it.
"""


def private_data(settings: OwnerSettings) -> tuple[Path, data.Table]:
    """The folder to publish as private data, and its checked rows.

    The owner's own CSVs when there are any; otherwise this owner's share of the
    public Pima file (demo mode), written to the owner's volume outside the synced tree.
    """
    if any(settings.private_dir.glob("*.csv")):
        table = data.read_private_csvs(settings.private_dir)
        log.info("private data: %d rows from %s", len(table.rows), settings.private_dir)
        return settings.private_dir, table
    home = settings.party.home
    public = data.public_pima(settings.pima_csv, settings.pima_url, cache=home / "cache" / "pima.csv")
    whole = data.read_csv(public)
    index, count = settings.demo_partition
    share = data.partition(whole, index, count)
    folder = home / "demo-private"
    data.write_csv(share, folder / f"pima-part-{index}-of-{count}.csv")
    log.info("no CSV in %s: demo mode, share %d/%d of the public Pima file (%d rows)",
             settings.private_dir, index, count, len(share.rows))
    return folder, share


def publish(rds, settings: OwnerSettings, private_dir: Path, table: data.Table) -> None:
    """Create the dataset once; a restarted owner finds it and publishes nothing twice."""
    name, home = settings.dataset, settings.party.home
    existing = {d.name for d in rds.dataset.get_all()}
    if name in existing:
        log.info("dataset %s already published", name)
        return
    mock = data.synthesize_mock(table, settings.mock_rows, seed=zlib.crc32(settings.party.email.encode()))
    mock_dir = home / "dataset-mock"
    data.write_csv(mock, mock_dir / "mock.csv")
    readme = home / "dataset-README.md"
    readme.write_text(README.format(
        name=name, email=settings.party.email, columns=", ".join(data.COLUMNS),
        mock=len(mock.rows), rows=len(table.rows)))
    rds.dataset.create(name=name, path=str(private_dir), mock_path=str(mock_dir),
                       summary=f"Pima diabetes data of {settings.party.email}",
                       description_path=str(readme))
    log.info("dataset %s published: %d private rows stay here, %d synthetic mock rows public",
             name, len(table.rows), len(mock.rows))


def main() -> int:
    health.report("starting")
    settings = OwnerSettings.from_env()
    load_kit(settings.party.kit, settings.party.email)  # no kit, no owner: before anything is touched
    try:
        private_dir, table = private_data(settings)
    except data.DatasetError as e:
        log.error("dataset not published: %s", e)
        health.report("failed", f"dataset not published: {e}")
        while True:  # stay up, unhealthy, so the reason is visible
            time.sleep(3600)

    point_libraries_at(settings.party)
    sync = SyncClient(settings.party)
    try:
        serve(settings, sync, private_dir, table)
    finally:
        sync.stop()
    return 0


def serve(settings: OwnerSettings, sync: SyncClient, private_dir: Path, table: data.Table) -> None:
    sync.start()
    sync.keep_off_the_wire("private")  # syft-rds 0.4.0 copies private data here
    sync.ensure_keys()

    import syft_rds
    from syft_rds.client.rds_clients.base import ClientRunnerConfig

    rds = syft_rds.init_session(
        host=settings.party.email,
        syftbox_client_config_path=settings.party.config_path,
        start_rds_server=True,
        runner_config=ClientRunnerConfig(job_output_folder=settings.party.state_dir / "rds-jobs"),
    )
    if not rds.is_admin:
        raise RuntimeError(f"{settings.party.email} is not admin of its own datasite")
    # syft-rds 0.4.0's init_session may return while its RDS server still works through old
    # requests, before it watches for new ones; a request sent in that gap is never answered
    # (a restarted owner's first job update hung so). A fresh probe answered means it watches.
    from syft_rds.client.rds_client import rds_server_running

    sync.wait(lambda: rds_server_running(settings.party.email), 60, "the RDS server to take requests", 0.5)
    grant_guest_access(sync.datasite)
    publish(rds, settings, private_dir, table)

    health.report("ready", f"serving {settings.dataset}")
    Runner(rds, sync, settings.policy, settings.party.state_dir, settings.job_timeout,
           jobs_dir=settings.jobs_dir, egress=settings.egress).serve_forever()
