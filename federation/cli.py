"""`federation ROLE`: the one entry point of the image.

    federation server   the SyftBox sync server (legacy Python server, own venv), HTTPS only
    federation credentials
                        one-shot: the server's secret, CA and certificate, and the demo
                        parties' kits (one volume each under /kits)
    federation invite EMAIL [--server-url URL] [--expires-days N] [--replace]
                        print a kit for EMAIL: the credential that makes its holder that party
    federation do       a data owner: publish the dataset, run approved jobs
    federation ds       the data scientist's workflow, then serve the results
    federation submit [SECONDS]
                        submit the app to every owner only, watch the jobs, print
                        their status as one line `RESULT {json}`
    federation simulate rehearse the app offline: `flwr run` on shares of the public
                        file (PIMA_CSV), syft_flwr.run on the owners' mocks; outputs in
                        RESULTS_DIR/simulation/{flwr,syft_flwr}/, one summary line each
    federation inprocess RESULTS_DIR DATA_DIR...
                        the same app through syft_flwr.run in this one process (benchmark)
    federation executor an owner's job executor (its own container: no network, no
                        credentials): runs the jobs its runner puts on the jobs volume
    federation health   healthcheck of the role running in this container
"""

from __future__ import annotations

import signal
import sys

from federation.common import settings
from federation.common.kit import KitError
from federation.common.settings import SettingsError


def inprocess(argv: list[str]) -> int:
    import json
    from pathlib import Path

    from federation.scientist.inprocess import run

    result = run(settings.fed_app_dir(), [Path(a) for a in argv[1:]], Path(argv[0]))
    print("RESULT " + json.dumps(result))
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    role = argv[0] if argv else ""
    if role in ("server", "credentials", "invite"):
        from federation.sync_server.service import main as operator_main

        return operator_main(role, argv[1:])
    if role == "executor":
        from federation.owner.executor import main as executor_main

        try:
            return executor_main()
        except SettingsError as e:
            print(f"federation executor: {e}", file=sys.stderr)
            return 2
    if role == "health":
        from federation.common.health import check

        return check()
    if role == "inprocess" and len(argv) >= 3:
        return inprocess(argv[1:])
    if role not in ("do", "ds", "submit", "simulate"):
        print(__doc__, file=sys.stderr)
        return 2

    from federation.common.logs import configure_logging

    configure_logging()
    # `docker stop` sends SIGTERM to this process: unwind (closing the SyftBox client,
    # which then removes its pidfile) instead of being killed mid-write.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(128 + signal.SIGTERM))
    try:
        if role == "do":
            from federation.owner.service import main as role_main
        elif role == "submit":
            from federation.scientist.workflow import submit_only

            return submit_only(float(argv[1]) if len(argv) > 1 else 10.0)
        elif role == "simulate":
            from federation.scientist.simulate import main as role_main
        else:
            from federation.scientist.workflow import main as role_main
        return role_main()
    except (SettingsError, KitError) as e:
        print(f"federation {role}: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # one clear line for a person; the traceback with LOG_LEVEL=DEBUG
        import logging

        logging.getLogger("federation").debug("traceback", exc_info=True)
        print(f"federation {role}: failed: {type(e).__name__}: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
