"""The DS's results page: the data model read from result folders, the wording, the HTML, the server."""

from __future__ import annotations

import http.client
import json
import os
import threading
from html.parser import HTMLParser
from pathlib import Path

import pytest

from federation.common.statuses import describe
from federation.scientist import web
from federation.scientist.results_page import ResultsPage, duration, load_page, page_version, render
from federation.scientist.web import results_server

DO1, DO2 = "do1@openmined.org", "do2@openmined.org"
STEPS = {"login": 1.12, "explore": 0.01, "bootstrap": 1.28, "submit": 5.19, "approval": 0.52,
         "server": 19.22, "finish": 3.05}
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))  # the server only passes bytes on


def feature(edges: list[float], hist0: list[int], hist1: list[int], missing=(0, 0), means=(1.0, 2.0)) -> dict:
    return {"bin_edges": edges, "by_outcome": {
        "0": {"hist": hist0, "count": sum(hist0), "missing": missing[0], "mean": means[0]},
        "1": {"hist": hist1, "count": sum(hist1), "missing": missing[1], "mean": means[1]},
    }}


def aggregate(scale: int) -> dict:
    return {
        "dataset": "pima-indians-diabetes-database", "datasites": [DO1, DO2], "replied": 2, "expected": 2,
        "features": {
            "Pregnancies": feature([0, 1, 2], [3 * scale, 1 * scale], [2 * scale, 2 * scale], means=(0.25, 0.5)),
            "Glucose": feature([0, 100, 200], [40 * scale, 9 * scale], [6 * scale, 20 * scale],
                               missing=(3, 2), means=(110.64386317907444, 142.31954887218046)),
        },
    }


def run_record(status: str, **extra) -> dict:
    owners = {email: {"status": "job_run_finished", "reason": "", "mock_rows": 40} for email in (DO1, DO2)}
    return {"status": status, "started": 1_700_000_000.0, "steps": dict(STEPS),
            "datasites_expected": [DO1, DO2], "owners": owners} | extra


def write(folder: Path, name: str, content) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    """A run that counted, with the mock aggregate and figures beside the real ones."""
    write(tmp_path, "run.json", run_record("ok", finished=1_700_000_033.0, datasites=[DO1, DO2]))
    write(tmp_path, "aggregate.json", aggregate(scale=10))
    write(tmp_path, "mock/aggregate.json", aggregate(scale=1))
    for name in ("Pregnancies", "Glucose"):
        write(tmp_path, f"figures/{name}.png", PNG)
        write(tmp_path, f"mock/figures/{name}.png", PNG)
    return tmp_path


# --------------------------------------------------------------------------- wording


def test_job_statuses_read_as_sentences_with_the_owners_reason():
    assert describe("job_run_finished") == "finished on the owner's private data"
    assert describe("pending_code_review") == "waiting for the owner to review the code"
    assert describe("rejected", "too broad") == "rejected by the owner: too broad"
    assert describe("job_run_failed", "  exit 1\n") == "failed on the owner's private data: exit 1"
    assert describe("not contacted") == "not contacted yet"
    assert describe("some_new_status") == "some new status"  # a later syft-rds status stays readable
    assert describe("") == "unknown status"


@pytest.mark.parametrize("seconds, words", [
    (0.01, "0.01 s"), (0.52, "0.52 s"), (5.19, "5.2 s"), (19.22, "19 s"), (59.4, "59 s"),
    (59.6, "1 min 00 s"), (125, "2 min 05 s"), (3599.4, "59 min 59 s"), (3725, "1 h 02 min"),
    (-1, "unknown"), (float("nan"), "unknown"),
])
def test_durations_are_short_and_readable(seconds, words):
    assert duration(seconds) == words


# --------------------------------------------------------------------------- data model


