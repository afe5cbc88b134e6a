"""The data scientist's results page: what the results folder holds, as one HTML page.

`load_page` reads the folder into a `ResultsPage` (every field optional, unreadable files
noted instead of raised), `render` turns that into HTML. Every string from a file is escaped.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from dataclasses import dataclass, field
from html import escape  # every string from a file passes through it
from pathlib import Path

from federation.status_text import describe, duration

OUTCOMES = ("0", "1")
OUTCOME_LABELS = {"0": "Outcome 0 (no diabetes)", "1": "Outcome 1 (diabetes)"}
STEP_ORDER = ("login", "explore", "bootstrap", "submit", "approval", "server", "finish")
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
class Run:
    status: str
    started: float | None
    finished: float | None
    steps: dict[str, float]
    error: str
    rounds_done: int | None
    rounds_total: int | None

    @property
    def current_step(self) -> str | None:
        """While running: the first step of the workflow not yet timed."""
        if self.status != "running":
            return None
        return next((s for s in STEP_ORDER if s not in self.steps), None)


@dataclass(frozen=True)
class PastRun:
    stamp: str
    status: str


@dataclass
class ResultsPage:
    version: str
    run: Run | None = None
    dataset: str = ""
    replied: int | None = None
    expected: int | None = None
    owners: list[Owner] = field(default_factory=list)
    features: list[Feature] = field(default_factory=list)
    history: list[PastRun] = field(default_factory=list)
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


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _int(value) -> int | None:
    number = _number(value)
    return int(number) if number is not None and number.is_integer() else None


def _text(value) -> str:
    return value if isinstance(value, str) else ""


def _emails(value) -> list[str]:
    return [e for e in value if isinstance(e, str)] if isinstance(value, list) else []


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _read_run(data: dict) -> Run:
    steps = {name: s for name, raw in _dict(data.get("steps")).items() if (s := _number(raw)) is not None}
    rounds = _dict(data.get("rounds"))
    return Run(
        status=_text(data.get("status")) or "unknown",
        started=_number(data.get("started")),
        finished=_number(data.get("finished")),
        steps=steps,
        error=_text(data.get("error")),
        rounds_done=_int(rounds.get("done")),
        rounds_total=_int(rounds.get("total")),
    )


def _read_numbers(feature: dict) -> FeatureNumbers:
    by_outcome = {}
    for outcome, entry in _dict(feature.get("by_outcome")).items():
        entry = _dict(entry)
        by_outcome[str(outcome)] = OutcomeNumbers(
            count=_int(entry.get("count")), missing=_int(entry.get("missing")), mean=_number(entry.get("mean")))
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
    real_features = _dict((real or {}).get("features"))
    mock_features = _dict((mock or {}).get("features"))
    # Figures without numbers still count: aggregate.json may be unreadable while the PNGs are fine.
    figures = sorted(p.stem for p in (results_dir / "figures").glob("*.png"))
    names = list(dict.fromkeys([*real_features, *mock_features, *figures]))
    return [
        Feature(
            name=name,
            real=_read_numbers(_dict(real_features[name])) if name in real_features else None,
            mock=_read_numbers(_dict(mock_features[name])) if name in mock_features else None,
            real_figure=_figure_url(results_dir, "figures", name),
            mock_figure=_figure_url(results_dir, "mock/figures", name),
        )
        for name in names
    ]


def _read_owners(run: dict | None, aggregate: dict | None) -> list[Owner]:
    run, aggregate = run or {}, aggregate or {}
    records = _dict(run.get("owners"))
    replied = set(_emails(run.get("datasites"))) | set(_emails(aggregate.get("datasites")))
    missing = set(_emails(run.get("missing_datasites"))) | set(_emails(aggregate.get("missing_datasites")))
    emails = dict.fromkeys([*_emails(run.get("datasites_expected")), *[e for e in records if isinstance(e, str)],
                            *sorted(replied), *sorted(missing)])
    owners = []
    for email in emails:
        record = _dict(records.get(email))
        owners.append(Owner(
            email=email,
            status=_text(record.get("status")),
            reason=_text(record.get("reason")),
            mock_rows=_int(record.get("mock_rows")),
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
        past.append(PastRun(folder.name, _text((record or {}).get("status")) or "unknown"))
    return past


def load_page(results_dir: Path) -> ResultsPage:
    # The version first: a file written while we read makes the next poll differ, so the page reloads.
    page = ResultsPage(version=page_version(results_dir))
    run = _read_json(results_dir / "run.json", "run.json", page.problems)
    aggregate = _read_json(results_dir / "aggregate.json", "aggregate.json", page.problems)
    mock = _read_json(results_dir / "mock" / "aggregate.json", "mock/aggregate.json", page.problems)
    page.run = _read_run(run) if run is not None else None
    if aggregate is not None:
        page.dataset = _text(aggregate.get("dataset"))
        page.replied, page.expected = _int(aggregate.get("replied")), _int(aggregate.get("expected"))
    page.owners = _read_owners(run, aggregate)
    page.features = _read_features(results_dir, aggregate, mock)
    page.history = _read_history(results_dir)
    return page


# --------------------------------------------------------------------------- rendering



def _when(epoch: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch)) if epoch is not None else "—"


def _count(value: int | None) -> str:
    return "—" if value is None else str(value)


def _mean(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _headline(page: ResultsPage) -> str:
    run = page.run
    if page.finished:
        took = ""
        if run.started is not None and run.finished is not None:
            took = f" in {duration(run.finished - run.started)}"
        return f'<p class="headline ok">Run finished at {_when(run.finished)}{took}.</p>'
    lines = ['<p class="headline none">No run has finished yet.</p>']
    if run is None:
        return lines[0]
    if run.status == "running":
        now = f"; now at step <b>{escape(run.current_step)}</b>" if run.current_step else ""
        lines.append(f'<p class="current">A run is in progress: started at {_when(run.started)}{now}.</p>')
    elif run.status == "failed":
        lines.append(f'<p class="current failed">The last run failed at {_when(run.finished)}:</p>'
                     f'<pre class="error">{escape(run.error or "no error recorded")}</pre>')
    else:
        lines.append(f'<p class="current">The last run is {escape(run.status)}.</p>')
    return "\n".join(lines)


def _run_section(run: Run | None) -> str:
    if run is None:
        return '<section id="run"><h2>Run</h2><p>No run record (run.json) yet.</p></section>'
    facts = [("Status", escape(run.status)), ("Started", _when(run.started)), ("Ended", _when(run.finished))]
    if run.started is not None and run.finished is not None:
        facts.append(("Duration", duration(run.finished - run.started)))
    if run.rounds_total is not None:
        facts.append(("Rounds", f"{_count(run.rounds_done)} of {run.rounds_total} done"))
    facts_table = "".join(f"<tr><th>{label}</th><td>{value}</td></tr>" for label, value in facts)
    steps = sorted(run.steps, key=lambda s: STEP_ORDER.index(s) if s in STEP_ORDER else len(STEP_ORDER))
    if steps:
        step_rows = "".join(f'<tr><td>{escape(s)}</td><td class="num" data-step="{escape(s)}">'
                            f'{duration(run.steps[s])}</td></tr>' for s in steps)
        steps_part = f'<table class="steps"><tr><th>step</th><th>took</th></tr>{step_rows}</table>'
    else:
        steps_part = "<p>No step finished yet.</p>"
    return (f'<section id="run"><h2>Run</h2><div class="side-by-side">'
            f'<div><table class="facts">{facts_table}</table></div><div>{steps_part}</div></div></section>')


REPLY_WORDS = {"replied": "replied", "missing": "did not reply (the run counted without it)", "": "—"}


def _owners_section(page: ResultsPage) -> str:
    if not page.owners:
        return '<section id="owners"><h2>Data owners</h2><p>No data owner recorded yet.</p></section>'
    rows = "".join(
        f'<tr data-owner="{escape(o.email)}"><td>{escape(o.email)}</td>'
        f'<td class="job-status">{escape(describe(o.status, o.reason)) if o.status else "—"}</td>'
        f'<td class="num">{_count(o.mock_rows)}</td>'
        f'<td class="reply-{o.reply or "unknown"}">{REPLY_WORDS[o.reply]}</td></tr>'
        for o in page.owners)
    summary = ""
    if page.replied is not None and page.expected is not None:
        summary = f"<p>{page.replied} of {page.expected} data owners replied to the Flower server.</p>"
    return (f'<section id="owners"><h2>Data owners</h2>{summary}'
            f'<table><tr><th>owner</th><th>job</th><th>mock rows</th><th>reply</th></tr>{rows}</table></section>')


def _figure(url: str | None, caption: str, absent: str) -> str:
    if url is None:
        return (f'<figure class="absent"><div class="placeholder">{absent}</div>'
                f'<figcaption>{caption}</figcaption></figure>')
    return f'<figure><img src="{escape(url)}" alt="{caption}"><figcaption>{caption}</figcaption></figure>'


def _numbers_cells(feature: str, kind: str, numbers: FeatureNumbers | None, outcome: str) -> str:
    if numbers is None:
        return '<td class="num">—</td>' * 3
    values = numbers.total if outcome == "all" else numbers.by_outcome.get(outcome, OutcomeNumbers(None, None, None))
    key = f"{feature}/{kind}/{outcome}"
    return (f'<td class="num" data-key="{escape(key)}/count">{_count(values.count)}</td>'
            f'<td class="num" data-key="{escape(key)}/missing">{_count(values.missing)}</td>'
            f'<td class="num" data-key="{escape(key)}/mean">{_mean(values.mean)}</td>')


def _feature_section(feature: Feature) -> str:
    name = escape(feature.name)
    rows = "".join(
        f'<tr><th>{label}</th>{_numbers_cells(feature.name, "real", feature.real, outcome)}'
        f'{_numbers_cells(feature.name, "mock", feature.mock, outcome)}</tr>'
        for outcome, label in [*OUTCOME_LABELS.items(), ("all", "Both outcomes")])
    return f"""<section class="feature" id="feature-{urllib.parse.quote(feature.name, safe='')}">
