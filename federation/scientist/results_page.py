"""The data scientist's results page: what the results folder holds, as one HTML page.

`load_page` reads the folder into a `ResultsPage` (every field optional, unreadable files
noted instead of raised); `render` turns that into HTML with the Jinja2 template
templates/results.html, autoescaped, so every string from a file is escaped. The page links
its stylesheet, static/results.css, which federation.scientist.web serves as /static/results.css.
The formatting the template needs (dates, counts, means, durations, URL quoting) stays here,
handed to it as filters and globals; the markup stays in the template.

It is longer than 300 lines because every file of the folder is read tolerantly (a missing
or broken one becomes a note on the page), each in a few lines of its own.
"""

from __future__ import annotations

import html
import json
import math
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
from markupsafe import Markup

from federation.common.statuses import describe
from federation.common import fields
from federation.scientist.run_record import STEP_ORDER, RunRecord

OUTCOMES = ("0", "1")
OUTCOME_LABELS = {"0": "Outcome 0 (no diabetes)", "1": "Outcome 1 (diabetes)"}
HISTORY_SHOWN = 10
# Files whose change means the page is out of date (figures are written before aggregate.json).
WATCHED = ("run.json", "aggregate.json", "mock/aggregate.json")
POLL_MILLISECONDS = 2500


# --------------------------------------------------------------------------- data model


@dataclass(frozen=True)
class OutcomeNumbers:
    count: int | None
    missing: int | None
    mean: float | None


@dataclass(frozen=True)
class FeatureNumbers:
    """One feature of one aggregate.json: the numbers per outcome."""

    by_outcome: dict[str, OutcomeNumbers]

    @property
    def total(self) -> OutcomeNumbers:
        parts = [self.by_outcome.get(o) for o in OUTCOMES]
        if any(p is None or p.count is None for p in parts):
            return OutcomeNumbers(None, None, None)
        count = sum(p.count for p in parts)
        missing = None if any(p.missing is None for p in parts) else sum(p.missing for p in parts)
        if any(p.mean is None for p in parts if p.count):
            mean = None
        else:
            mean = sum(p.count * p.mean for p in parts if p.count) / count if count else None
        return OutcomeNumbers(count, missing, mean)


@dataclass(frozen=True)
class Feature:
    name: str
    real: FeatureNumbers | None
    mock: FeatureNumbers | None
    real_figure: str | None  # URL path, None when there is no PNG
    mock_figure: str | None


@dataclass(frozen=True)
class Owner:
    email: str
    status: str
    reason: str
    mock_rows: int | None
    reply: str  # "replied", "missing" (the run counted without it) or "" (not known yet)


@dataclass(frozen=True)
class ResultFile:
    """A file the app (or the Flower server) wrote into the results, for any app."""

    name: str  # its path under the results folder
    url: str
    size: int
    image: bool


@dataclass(frozen=True)
class PastRun:
    stamp: str
    status: str