def test_finished_run_with_mock_gives_every_feature_both_figures_and_numbers(finished_run):
    page = load_page(finished_run)

    assert page.finished and page.problems == []
    assert page.dataset == "pima-indians-diabetes-database"
    assert (page.replied, page.expected) == (2, 2)
    assert page.run.steps == STEPS
    assert page.run.finished - page.run.started == 33
    assert [f.name for f in page.features] == ["Pregnancies", "Glucose"]  # aggregate.json's order

    glucose = page.features[1]
    assert glucose.real_figure.startswith("/figures/Glucose.png?v=")
    assert glucose.mock_figure.startswith("/mock/figures/Glucose.png?v=")
    real = glucose.real.by_outcome
    assert (real["0"].count, real["0"].missing, real["0"].mean) == (490, 3, 110.64386317907444)
    assert (real["1"].count, real["1"].missing) == (260, 2)
    assert glucose.mock.by_outcome["0"].count == 49
    total = glucose.real.total
    assert (total.count, total.missing) == (750, 5)
    assert total.mean == pytest.approx((490 * 110.64386317907444 + 260 * 142.31954887218046) / 750)

    assert [(o.email, o.status, o.mock_rows, o.reply) for o in page.owners] == [
        (DO1, "job_run_finished", 40, "replied"), (DO2, "job_run_finished", 40, "replied")]


def test_finished_run_page_shows_numbers_figures_and_owners(finished_run):
    text = render(load_page(finished_run))

    assert "No run has finished yet" not in text
    assert "Run finished at" in text and " in 33 s." in text
    assert text.count('<section class="feature"') == 2
    assert "<h2>Pregnancies</h2>" in text and "<h2>Glucose</h2>" in text
    assert 'data-key="Glucose/real/0/count">490<' in text
    assert 'data-key="Glucose/real/0/mean">110.64<' in text
    assert 'data-key="Glucose/mock/1/count">26<' in text
    assert 'data-key="Glucose/real/all/missing">5<' in text
    assert '<img src="/mock/figures/Glucose.png?v=' in text
    assert "no mock figure" not in text
    assert text.count("finished on the owner&#x27;s private data") == 2
    assert 'data-step="server">19 s<' in text


