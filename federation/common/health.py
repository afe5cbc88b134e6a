"""A role's health, as the container healthcheck sees it: one small JSON file.

The long-running role process writes its state; `federation health` reads it and
exits 0 only when the state is `ready`. A DO whose data was refused stays up in
state `failed`, so compose and a person both see why.
"""

from __future__ import annotations

import time

from federation.common import settings
from federation.common.files import atomic_write_json, read_json


def report(state: str, detail: str = "") -> None:
    atomic_write_json(settings.health_file(), {"state": state, "detail": detail, "at": time.time()}, indent=None)


def check() -> int:
    """Exit status for the healthcheck: 0 when ready; prints the state and why."""
    status = read_json(settings.health_file())
    if not isinstance(status, dict):
        print("starting")
        return 1
    print(f"{status['state']}: {status['detail']}".rstrip(": "))
    return 0 if status["state"] == "ready" else 1
