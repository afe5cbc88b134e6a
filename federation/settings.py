"""What a container is told through its environment, read once and checked.

Every setting has one name here; a missing or malformed one is a `SettingsError`
with a message that names the variable, so a container fails at start, not later.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from federation.policy import Policy

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_DATASET = "pima-indians-diabetes-database"


class SettingsError(ValueError):
    """A setting is missing or malformed."""


def _get(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None or value.strip() == "":
        raise SettingsError(f"setting {name} is required but not set")
    return value.strip()


def _email(name: str, value: str | None = None) -> str:
    value = _get(name) if value is None else value.strip()
    if not EMAIL_RE.match(value):
        raise SettingsError(f"setting {name}: {value!r} is not an email address")
    return value


def _emails(name: str, default: str | None = None) -> list[str]:
    raw = _get(name, default)
    emails = [e.strip() for e in raw.split(",") if e.strip()]
    for e in emails:
        _email(name, e)
    if not emails:
        raise SettingsError(f"setting {name} lists no email address")
    return emails


def _float(name: str, default: str) -> float:
    raw = _get(name, default)
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"setting {name}: {raw!r} is not a number") from None
    if value <= 0:
        raise SettingsError(f"setting {name}: must be > 0, got {raw}")
    return value


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(name, default).lower()
    if value not in choices:
        raise SettingsError(f"setting {name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _hashes(name: str) -> tuple[str, ...]:
    raw = os.environ.get(name, "")
    hashes = tuple(h.strip().lower() for h in raw.split(",") if h.strip())
    for h in hashes:
        if not re.fullmatch(r"[0-9a-f]{64}", h):
            raise SettingsError(f"setting {name}: {h!r} is not a sha256 (64 hex digits)")
    return hashes


def _count(name: str, default: str) -> int:
    raw = _get(name, default)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"setting {name}: {raw!r} is not a whole number >= 1")
    return int(raw)


@dataclass(frozen=True)
class Party:
    """Settings every party (DO or DS) shares: who it is and where its SyftBox lives."""

    email: str
    server_url: str
    home: Path  # the party's volume: SyftBox data, keys, state

    @property
    def syftbox_dir(self) -> Path:
        return self.home / "SyftBox"

    @property
    def config_path(self) -> Path:
        return self.home / "config.json"

    @property
    def state_dir(self) -> Path:
        return self.home / "state"

    @classmethod
    def from_env(cls) -> "Party":
        return cls(
            email=_email("SYFTBOX_EMAIL"),
            server_url=_get("SYFTBOX_SERVER_URL", "http://syftbox:5001"),
            home=Path(_get("FEDERATION_HOME", str(Path.home() / "federation"))),
        )


@dataclass(frozen=True)
class OwnerSettings:
    party: Party
    dataset: str
    private_dir: Path  # the owner's own CSVs, mounted read-only
    pima_csv: Path | None  # optional local copy of the public file, for the demo
    pima_url: str
    demo_partition: tuple[int, int]  # (index from 1, count)
    policy: Policy  # which jobs run without a person
    mock_rows: int
    job_timeout: float

    @classmethod
    def from_env(cls) -> "OwnerSettings":
        part = _get("DEMO_PARTITION", "1/1")
        m = re.fullmatch(r"(\d+)/(\d+)", part)
        if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
            raise SettingsError(f"setting DEMO_PARTITION: {part!r} is not of the form i/n with 1 <= i <= n")
        pima = os.environ.get("PIMA_CSV", "").strip()
        mode = _choice("APPROVAL", "auto", ("auto", "manual"))
        # Required in auto mode; in manual mode only a record of whom the owner trusts.
        allowlist = (_emails("APPROVE_JOBS_FROM")
                     if mode == "auto" or os.environ.get("APPROVE_JOBS_FROM", "").strip() else [])
        return cls(
            party=Party.from_env(),
            dataset=_get("DATASET_NAME", DEFAULT_DATASET),
            private_dir=Path(_get("PRIVATE_DATA_DIR", "/data/private")),
            pima_csv=Path(pima) if pima else None,
            pima_url=_get(
                "PIMA_URL",
                "https://raw.githubusercontent.com/plotly/datasets/master/diabetes.csv",
            ),
            demo_partition=(int(m.group(1)), int(m.group(2))),
            policy=Policy(
                mode=mode,
                allowlist=tuple(allowlist),
                pinned_hashes=_hashes("APPROVED_CODE_HASHES"),
                otherwise=_choice("UNAPPROVED_JOBS", "pending", ("pending", "reject")),
            ),
            mock_rows=_count("MOCK_ROWS", "40"),
            job_timeout=_float("JOB_TIMEOUT", "600"),
        )


@dataclass(frozen=True)
class ScientistSettings:
    party: Party
    dataset: str
    datasites: list[str]
    fed_app: Path
    results_dir: Path
    wait_timeout: float  # for each owner's dataset and job approval
    round_timeout: float  # for every owner's reply in a Flower round
    min_replies: int  # owners that must reply for a run to count (the others are listed as missing)

    @classmethod
    def from_env(cls) -> "ScientistSettings":
        datasites = _emails("DATASITES")
        if len({e.lower() for e in datasites}) < len(datasites):
            raise SettingsError("setting DATASITES names an owner twice")
        min_replies = _count("MIN_REPLIES", str(len(datasites)))
        if min_replies > len(datasites):
            raise SettingsError(f"setting MIN_REPLIES: {min_replies} but DATASITES names only {len(datasites)} owner(s)")
        return cls(
            party=Party.from_env(),
            dataset=_get("DATASET_NAME", DEFAULT_DATASET),
            datasites=datasites,
            fed_app=Path(_get("FED_APP_DIR", "/app/fed_app")),
            results_dir=Path(_get("RESULTS_DIR", str(Path.home() / "results"))),
            wait_timeout=_float("WAIT_TIMEOUT", "300"),
            round_timeout=_float("ROUND_TIMEOUT", "120"),
            min_replies=min_replies,
        )