def test_a_run_without_mock_results_says_so_per_feature(finished_run):
    for path in sorted((finished_run / "mock").rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()

    page = load_page(finished_run)
    assert page.finished and page.problems == []
    assert all(f.mock is None and f.mock_figure is None and f.real_figure for f in page.features)
    text = render(page)
    assert text.count("no mock figure") == 2
    assert 'data-key="Glucose/real/0/count">490<' in text


def test_running_run_says_no_run_finished_yet_and_where_it_stands(tmp_path):
    owners = {DO1: {"status": "pending_code_review", "reason": "", "mock_rows": 40},
              DO2: {"status": "job_in_progress", "reason": "", "mock_rows": 38}}
    steps = {k: STEPS[k] for k in ("login", "explore", "bootstrap", "submit")}
    write(tmp_path, "run.json", run_record("running", owners=owners, steps=steps, rounds={"done": 0, "total": 1}))

    page = load_page(tmp_path)
    assert not page.finished and page.features == []
    assert page.run.current_step == "approval"
    assert [o.reply for o in page.owners] == ["", ""]
    text = render(page)
    assert "No run has finished yet." in text
    assert "A run is in progress" in text and "now at step <b>approval</b>" in text
    assert "waiting for the owner to review the code" in text
    assert "running on the owner&#x27;s private data" in text
    assert "0 of 1 done" in text


def test_failed_run_shows_its_error_and_the_rejecting_owner(tmp_path):
    owners = {DO1: {"status": "rejected", "reason": "too broad", "mock_rows": 40},
              DO2: {"status": "approved", "reason": "", "mock_rows": 40}}
    error = "do1@openmined.org rejected the job: too broad"
    write(tmp_path, "run.json", run_record("failed", owners=owners, finished=1_700_000_009.0, error=error))

    text = render(load_page(tmp_path))
    assert "No run has finished yet." in text
    assert "The last run failed at" in text
    assert f'<pre class="error">{error}</pre>' in text
    assert "rejected by the owner: too broad" in text


def test_owners_that_did_not_reply_but_counted_are_named(tmp_path):
    write(tmp_path, "run.json", run_record("ok", finished=1_700_000_040.0, datasites=[DO1], missing_datasites=[DO2]))
    write(tmp_path, "aggregate.json", aggregate(1) | {"datasites": [DO1], "replied": 1, "missing_datasites": [DO2]})

    page = load_page(tmp_path)
    assert [(o.email, o.reply) for o in page.owners] == [(DO1, "replied"), (DO2, "missing")]
    text = render(page)
    assert "1 of 2 data owners replied" in text
    assert "did not reply (the run counted without it)" in text


def test_empty_folder_says_no_run_has_finished_yet(tmp_path):
    page = load_page(tmp_path)
    assert page.run is None and page.features == [] and page.owners == [] and page.problems == []
    text = render(page)
    assert "No run has finished yet." in text
    assert "A run is in progress" not in text and "The last run failed" not in text


def test_invalid_or_half_written_json_shows_what_else_is_there(tmp_path):
    write(tmp_path, "run.json", '{"status": "ok", "started": 17')
    write(tmp_path, "aggregate.json", "")
    write(tmp_path, "mock/aggregate.json", "[1, 2]")
    write(tmp_path, "figures/Glucose.png", PNG)

    page = load_page(tmp_path)
    assert page.run is None
    assert len(page.problems) == 3
    assert page.problems[0].startswith("run.json could not be read")
    assert page.problems[1].startswith("aggregate.json could not be read")
    assert page.problems[2].startswith("mock/aggregate.json does not hold a JSON object")
    assert [(f.name, f.real, f.real_figure is not None) for f in page.features] == [("Glucose", None, True)]
    text = render(page)
    assert "No run has finished yet." in text
    assert '<img src="/figures/Glucose.png?v=' in text
    assert 'data-key="Glucose/real' not in text  # no numbers to show, only dashes


def test_fields_of_the_wrong_type_are_left_out_not_fatal(tmp_path):
    write(tmp_path, "run.json", {"status": 3, "started": "yesterday", "steps": {"login": "fast", "server": 2},
                                 "owners": {DO1: "odd", DO2: {"status": None, "mock_rows": 1.5}},
                                 "datasites_expected": "do1", "rounds": [1]})
    write(tmp_path, "aggregate.json", {"features": {"Glucose": {"by_outcome": {"0": {"count": "many", "mean": None}}},
                                                    "Age": []}, "replied": True})

    page = load_page(tmp_path)
    assert page.run.status == "unknown" and page.run.started is None and page.run.steps == {"server": 2}
    assert page.run.rounds_total is None and page.replied is None
    assert [(o.email, o.status, o.mock_rows) for o in page.owners] == [(DO1, "", None), (DO2, "", None)]
    glucose = page.features[0]
    assert glucose.real.by_outcome["0"].count is None and glucose.real.total.count is None
    text = render(page)
    assert "The last run is unknown." in text
    assert "<h2>Age</h2>" in text


def test_every_string_from_a_file_is_escaped(tmp_path):
    hostile = '<script>alert("x")</script>'
    email = f"{hostile}@evil.org"
    run = run_record("failed", error=f"boom {hostile}", datasites_expected=[email],
                     owners={email: {"status": hostile, "reason": f"<b>{hostile}</b>", "mock_rows": 1}},
                     steps={hostile: 1.0})
    write(tmp_path, "run.json", run)
    write(tmp_path, "aggregate.json", {"dataset": hostile, "features": {hostile: aggregate(1)["features"]["Glucose"]}})
    history = tmp_path / "history" / "<img src=x onerror=alert(1)>"
    write(history, "run.json", {"status": hostile})

    text = render(load_page(tmp_path))
    assert "<script>alert" not in text
    assert "<b>" not in text and "<img src=x" not in text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in text
    assert text.count("<script>") == 1  # only the page's own poller


class Scripts(HTMLParser):
    """The text of every <script> element, and every <img> tag, as a browser would parse them."""

    def __init__(self, text: str):
        super().__init__()
        self.scripts: list[str] = []
        self.images: list[dict] = []
        self._in_script = False
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag == "script":
            self._in_script = True
            self.scripts.append("")
        elif tag == "img":
            self.images.append(dict(attrs))

    def handle_endtag(self, tag):
        if tag == "script":
            self._in_script = False

    def handle_data(self, data):
        if self._in_script:
            self.scripts[-1] += data


def test_markup_in_run_json_is_escaped_and_cannot_break_out_of_the_script(tmp_path):
    breakout = '</script><img src=x onerror=alert(1)><script>alert(2)</script>'
    owners = {DO1: {"status": "rejected", "reason": breakout, "mock_rows": 40},
              DO2: {"status": "approved", "reason": "", "mock_rows": 40}}
    write(tmp_path, "run.json", run_record("failed", owners=owners, finished=1_700_000_009.0, error=f"boom {breakout}"))
    write(tmp_path, "aggregate.json", {"dataset": breakout, "features": {}})

    text = render(load_page(tmp_path))
    escaped = "&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(2)&lt;/script&gt;"
    assert f"rejected by the owner: {escaped}" in text
    assert f'<pre class="error">boom {escaped}</pre>' in text
    assert f"<title>Federated statistics — {escaped}</title>" in text
    assert "<img" not in text and "onerror=alert(1)>" not in text
    assert text.count("<script>") == 1 and text.count("</script>") == 1
    parsed = Scripts(text)
    assert parsed.images == []
    assert len(parsed.scripts) == 1
    assert parsed.scripts[0].strip().startswith(f'const shownVersion = "{page_version(tmp_path)}";')
    assert "alert" not in parsed.scripts[0]


def test_the_version_goes_into_the_script_as_a_javascript_string_only():
    version = '";alert(1);"</script><img src=x onerror=alert(2)>'
    text = render(ResultsPage(version=version))
    assert text.count("</script>") == 1 and "<img" not in text
    (script,) = Scripts(text).scripts
    literal = script.split("const shownVersion = ", 1)[1].split(";\n", 1)[0]
    assert json.loads(literal) == version  # one JSON string, whatever it holds
    assert "<" not in literal and ">" not in literal


def test_the_version_changes_when_a_run_writes_its_record(tmp_path):
    empty = page_version(tmp_path)
    write(tmp_path, "run.json", run_record("running"))
    running = page_version(tmp_path)
    assert running != empty
    assert page_version(tmp_path) == running  # stable while nothing is written
    path = write(tmp_path, "run.json", run_record("ok", finished=1_700_000_033.0))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))  # a coarse clock must not hide it
    assert page_version(tmp_path) not in (empty, running)
    assert f'const shownVersion = "{page_version(tmp_path)}";' in render(load_page(tmp_path))


