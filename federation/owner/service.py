"""A data owner's datasite, from start to serving jobs.

settings → datasets checked (each folder of DATASETS_DIR, and the Pima demo share) →
SyftBox client up → private folder and job code kept off the wire → keys → RDS server (admin) → guest
permissions → datasets published (mock public, private local) → runner (which also moves
ended jobs' files out of the synced tree: retention.py).
"""

from __future__ import annotations

import logging
import time

from federation.common import health
from federation.common.kit import load_kit
from federation.common.settings import OwnerSettings
from federation.common.syftbox import SyncClient, point_libraries_at
from federation.owner import data
from federation.owner.permissions import grant_guest_access
from federation.owner.retention import Layout, Retention
from federation.owner.runner import Runner

log = logging.getLogger(__name__)

# A request to its own RDS server is answered within a second or two, or lost (syft-rpc's file
# race): syft-rds's own 5 min wait would hold a job's status back that long (the runner stores
# a status again when a wait ends empty).
RPC_EXPIRY = "45s"

# Folders of the owner's datasite its client never uploads, and why. The code of a job: the RDS
# server unzips each submitted app there for the runner; synced, each file went up and down to
# the DS again (11 files a job, 4 requests each: a fifth of an 8-owner run's requests).
NEVER_SYNCED = {
    "private": "private to this party (syft-rds 0.4.0 copies private data here)",
    "app_data/RDS/user_files": "the code of submitted jobs, run here only",
}


def datasets(settings: OwnerSettings) -> list[data.Dataset]:
    """Every dataset this owner publishes, checked and with its mock ready: its dataset folders,
    and (a demo owner) its share of the public Pima file, unless it holds a dataset of that
    name itself. All before the owner goes online, so bad data stops it with one clear line."""
    email, home = settings.party.email, settings.party.home
    found = data.find_datasets(settings.datasets_dir, settings.allow_real_mock_rows)
    if settings.demo_partition is not None and settings.demo_dataset not in {d.name for d in found}:
        index, count = settings.demo_partition
        try:
            public = data.public_pima(settings.pima_csv, settings.pima_url, cache=home / "cache" / "pima.csv")
        except data.DatasetError as e:
            if not found:
                raise
            log.warning("no demo share (%s); serving the owner's own datasets", e)
        else:
            found.append(data.demo_dataset(settings.demo_dataset, public, index, count, home / "demo", email))
    if not found:
        raise data.DatasetError(f"no dataset: put one in {settings.datasets_dir}/<name>/private/ "
                                "(or set DEMO_PARTITION for the Pima demo)")
    for d in found:
        if d.mock_dir is None:
            d.made_mock = data.make_mock(d, home / "mocks" / d.name, settings.mock_rows, seed_text=email)
        log.info("dataset %s: %d row(s) in %d CSV file(s) in %s; mock %s", d.name, d.rows, len(d.tables),
                 d.private_dir, "given" if d.mock_dir else "made here")
    return found


def publish(rds, settings: OwnerSettings, dataset: data.Dataset) -> None:
    """Create the dataset once; a restarted owner finds it and publishes nothing twice."""
    home, email = settings.party.home, settings.party.email
    if dataset.name in {d.name for d in rds.dataset.get_all()}:
        log.info("dataset %s already published (a changed folder is not published again)", dataset.name)
        return
    readme = dataset.readme
    if readme is None:
        readme = home / "readmes" / f"{dataset.name}.md"
        readme.parent.mkdir(parents=True, exist_ok=True)
        readme.write_text(data.describe(dataset, email))
    rds.dataset.create(name=dataset.name, path=str(dataset.private_dir), mock_path=str(dataset.published_mock),
                       summary=f"{dataset.name} of {email}", description_path=str(readme))
    log.info("dataset %s published: %d private rows stay here, the mock is public%s", dataset.name, dataset.rows,
             " (with real rows: ALLOW_REAL_ROWS_IN_MOCK)" if dataset.real_mock_rows else "")


def main() -> int:
    health.report("starting")
    settings = OwnerSettings.from_env()
    load_kit(settings.party.kit, settings.party.email)  # no kit, no owner: before anything is touched
    try:
        held = datasets(settings)
    except data.DatasetError as e:
        log.error("dataset not published: %s", e)
        health.report("failed", f"dataset not published: {e}")
        while True:  # stay up, unhealthy, so the reason is visible
            time.sleep(3600)

    point_libraries_at(settings.party)
    sync = SyncClient(settings.party)
    try:
        serve(settings, sync, held)
    finally:
        sync.stop()
    return 0


def start_rds_server(config_path):
    """This datasite's RDS server, started in this process; its SyftBox client config.

    syft-rds's `init_session(start_rds_server=True)` starts one only after asking whether one
    answers, and that question waits out its 3 s expiry; the caller knows that none does, so it
    is started straight away (as syft-rds would, and known to it by host).
    """
    import atexit

    from syft_core import Client
    from syft_rds.client import rds_client

    box = Client.load(config_path)
    running = rds_client._RUNNING_RDS_SERVERS.get(box.email)
    if running is None or not running["thread"].is_alive():
        rds_client._RUNNING_RDS_SERVERS[box.email] = rds_client._start_server_thread(box)
        atexit.register(rds_client._cleanup_servers)
    return box


def import_syft_rds() -> None:
    import syft_rds  # noqa: F401  (about a second of CPU)
    from syft_rds.client import rds_client  # noqa: F401


def serve(settings: OwnerSettings, sync: SyncClient, held: list[data.Dataset]) -> None:
    sync.start(meanwhile=import_syft_rds)  # the two start-ups overlap
    sync.sync_only_own_and_keys()
    for folder, why in NEVER_SYNCED.items():
        sync.keep_off_the_wire(folder, why)
    sync.ensure_keys()

    import syft_rds
    from syft_rds.client.rds_clients.base import ClientRunnerConfig

    # This process's own client: no other process serves the datasite. Else (a second command
    # in this container) syft-rds asks first, and starts one only if none answers.
    box = None if sync.reused else start_rds_server(settings.party.config_path)
    rds = syft_rds.init_session(
        host=settings.party.email,
        syftbox_client=box,
        syftbox_client_config_path=settings.party.config_path,
        start_rds_server=True,  # running already: the check is answered at once
        runner_config=ClientRunnerConfig(job_output_folder=settings.party.state_dir / "rds-jobs"),
        rpc_expiry=RPC_EXPIRY,
    )
    if not rds.is_admin:
        raise RuntimeError(f"{settings.party.email} is not admin of its own datasite")
    from syft_rds.client.rds_client import rds_server_running

    grant_guest_access(sync.datasite)
    for dataset in held:  # a guest's request sent before the probe answers waits for the server
        publish(rds, settings, dataset)
    # A fresh probe answered: the RDS server takes requests (syft-rds 0.4.0 used to return while
    # its server still listed old requests, before it watched; syft_patches now watches first).
    sync.wait(lambda: rds_server_running(settings.party.email), 60, "the RDS server to take requests", 0.2)

    health.report("ready", f"serving {', '.join(d.name for d in held)}")
    Runner(rds, sync, settings.policy, settings.party.state_dir, settings.job_timeout,
           jobs_dir=settings.jobs_dir, egress=settings.egress,
           strict_dependencies=settings.strict_dependencies,
           retention=Retention(Layout(sync.datasites, settings.party.email), settings.party.state_dir,
                               settings.synced_retention)).serve_forever()
