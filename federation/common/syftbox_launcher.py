"""Start the legacy SyftBox client (PyPI `syftbox` 0.4.0) with a tunable sync loop.

Runs in the syftbox virtual environment, not the app one, so it imports nothing
from this project. syftbox 0.4.0 hard-codes a 1 s sync loop in
`SyncManager.__init__`; `--sync-interval SECONDS` (first, before the syftbox
arguments) overrides it: shorter loops cut end-to-end latency and cost idle CPU.

    python syftbox_launcher.py [--sync-interval S] client --config ... --email ... [syftbox client options]
"""

import os
import sys

# Run as a script, this file's folder would come first on sys.path and its
# modules would shadow the syftbox package's own imports.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]


def _patch_sync_interval(seconds: float) -> None:
    from syftbox.client.plugins.sync import manager

    original_init = manager.SyncManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self.sync_interval = seconds

    manager.SyncManager.__init__ = init


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--sync-interval"]:
        _patch_sync_interval(float(args[1]))
        args = args[2:]
    from syftbox.main import main

    sys.argv = ["syftbox", *args]
    sys.exit(main())
