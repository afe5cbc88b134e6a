"""What a container is told through its environment: every variable is read here, once, and checked.

Each setting has one name here; a missing or malformed one is a `SettingsError` whose message
names the variable, so a container fails at start, not later. The environment a child
process gets (the Flower server, a job, a simulation) is made by `child_environment`.
Nothing here writes to `os.environ`.

It is longer than 300 lines by design: it is the one place every role's settings are read.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
DEFAULT_DATASET = "pima-indians-diabetes-database"
DEFAULT_SERVER_URL = "https://syftbox:5001"
DEFAULT_KIT = "/run/federation/kit/kit.json"
PIMA_URL = "https://raw.githubusercontent.com/plotly/datasets/master/diabetes.csv"


class SettingsError(ValueError):
    """A setting is missing or malformed."""


# ---------------------------------------------------------------- reading one variable


def _raw(name: str) -> str:
    return os.environ.get(name, "").strip()


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


UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
MIN_RETENTION = 30.0  # s: the DS reads a job's final status and its Flower replies well within this


def _duration(name: str, default: str, minimum: float) -> float:
    """Seconds, from e.g. 90, 90s, 15m, 6h or 1d."""
    raw = _get(name, default).strip().lower()
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", raw)
    if not m:
        raise SettingsError(f"setting {name}: {raw!r} is not a duration (e.g. 90s, 15m, 6h, 1d)")
    seconds = float(m.group(1)) * UNITS[m.group(2) or "s"]
    if seconds < minimum:
        raise SettingsError(f"setting {name}: {raw!r} is shorter than the minimum of {minimum:g} s")
    return seconds


def _choice(name: str, default: str, choices: tuple[str, ...]) -> str:
    value = _get(name, default).lower()
    if value not in choices:
        raise SettingsError(f"setting {name}: {value!r} is not one of {', '.join(choices)}")
    return value


def _hashes(name: str) -> tuple[str, ...]:
    hashes = tuple(h.strip().lower() for h in _raw(name).split(",") if h.strip())
    for h in hashes:
        if not re.fullmatch(r"[0-9a-f]{64}", h):
            raise SettingsError(f"setting {name}: {h!r} is not a sha256 (64 hex digits)")
    return hashes


def _count(name: str, default: str) -> int:
    raw = _get(name, default)
    if not raw.isdigit() or int(raw) < 1:
        raise SettingsError(f"setting {name}: {raw!r} is not a whole number >= 1")
    return int(raw)


def _port(name: str, default: str) -> int:
    raw = _get(name, default)
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise SettingsError(f"setting {name}: {raw!r} is not a port number")
    return int(raw)


def _optional_path(name: str) -> Path | None:
    raw = _raw(name)
    return Path(raw) if raw else None


# ---------------------------------------------------------------- every role


def log_level() -> str:
    """LOG_LEVEL: INFO by default, DEBUG for everything behind the progress lines."""
    return _raw("LOG_LEVEL").upper() or "INFO"


def syft_log_level(default: str) -> str:
    """SYFT_LOG_LEVEL: what the syft-* libraries (loguru) may print."""
    return _raw("SYFT_LOG_LEVEL") or default


def syft_client_config() -> Path | None:
    """SYFTBOX_CLIENT_CONFIG_PATH: the SyftBox client config the syft libraries use in this
    process (the role's main sets it; a confined job and the host tests have none)."""
    return _optional_path("SYFTBOX_CLIENT_CONFIG_PATH")


def health_file() -> Path:
    return Path(_raw("HEALTH_FILE") or "/tmp/federation-health.json")


def syftbox_bin() -> Path:
    """The legacy SyftBox package's own virtual environment (its pins clash with line A)."""
    return Path(_raw("SYFTBOX_BIN") or "/opt/syftbox/bin")


@dataclass(frozen=True)
class Party:
    """Settings every party (DO or DS) shares: who it is, where its SyftBox lives, its client."""

    email: str
    server_url: str | None  # None: the one in the party's kit
    home: Path  # the party's volume: SyftBox data, keys, state
    kit: Path = Path(DEFAULT_KIT)  # the party's credential from the network's operator
    client_port: int = 7938  # the SyftBox client's local API (its liveness probe)
    sync_interval: float | None = None  # the client's sync loop in s; None: syftbox's own 1 s

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
        interval = _raw("SYFTBOX_SYNC_INTERVAL")
        return cls(
            email=_email("SYFTBOX_EMAIL"),
            server_url=_raw("SYFTBOX_SERVER_URL") or None,
            home=Path(_get("FEDERATION_HOME", str(Path.home() / "federation"))),
            kit=Path(_get("KIT_FILE", DEFAULT_KIT)),
            client_port=_port("SYFTBOX_CLIENT_PORT", "7938"),
            sync_interval=_float("SYFTBOX_SYNC_INTERVAL", interval) if interval else None,
        )


# ---------------------------------------------------------------- the data owner


@dataclass(frozen=True)
class Policy:
    """Which jobs run without a person (the owner's approval settings; `owner.policy` decides)."""

    mode: str = "auto"  # auto | manual
    allowlist: tuple[str, ...] = ()
    pinned_hashes: tuple[str, ...] = ()  # empty: any code from an allowlisted submitter
    otherwise: str = "pending"  # what auto mode does with a job it does not approve: pending | reject

    def __post_init__(self):
        if self.mode not in ("auto", "manual"):
            raise ValueError(f"approval mode must be auto or manual, not {self.mode!r}")
        if self.otherwise not in ("pending", "reject"):
            raise ValueError(f"unapproved jobs must be left pending or rejected, not {self.otherwise!r}")


DEFAULT_COUNT_PATTERNS = ("*/hist", "*/count", "*/missing", "*_hist_*", "*_count_*", "*_hist", "*_count")


@dataclass(frozen=True)
class EgressRules:
    """What a reply may carry out of the datasite (`owner.egress` applies them)."""

    max_bytes: int = 16384
    small_count_k: int = 5  # counts 1..k-1 are sent as 0; 1 turns the rule off
    count_patterns: tuple[str, ...] = DEFAULT_COUNT_PATTERNS
    approval: str = "auto"  # auto | manual: a person releases each reply
    approval_timeout: float = 3600.0

    @classmethod
    def from_env(cls) -> "EgressRules":
        patterns = tuple(p.strip() for p in _raw("COUNT_PATTERNS").split(",") if p.strip())
        return cls(max_bytes=_count("REPLY_MAX_BYTES", "16384"),
                   small_count_k=_count("SMALL_COUNT_K", "5"),
                   count_patterns=patterns or DEFAULT_COUNT_PATTERNS,
                   approval=_choice("REPLY_APPROVAL", "auto", ("auto", "manual")),
                   approval_timeout=_float("REPLY_APPROVAL_TIMEOUT", "3600"))


@dataclass(frozen=True)
class ExecutorSettings:
    """The executor container's: where jobs arrive, and what each may write."""

    jobs_dir: Path
    disk_mb: float
    file_mb: float

    @classmethod
    def from_env(cls) -> "ExecutorSettings":
        return cls(jobs_dir=Path(_get("JOBS_DIR", "/jobs")), disk_mb=_float("JOB_DISK_MB", "512"),
                   file_mb=_float("JOB_FILE_MB", "256"))


def _flag(name: str, default: str = "false") -> bool:
    return _choice(name, default, ("true", "false", "yes", "no", "1", "0")) in ("true", "yes", "1")


@dataclass(frozen=True)
class OwnerSettings:
    party: Party
    datasets_dir: Path  # one folder per dataset (private/, mock/, README.md), mounted read-only
    pima_csv: Path | None  # optional local copy of the public file, for the demo
    pima_url: str
    demo_partition: tuple[int, int] | None  # (index from 1, count) of the Pima demo; None: no demo
    policy: Policy  # which jobs run without a person
    mock_rows: int  # rows of each mock file the owner makes
    job_timeout: float
    egress: EgressRules = EgressRules()
    jobs_dir: Path = Path("/jobs")  # shared with the owner's executor, and nothing else
    allow_real_mock_rows: bool = False  # publish a given mock even when it holds private rows
    strict_dependencies: bool = False  # a job whose declared versions differ from the owner's is rejected
    demo_dataset: str = DEFAULT_DATASET
    synced_retention: float = 900.0  # s an ended job's files stay in the synced tree (then: state)

    @classmethod
    def from_env(cls) -> "OwnerSettings":
        part = _get("DEMO_PARTITION", "1/1")
        demo = None
        if part.lower() != "off":
            m = re.fullmatch(r"(\d+)/(\d+)", part)
            if not m or not (1 <= int(m.group(1)) <= int(m.group(2))):
                raise SettingsError(f"setting DEMO_PARTITION: {part!r} is not of the form i/n with 1 <= i <= n, "
                                    "or off")
            demo = (int(m.group(1)), int(m.group(2)))
        mode = _choice("APPROVAL", "auto", ("auto", "manual"))
        # Required in auto mode; in manual mode only a record of whom the owner trusts.
        allowlist = _emails("APPROVE_JOBS_FROM") if mode == "auto" or _raw("APPROVE_JOBS_FROM") else []
        return cls(
            party=Party.from_env(),
            datasets_dir=Path(_get("DATASETS_DIR", "/data/datasets")),
            pima_csv=_optional_path("PIMA_CSV"),
            pima_url=_get("PIMA_URL", PIMA_URL),
            demo_partition=demo,
            policy=Policy(
                mode=mode,
                allowlist=tuple(allowlist),
                pinned_hashes=_hashes("APPROVED_CODE_HASHES"),
                otherwise=_choice("UNAPPROVED_JOBS", "pending", ("pending", "reject")),
            ),
            mock_rows=_count("MOCK_ROWS", "40"),
            job_timeout=_float("JOB_TIMEOUT", "600"),
            egress=EgressRules.from_env(),
            jobs_dir=Path(_get("JOBS_DIR", "/jobs")),
            allow_real_mock_rows=_flag("ALLOW_REAL_ROWS_IN_MOCK"),
            strict_dependencies=_flag("STRICT_DEPENDENCIES"),
            synced_retention=_duration("SYNCED_RETENTION", "15m", MIN_RETENTION),
        )


# ---------------------------------------------------------------- the data scientist


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
    results_port: int = 8080  # the results page
    pima_csv: Path | None = None  # the public file `simulate` partitions for Flower's simulation

    @classmethod
    def from_env(cls) -> "ScientistSettings":
        datasites = _emails("DATASITES")
        if len({e.lower() for e in datasites}) < len(datasites):
            raise SettingsError("setting DATASITES names an owner twice")
        min_replies = _count("MIN_REPLIES", str(len(datasites)))
        if min_replies > len(datasites):
            raise SettingsError(f"setting MIN_REPLIES: {min_replies} but DATASITES names only {len(datasites)} owner(s)")
        named, mounted = _raw("FED_APP").rstrip("/"), _raw("FED_APP_MOUNTED").rstrip("/")
        if named.startswith("/") or ".." in Path(named).parts:
            raise SettingsError(f"setting FED_APP: {named!r} must be a folder inside the repository, named "
                                "relative to it (e.g. examples/moments)")
        if named and mounted and named != mounted:
            raise SettingsError(f"setting FED_APP: ds/settings.env names {named!r} but compose mounted {mounted!r} "
                                f"as the app: start with scripts/up (it passes FED_APP on), or FED_APP={named} "
                                "docker compose up")
        return cls(
            party=Party.from_env(),
            dataset=_get("DATASET_NAME", DEFAULT_DATASET),
            datasites=datasites,
            fed_app=fed_app_dir(),
            results_dir=Path(_get("RESULTS_DIR", str(Path.home() / "results"))),
            wait_timeout=_float("WAIT_TIMEOUT", "300"),
            round_timeout=_float("ROUND_TIMEOUT", "120"),
            min_replies=min_replies,
            results_port=_port("RESULTS_PORT", "8080"),
            pima_csv=_optional_path("PIMA_CSV"),
        )


# ---------------------------------------------------------------- the sync server


@dataclass(frozen=True)
class ServerSettings:
    data_folder: Path
    port: int
    public_url: str  # what the kits it issues name as the server (how parties reach it)
    names: tuple[str, ...]  # extra names its own certificate is valid for
    own_tls: tuple[Path, Path, Path] | None  # the operator's (certificate, key, CA) instead of the local CA

    @property
    def credentials_dir(self) -> Path:
        return self.data_folder / "credentials"

    @classmethod
    def from_env(cls) -> "ServerSettings":
        public_url = _get("SYNC_SERVER_URL", DEFAULT_SERVER_URL)
        if not public_url.startswith("https://"):
            raise SettingsError(f"setting SYNC_SERVER_URL: {public_url!r} is not https:// (the server serves TLS only)")
        own = tuple(_optional_path(n) for n in ("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"))
        if any(own) and not all(own):
            raise SettingsError("settings TLS_CERT_FILE, TLS_KEY_FILE and TLS_CA_FILE go together: set all three or none")
        for name, path in zip(("TLS_CERT_FILE", "TLS_KEY_FILE", "TLS_CA_FILE"), own):
            if path is not None and not path.is_file():
                raise SettingsError(f"setting {name}: {path} is not a file")
        return cls(data_folder=Path(_get("SYFTBOX_DATA_FOLDER", "/home/syft/server")),
                   port=_port("SYFTBOX_PORT", "5001"),
                   public_url=public_url,
                   names=tuple(n.strip() for n in _raw("TLS_SERVER_NAMES").split(",") if n.strip()),
                   own_tls=own if all(own) else None)


# ---------------------------------------------------------------- child processes


def child_environment(drop: Iterable[str] = (), path_first: str | None = None, **extra: str) -> dict[str, str]:
    """The environment a child process of ours starts with: ours, less `drop`, plus `extra`
    (and `path_first` ahead of PATH).

    The one place such an environment is made: the Flower server, a job, a simulation and the
    mock preview all get theirs here."""
    dropped = set(drop)
    env = {k: v for k, v in os.environ.items() if k not in dropped} | extra
    if path_first:
        env["PATH"] = os.pathsep.join(filter(None, [path_first, env.get("PATH")]))
    return env


def job_environment(job_dir: Path) -> dict[str, str]:
    """The whole environment of a job in the executor: nothing of the executor's own but PATH
    and the log level, so a job sees only its folders (`job_dir`'s data, output and code)."""
    return {
        "PATH": _raw("PATH"), "HOME": str(job_dir / "work"), "TMPDIR": "/tmp",
        "DATA_DIR": str(job_dir / "data"), "OUTPUT_DIR": str(job_dir / "output"), "CODE_DIR": str(job_dir / "code"),
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
        "LOG_LEVEL": log_level(),
    }


def fed_app_dir() -> Path:
    """FED_APP_DIR: the Flower app (for `federation inprocess`, which needs no other setting)."""
    return Path(_get("FED_APP_DIR", "/app/fed_app"))