@dataclass
class ResultsPage:
    version: str
    run: RunRecord | None = None
    dataset: str = ""
    replied: int | None = None
    expected: int | None = None
    owners: list[Owner] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    history: list[PastRun] = field(default_factory=list)
    files: list[ResultFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # files present but unreadable

    @property
    def finished(self) -> bool:
        return self.run is not None and self.run.status == "ok"


# --------------------------------------------------------------------------- reading


def page_version(results_dir: Path) -> str:
    """Changes whenever a watched file is written (they are replaced, so mtime and size move)."""
    parts = []
    for name in WATCHED:
        try:
            st = (results_dir / name).stat()
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except OSError:
            parts.append("-")
    return "/".join(parts)


def _read_json(path: Path, label: str, problems: list[str]) -> dict | None:
    """The file's object; None when absent, or when unreadable (then noted in `problems`)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        problems.append(f"{label} could not be read ({e}); the page shows what else is there.")
        return None
    if not isinstance(data, dict):
        problems.append(f"{label} does not hold a JSON object; the page shows what else is there.")
        return None
    return data


def _read_numbers(feature: dict) -> FeatureNumbers:
    by_outcome = {}
    for outcome, entry in fields.mapping(feature.get("by_outcome")).items():
        entry = fields.mapping(entry)
        by_outcome[str(outcome)] = OutcomeNumbers(
            count=fields.integer(entry.get("count")), missing=fields.integer(entry.get("missing")),
            mean=fields.number(entry.get("mean")))
    return FeatureNumbers(by_outcome)


def _figure_url(results_dir: Path, folder: str, feature: str) -> str | None:
    """URL of `<folder>/<feature>.png` if that file exists; `?v=` so a new run's PNG is not taken from cache."""
    if "/" in feature or feature in ("", ".", ".."):
        return None
    path = results_dir / folder / f"{feature}.png"
    try:
        stamp = path.stat().st_mtime_ns
    except OSError:
        return None
    return f"/{folder}/{urllib.parse.quote(feature, safe='')}.png?v={stamp}"


def _read_features(results_dir: Path, real: dict | None, mock: dict | None) -> list[Feature]:
    real_features = fields.mapping((real or {}).get("features"))
    mock_features = fields.mapping((mock or {}).get("features"))
    # Figures without numbers still count: aggregate.json may be unreadable while the PNGs are fine.
    figures = sorted(p.stem for p in (results_dir / "figures").glob("*.png"))
    names = list(dict.fromkeys([*real_features, *mock_features, *figures]))
    return [
        Feature(
            name=name,
            real=_read_numbers(fields.mapping(real_features[name])) if name in real_features else None,
            mock=_read_numbers(fields.mapping(mock_features[name])) if name in mock_features else None,
            real_figure=_figure_url(results_dir, "figures", name),
            mock_figure=_figure_url(results_dir, "mock/figures", name),
        )
        for name in names
    ]


def _read_owners(run: RunRecord | None, aggregate: dict | None) -> list[Owner]:
    run, aggregate = run or RunRecord(), aggregate or {}
    replied = set(run.datasites) | set(fields.emails(aggregate.get("datasites")))
    missing = set(run.missing_datasites) | set(fields.emails(aggregate.get("missing_datasites")))
    emails = dict.fromkeys([*run.datasites_expected, *run.owners, *sorted(replied), *sorted(missing)])
    owners = []
    for email in emails:
        record = run.owners.get(email)
        owners.append(Owner(
            email=email,
            status=record.status if record else "",
            reason=record.reason if record else "",
            mock_rows=record.mock_rows if record else None,
            reply="replied" if email in replied else "missing" if email in missing else "",
        ))
    return owners


def _read_history(results_dir: Path) -> list[PastRun]:
    try:
        stamps = sorted((p for p in (results_dir / "history").iterdir() if p.is_dir()), reverse=True)
    except OSError:
        return []
    past = []
    for folder in stamps[:HISTORY_SHOWN]:
        record = _read_json(folder / "run.json", f"history/{folder.name}/run.json", [])  # old runs: no warnings
        past.append(PastRun(folder.name, fields.text((record or {}).get("status")) or "unknown"))
    return past


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".svg", ".webp")
NOT_LISTED = ("run.json", "history", "simulation", "mock", "notebook")  # the page's own, shown elsewhere, or another run's
FILES_SHOWN = 200


def _read_files(results_dir: Path, features: list[Feature]) -> list[ResultFile]:
    """Every file of the run's results the page does not show otherwise: any app's figures
    (shown), its JSON and CSV, the server's log (linked)."""
    shown = {"aggregate.json"} | {f"figures/{f.name}.png" for f in features if f.real_figure}
    out = []
    try:
        paths = sorted(p for p in results_dir.rglob("*") if p.is_file())
    except OSError:
        return []
    for path in paths:
        rel = path.relative_to(results_dir).as_posix()
        if rel.split("/")[0] in NOT_LISTED or rel in shown or any(part.startswith(".") for part in rel.split("/")):
            continue
        try:
            st = path.stat()
        except OSError:
            continue
        url = "/" + "/".join(urllib.parse.quote(part, safe="") for part in rel.split("/")) + f"?v={st.st_mtime_ns}"
        out.append(ResultFile(rel, url, st.st_size, path.suffix.lower() in IMAGE_SUFFIXES))
        if len(out) >= FILES_SHOWN:
            break
    return out