<h2>{name}</h2>
<div class="pair">
{_figure(feature.real_figure, f"{name}: the owners' private data (aggregate)", "no figure")}
{_figure(feature.mock_figure, f"{name}: the owners' mock data", "no mock figure")}
</div>
<table class="numbers">
<tr><th></th><th colspan="3">private data (aggregate)</th><th colspan="3">mock data</th></tr>
<tr><th></th><th>count</th><th>missing</th><th>mean</th><th>count</th><th>missing</th><th>mean</th></tr>
{rows}
</table>
</section>"""


def _features_section(page: ResultsPage) -> str:
    if not page.features:
        return ""
    caveat = ""
    if not page.finished:
        caveat = ('<p class="caveat">These results come from a run that has not finished successfully: '
                  'they do not count.</p>')
    return caveat + "\n".join(_feature_section(f) for f in page.features)


def _history_section(page: ResultsPage) -> str:
    if not page.history:
        return ""
    items = "".join(f'<li><a href="/history/{urllib.parse.quote(p.stamp, safe="")}/">{escape(p.stamp)}</a>'
                    f' — {escape(p.status)}</li>' for p in page.history)
    return f'<section id="history"><h2>Earlier runs</h2><ul>{items}</ul></section>'


STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5rem auto; max-width: 1250px; padding: 0 1rem; color: #222; }
h1 { margin-bottom: .2rem; }
.headline { font-size: 1.2rem; font-weight: 600; }
.headline.ok { color: #1a7f37; } .headline.none { color: #9a6700; }
.failed, .reply-missing { color: #b42318; }
pre.error { background: #fff1f0; border: 1px solid #f5c2c0; padding: .6rem; white-space: pre-wrap; }
.problems, .caveat { background: #fff8e1; border: 1px solid #f0d48a; padding: .5rem .8rem; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { border: 1px solid #ddd; padding: .25rem .6rem; text-align: left; vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.job-status { white-space: pre-wrap; }
.side-by-side { display: flex; gap: 2rem; align-items: flex-start; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1rem; }
figure { margin: 0; } figure img { width: 100%; border: 1px solid #eee; }
.placeholder { display: flex; align-items: center; justify-content: center; min-height: 12rem;
               background: #f6f6f6; color: #777; border: 1px dashed #bbb; }
figcaption { font-size: .9rem; color: #555; }
section.feature { border-top: 2px solid #eee; margin-top: 1.5rem; }
"""

# Reloads the page once the results folder changes (a run finished, or moved on).
RELOAD_SCRIPT = """
const shownVersion = %s;
setInterval(async () => {
  try {
    const answer = await fetch("/page-version", {cache: "no-store"});
    if ((await answer.json()).version !== shownVersion) location.reload();
  } catch (err) { /* the DS is restarting: try again at the next tick */ }
}, %d);
"""


def render(page: ResultsPage) -> str:
    title = f"Federated statistics — {escape(page.dataset)}" if page.dataset else "Federated statistics"
    problems = ""
    if page.problems:
        problems = '<ul class="problems">' + "".join(f"<li>{escape(p)}</li>" for p in page.problems) + "</ul>"
    # json.dumps of our own version string; "</" cannot occur in it, so the script block is safe.
    script = RELOAD_SCRIPT % (json.dumps(page.version), POLL_MILLISECONDS)
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>{title}</title><style>{STYLE}</style></head>
<body>
<h1>{title}</h1>
{_headline(page)}
{problems}
{_run_section(page.run)}
{_owners_section(page)}
{_features_section(page)}
{_history_section(page)}
<script>{script}</script>
</body>
</html>
"""
