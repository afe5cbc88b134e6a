"""`python -m federation.scientist.logged_server <bootstrapped app> <message log>`: the DS's
Flower server, the app's own `main.py` as syft_flwr wrote it, with its messages logged (replies.py).

A module of its own, which the package does not import, so `-m` runs it fresh.
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

from federation.scientist.replies import MessageLog, install


def main(argv: list[str]) -> int:
    app_dir, log_path = Path(argv[0]).resolve(), Path(argv[1])
    from syft_flwr import grid

    install(grid, MessageLog(log_path))
    sys.argv = [str(app_dir / "main.py")]
    runpy.run_path(str(app_dir / "main.py"), run_name="__main__")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
