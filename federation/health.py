"""A role's health, as the container healthcheck sees it: one small JSON file.

The long-running role process writes its state; `federation health` reads it and
exits 0 only when the state is `ready`. A DO whose data was refused stays up in
state `failed`, so compose and a person both see why.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

HEALTH_FILE = Path(os.environ.get("HEALTH_FILE", "/tmp/federation-health.json"))


def report(state: str, detail: str = "") -> None:
    tmp = HEALTH_FILE.with_suffix(".tmp")
    tmp.write_text(json.dumps({"state": state, "detail": detail, "at": time.time()}))
    tmp.replace(HEALTH_FILE)


def check() -> int:
    """Exit status for the healthcheck: 0 when ready; prints the state and why."""
    try:
        status = json.loads(HEALTH_FILE.read_text())
    except (OSError, ValueError):
        print("starting")
        return 1
    print(f"{status['state']}: {status['detail']}".rstrip(": "))
    return 0 if status["state"] == "ready" else 1
