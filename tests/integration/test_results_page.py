"""The DS's results page, as a person sees it: headless Chromium (Debian's `chromium`) against
the finished demo run. Without chromium these tests fail (never skip): `scripts/test` installs it."""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import subprocess
import tempfile
import threading
import urllib.request
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from federation.common.statuses import describe
from federation.scientist.run_record import RunRecord
from federation.scientist.web import ResultsHandler
from tests.conftest import REPO_ROOT

ARTIFACTS_DIR = Path(os.environ.get("ARTIFACTS_DIR") or REPO_ROOT / "test-artifacts")


def chromium(url: str, *args: str, timeout: float = 180) -> str:
    """Run headless Chromium on `url` with a throwaway profile; returns its stdout."""
    binary = shutil.which("chromium")
    if binary is None:
        pytest.fail("chromium is not installed: run the tests with scripts/test (scripts/ensure-chromium "
                    "installs Debian's chromium package) or `apt-get install chromium`", pytrace=False)
    with tempfile.TemporaryDirectory(prefix="chromium-profile-") as profile:
        result = subprocess.run(
            [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}", *args, url],
            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"chromium exited {result.returncode}:\n{result.stderr[-3000:]}"
    return result.stdout


class PageContent(HTMLParser):
    """What the tests look at in the DOM: feature headings, numbers by data-key, each owner's job."""

    def __init__(self, dom: str):
        super().__init__()
        self.headings: list[str] = []
        self.numbers: dict[str, str] = {}
        self.owner_jobs: dict[str, str] = {}
        self.images: list[str] = []
        self._owner = ""
        self._open: list[tuple[str, str, str, list[str]]] = []  # (tag, kind, key, text parts)
        self.feed(dom)
        self.text = " ".join(dom.split())

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "tr" and "data-owner" in attrs:
            self._owner = attrs["data-owner"]
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        if tag == "h2":
            self._open.append((tag, "heading", "", []))
        elif "data-key" in attrs:
            self._open.append((tag, "number", attrs["data-key"], []))
        elif tag == "td" and "job-status" in attrs.get("class", "") and self._owner:
            self._open.append((tag, "owner", self._owner, []))

    def handle_data(self, data):
        for _, _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag):
        if not self._open or self._open[-1][0] != tag:
            return
        _, kind, key, parts = self._open.pop()
        text = "".join(parts).strip()
        if kind == "heading":
            self.headings.append(text)
        elif kind == "number":
            self.numbers[key] = text
        else:
            self.owner_jobs[key] = text


def page_url() -> str:
    return f"http://localhost:{os.environ['RESULTS_PORT']}/"


def expected_cells(feature: str, kind: str, numbers: dict) -> dict[str, str]:
    """The page's cells for one feature of an aggregate.json, as the page must print them."""
    cells = {}
    for outcome in ("0", "1"):
        entry = numbers["by_outcome"][outcome]
        cells[f"{feature}/{kind}/{outcome}/count"] = str(entry["count"])
        cells[f"{feature}/{kind}/{outcome}/missing"] = str(entry["missing"])
        cells[f"{feature}/{kind}/{outcome}/mean"] = f"{entry['mean']:.2f}"
    cells[f"{feature}/{kind}/all/count"] = str(sum(numbers["by_outcome"][o]["count"] for o in ("0", "1")))
    return cells


def test_page_shows_every_feature_owner_and_the_aggregate_numbers(stack, results_dir):
    run = RunRecord.read(results_dir / "run.json")
    aggregate = json.loads((results_dir / "aggregate.json").read_text())
    page = PageContent(chromium(page_url(), "--dump-dom"))

    assert "Run finished at" in page.text and "No run has finished yet" not in page.text
    assert [h for h in page.headings if h in aggregate["features"]] == list(aggregate["features"])
    for email, owner in run.owners.items():
        assert page.owner_jobs[email] == describe(owner.status, owner.reason)
    for email in aggregate["datasites"]:
        assert email in page.owner_jobs
    for step in run.steps:
        assert step in page.text

    glucose = aggregate["features"]["Glucose"]
    assert {k: page.numbers[k] for k in expected_cells("Glucose", "real", glucose)} == \
        expected_cells("Glucose", "real", glucose)

    # Beside them, the same statistics on the owners' mocks (the DS computes them during the run).
    mock = json.loads((results_dir / "mock" / "aggregate.json").read_text())["features"]["Glucose"]
    assert {k: page.numbers[k] for k in expected_cells("Glucose", "mock", mock)} == \
        expected_cells("Glucose", "mock", mock)
    assert "no mock figure" not in page.text

    # Every figure, real and mock, is shown, and its link serves the very file of the results folder.
    for folder in ("figures", "mock/figures"):
        for feature in aggregate["features"]:
            src = next(s for s in page.images if s.startswith(f"/{folder}/{feature}.png"))
            with urllib.request.urlopen(page_url().rstrip("/") + src, timeout=10) as answer:
                assert answer.read() == (results_dir / folder / f"{feature}.png").read_bytes()


def test_page_screenshot_is_saved_as_an_artifact(stack):
    ARTIFACTS_DIR.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS_DIR / "results-page.png"
    shot.unlink(missing_ok=True)
    chromium(page_url(), f"--screenshot={shot}", "--window-size=1280,2400")

    assert shot.is_file(), f"chromium wrote no {shot}"
    with Image.open(shot) as image:
        assert image.size == (1280, 2400)
        colors = image.convert("RGB").getcolors(maxcolors=1_000_000)
    assert len(colors) > 200, "the screenshot is nearly blank"  # text, tables and two-colour charts


def test_page_reloads_itself_when_a_run_finishes(tmp_path):
    """No person reloads: the page polls /page-version, and a new run record brings the new page."""
    (tmp_path / "run.json").write_text(json.dumps({"status": "running", "started": 1_700_000_000}))
    polled = threading.Event()

    class RunFinishesAtFirstPoll(ResultsHandler):
        def do_GET(self):
            if self.path.startswith("/page-version") and not polled.is_set():
                polled.set()
                (tmp_path / "run.json").write_text(json.dumps(
                    {"status": "ok", "started": 1_700_000_000, "finished": 1_700_000_030}))
            super().do_GET()

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                             functools.partial(RunFinishesAtFirstPoll, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        # Virtual time: the page's timers run ten seconds' worth, in well under one.
        dom = chromium(f"http://127.0.0.1:{server.server_address[1]}/", "--virtual-time-budget=10000", "--dump-dom")
    finally:
        server.shutdown()
        server.server_close()

    assert polled.is_set(), "the page never asked for /page-version"
    assert "Run finished at" in dom and "No run has finished yet" not in dom
