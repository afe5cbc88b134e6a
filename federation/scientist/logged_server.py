"""The DS's Flower server: the app's own `main.py` as syft_flwr wrote it, messages logged (replies.py).

    python -m federation.scientist.logged_server <bootstrapped app> <message log> [<go file> <run's pid>]

With `-` as the app, the go file names the app folder (the server starts before it is bootstrapped).

With a go file, it imports what a server needs first and waits for that file before it runs
`main.py` (or ends, once the run that started it is gone): the workflow starts it while the
owners review the jobs.
A module of its own, which the package does not import, so `-m` runs it fresh.
"""

from __future__ import annotations

import os
import runpy
import sys
import time
from pathlib import Path

from federation.common.processes import exit_without_teardown, import_ahead
from federation.scientist.replies import MessageLog, install

# What syft_flwr's main.py and most ServerApps import: seconds of start-up, done while waiting.
WARM = ("syft_core", "syft_flwr.config", "syft_flwr.run", "flwr.server", "numpy", "pandas", "matplotlib.pyplot")
GO_POLL = 0.05
WAITING = "Flower server started; its ServerApp runs once every owner's job runs"


def main(argv: list[str]) -> int:
    app_arg, log_path = argv[0], Path(argv[1])
    from syft_flwr import grid

    install(grid, MessageLog(log_path))
    if len(argv) > 2:
        parent = int(argv[3])  # not our getppid() now: the run may be gone already
        warming = import_ahead(WARM)
        print(WAITING, flush=True)
        go = Path(argv[2])
        while not go.exists():
            if os.getppid() != parent:  # the DS's run is gone without a word: nobody will say go
                return 1
            time.sleep(GO_POLL)
        warming.join()
        if app_arg == "-":
            app_arg = go.read_text().strip()
    app_dir = Path(app_arg).resolve()
    sys.argv = [str(app_dir / "main.py")]
    runpy.run_path(str(app_dir / "main.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    exit_without_teardown(main(sys.argv[1:]))