def test_earlier_runs_are_listed_newest_first(finished_run):
    write(finished_run, "history/20250101-120000/run.json", run_record("ok"))
    write(finished_run, "history/20250102-080000/run.json", "{broken")
    page = load_page(finished_run)
    assert [(p.stamp, p.status) for p in page.history] == [("20250102-080000", "unknown"), ("20250101-120000", "ok")]
    assert page.problems == []  # an old broken record is not today's problem
    assert '<a href="/history/20250101-120000/">' in render(page)


# --------------------------------------------------------------------------- server


@pytest.fixture
def serve(tmp_path):
    """Start a results server on a free port for a folder; yields a GET function."""
    servers = []

    def start(folder: Path):
        server = results_server(folder, 0, host="127.0.0.1")
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)

        def get(path: str, method: str = "GET") -> tuple[int, dict, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=10)
            conn.request(method, path)
            answer = conn.getresponse()
            result = answer.status, {k.lower(): v for k, v in answer.getheaders()}, answer.read()
            conn.close()
            return result
        return get

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_server_answers_the_page_and_every_results_file(finished_run, serve):
    get = serve(finished_run)

    for path in ("/", "/index.html"):
        status, headers, body = get(path)
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert headers["cache-control"] == "no-store"
        assert 'data-key="Glucose/real/0/count">490<' in body.decode()

    status, headers, body = get("/figures/Glucose.png?v=123")
    assert (status, headers["content-type"], body) == (200, "image/png", PNG)
    status, _, body = get("/mock/figures/Glucose.png")
    assert (status, body) == (200, PNG)
    status, _, body = get("/aggregate.json")
    assert status == 200 and json.loads(body) == aggregate(scale=10)

    status, _, body = get("/page-version")
    assert status == 200 and json.loads(body) == {"version": page_version(finished_run)}

    status, headers, body = get("/", method="HEAD")
    assert status == 200 and body == b"" and int(headers["content-length"]) > 1000


def test_server_refuses_paths_outside_the_results_folder(tmp_path, serve):
    results = tmp_path / "results"
    results.mkdir()
    write(tmp_path, "secret.txt", "private")
    get = serve(results)
    for path in ("/../secret.txt", "/%2e%2e/secret.txt", "/figures/../../secret.txt"):
        status, _, body = get(path)
        assert status == 404 and b"private" not in body, path


