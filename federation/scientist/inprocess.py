"""The same app through `syft_flwr.run`: every party in one process, on local folders.

No sync server, no containers: the baseline the deployment is compared with
(scripts/bench). `syft_flwr.run` leaves its RDS servers running, so run this in
a process of its own (it is: `federation inprocess ...` in a throwaway container).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from federation.scientist.steps import bootstrap_copy


def run(fed_app: Path, data_dirs: list[Path], results_dir: Path) -> dict:
    import syft_flwr

    datasites = [f"do{i}@openmined.org" for i in range(1, len(data_dirs) + 1)]
    work = Path(tempfile.mkdtemp(prefix="inprocess-"))
    app_dir = bootstrap_copy(fed_app, work, "ds@openmined.org", datasites)
    os.environ.update(RESULTS_DIR=str(results_dir), DATASITES=",".join(datasites))
    started = time.monotonic()
    syft_flwr.run(app_dir, [str(d) for d in data_dirs])
    seconds = time.monotonic() - started
    aggregate = json.loads((results_dir / "aggregate.json").read_text())
    shutil.rmtree(work, ignore_errors=True)
    return {"seconds": round(seconds, 2), "replied": aggregate.get("replied"), "datasites": aggregate.get("datasites")}