def load_page(results_dir: Path) -> ResultsPage:
    # The version first: a file written while we read makes the next poll differ, so the page reloads.
    page = ResultsPage(version=page_version(results_dir))
    run = _read_json(results_dir / "run.json", "run.json", page.problems)
    aggregate = _read_json(results_dir / "aggregate.json", "aggregate.json", page.problems)
    mock = _read_json(results_dir / "mock" / "aggregate.json", "mock/aggregate.json", page.problems)
    page.run = RunRecord.from_json(run) if run is not None else None
    if aggregate is not None:
        page.dataset = fields.text(aggregate.get("dataset"))
        page.replied = fields.integer(aggregate.get("replied"))
        page.expected = fields.integer(aggregate.get("expected"))
    page.owners = _read_owners(page.run, aggregate)
    page.features = _read_features(results_dir, aggregate, mock)
    page.history = _read_history(results_dir)
    page.files = _read_files(results_dir, page.features)
    return page


# --------------------------------------------------------------------------- rendering


def duration(seconds: float) -> str:
    """0.42 -> '0.42 s', 7.3 -> '7.3 s', 42 -> '42 s', 125 -> '2 min 05 s', 3725 -> '1 h 02 min'."""
    if not math.isfinite(seconds) or seconds < 0:
        return "unknown"
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _size(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n / 1024:.1f} KiB" if n < 2**20 else f"{n / 2**20:.1f} MiB"


def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch is not None else "—"


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _quote(value: str) -> str:
    """A feature name or history stamp as one URL path segment."""
    return urllib.parse.quote(value, safe="")


def _in_step_order(steps: dict[str, float]) -> list[str]:
    """The timed steps in the workflow's order; steps it does not know last."""
    return sorted(steps, key=lambda s: STEP_ORDER.index(s) if s in STEP_ORDER else len(STEP_ORDER))


def _numbers_for(numbers: FeatureNumbers, outcome: str) -> OutcomeNumbers:
    """One outcome's numbers, or both outcomes' together for "all"."""
    return numbers.total if outcome == "all" else numbers.by_outcome.get(outcome, OutcomeNumbers(None, None, None))


def _escaped(value) -> Markup:
    """Every output value, escaped as html.escape spells it (&quot;, &#x27;; markupsafe writes &#34;, &#39;).

    The page always escaped with html.escape, and tests compare that text. Autoescape stays on:
    Jinja escapes whatever this returns unless it is markup, so returning markup escapes each value
    exactly once. Values that are markup already (a macro's output, tojson's) pass as they are.
    """
    return value if hasattr(value, "__html__") else Markup(html.escape(str(value)))


REPLY_WORDS = {"replied": "replied", "missing": "did not reply (the run counted without it)", "": "—"}

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    finalize=_escaped,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
_TEMPLATES.filters.update(when=_when, size=_size, count_text=_count, mean_text=_mean, duration=duration, urlquote=_quote,
                          in_step_order=_in_step_order)
_TEMPLATES.globals.update(describe=describe, numbers_for=_numbers_for, reply_words=REPLY_WORDS,
                          outcome_rows=[*OUTCOME_LABELS.items(), ("all", "Both outcomes")],
                          poll_milliseconds=POLL_MILLISECONDS)


def render(page: ResultsPage) -> str:
    """The page as HTML (templates/results.html; its stylesheet is served as /static/results.css)."""
    return _TEMPLATES.get_template("results.html").render(page=page)