STYLESHEET = Path(web.__file__).parent / "static" / "results.css"


def test_server_answers_the_stylesheet_from_the_package(tmp_path, serve):
    get = serve(tmp_path)
    assert '<link rel="stylesheet" href="/static/results.css">' in get("/")[2].decode()

    status, headers, body = get("/static/results.css")
    assert (status, headers["content-type"], body) == (200, "text/css; charset=utf-8", STYLESHEET.read_bytes())
    assert b"td.job-status" in body and int(headers["content-length"]) == len(body)

    status, headers, body = get("/static/results.css", method="HEAD")
    assert (status, headers["content-type"], body) == (200, "text/css; charset=utf-8", b"")
    assert int(headers["content-length"]) == len(STYLESHEET.read_bytes())


def test_server_answers_only_files_directly_in_the_static_folder(tmp_path, serve):
    results = tmp_path / "results"
    write(results, "run.json", {"status": "ok", "secret": "run-record"})
    write(results, "static/own.css", "body { color: red; }")
    write(tmp_path, "secret.txt", "private")
    get = serve(results)

    for path in ("/static/missing.css", "/static/", "/static/../run.json", "/static/%2e%2e/run.json",
                 "/static/..%2frun.json", "/static/../../secret.txt", "/static/../web.py", "/static/%2e%2e/web.py",
                 "/static/../templates/results.html", "/static//etc/passwd", "/static/%2fetc%2fpasswd",
                 "/static/./results.css/../../run.json",
                 "/static/own.css"):  # a static/ of the results folder is not the page's
        for method in ("GET", "HEAD"):
            status, _, body = get(path, method)
            assert status == 404, (method, path)
            markers = (b"run-record", b"private", b"color: red", b"import", b"{%")
            assert not any(marker in body for marker in markers), (method, path)


def test_server_answers_an_empty_or_broken_folder_with_a_page(tmp_path, serve):
    get = serve(tmp_path)
    status, _, body = get("/")
    assert status == 200 and "No run has finished yet." in body.decode()

    write(tmp_path, "run.json", "{not json")
    write(tmp_path, "aggregate.json", '{"features": {"Glucose": {"by_outcome": 7}}}')
    status, _, body = get("/")
    assert status == 200
    assert "run.json could not be read" in body.decode() and "<h2>Glucose</h2>" in body.decode()


def test_any_apps_figures_and_files_are_shown_with_the_replies_per_round(tmp_path):
    """An app that writes no aggregate.json: its figures shown, its other files linked, the
    server's log too, and who replied in each round (from the messages)."""
    replies = [{"round": 1, "asked": ["do1@x.org", "do2@x.org"], "replied": ["do1@x.org", "do2@x.org"],
                "errors": {}, "silent": []},
               {"round": 2, "asked": ["do1@x.org", "do2@x.org"], "replied": ["do1@x.org"],
                "errors": {"do2@x.org": "reply refused: too big (code 0)"}, "silent": []}]
    write(tmp_path, "run.json", run_record("ok", datasites=["do1@x.org"], missing_datasites=["do2@x.org"],
                                           replies=replies, rounds={"done": 2, "total": None}))
    write(tmp_path, "moments.json", {"columns": {}})
    (tmp_path / "server-files").mkdir()
    (tmp_path / "server-files" / "moments.png").write_bytes(b"\x89PNG fake")
    (tmp_path / "server.log").write_text("the log")
    (tmp_path / "history" / "old").mkdir(parents=True)
    (tmp_path / "history" / "old" / "x.png").write_bytes(b"old")

    page = load_page(tmp_path)
    assert [(f.name, f.image) for f in page.files] == [("moments.json", False), ("server-files/moments.png", True),
                                                       ("server.log", False)]
    html = render(page)
    assert '<img src="/server-files/moments.png?v=' in html
    assert '<a href="/moments.json?v=' in html and '<a href="/server.log?v=' in html
    assert "history/old/x.png" not in html.split('id="history"')[0]  # earlier runs are not this run's files
    assert "do2@x.org: reply refused: too big (code 0)" in html
    assert "<td>2 done</td>" in html
