"""The identity of submitted code: one sha256 over the tree."""

from __future__ import annotations

import json
import shutil
import time
import tomllib
from pathlib import Path

import pytest

from federation.common.codehash import code_files, code_hash
from tests.conftest import REPO_ROOT
from tests.unit.fakes import DS

# =========================================================================== code hash


PYPROJECT = """\
[project]
name = "fed_app"
version = "1.0.0"
dependencies = ["flwr==1.21.0", "syft_flwr==0.4.0"]

[tool.flwr.app]
publisher = "federation"

[tool.flwr.app.config]
num-server-rounds = 1
results-dir = "results"

[tool.syft_flwr]
app_name = "ds@openmined.org_fed_app_1700000000"
datasites = ["do1@openmined.org", "do2@openmined.org"]
aggregator = "ds@openmined.org"
"""

FILES = {
    "main.py": "from fed_app import run\nrun()\n",
    "pyproject.toml": PYPROJECT,
    "README.md": "# fed app\n",
    "fed_app/__init__.py": "",
    "fed_app/stats.py": "def mean(xs):\n    return sum(xs) / len(xs)\n",
    "fed_app/data/bins.json": '{"BMI": [0, 10, 20]}\n',
}


def make_tree(root: Path, files: dict[str, str | bytes], order: list[str] | None = None) -> Path:
    for rel in order or list(files):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        content = files[rel]
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return root


@pytest.fixture
def tree(tmp_path) -> Path:
    return make_tree(tmp_path / "base", FILES)


def test_same_tree_same_hash(tmp_path, tree):
    h = code_hash(tree)
    assert len(h) == 64 and int(h, 16) >= 0
    assert code_hash(tree) == h
    assert code_hash(make_tree(tmp_path / "copy", FILES)) == h


def test_file_creation_order_does_not_matter(tmp_path):
    names = list(FILES)
    a = make_tree(tmp_path / "a", FILES, order=names)
    b = make_tree(tmp_path / "b", FILES, order=list(reversed(names)))
    assert code_hash(a) == code_hash(b)


def test_directory_listing_order_does_not_matter(tree, monkeypatch):
    """Whatever order the file system lists the tree in, the hash is the same."""
    expected = code_hash(tree)
    real_rglob = Path.rglob
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: iter(sorted(real_rglob(self, pattern), reverse=True)))
    assert code_hash(tree) == expected
    monkeypatch.setattr(Path, "rglob", lambda self, pattern: iter(sorted(real_rglob(self, pattern))))
    assert code_hash(tree) == expected


def test_caches_are_ignored(tree):
    before_hash, before_files = code_hash(tree), code_files(tree)
    assert [p.as_posix() for p in before_files] == sorted(FILES)
    make_tree(tree, {
        "__pycache__/main.cpython-311.pyc": b"\x00\x01compiled",
        "fed_app/__pycache__/stats.cpython-311.pyc": b"\x00\x02compiled",
        "fed_app/__pycache__/notes.txt": "anything in a cache folder",
        "fed_app/stale.pyc": b"\x00\x03",
        ".DS_Store": b"\x00\x00\x00\x01Bud1",
        "fed_app/.DS_Store": b"\x00\x00\x00\x01Bud1",
    })
    assert code_hash(tree) == before_hash
    assert code_files(tree) == before_files


@pytest.mark.parametrize("change", [
    "edit a byte", "append a newline", "empty a file", "rename", "move to another folder",
    "add a file", "add an empty file", "add a hidden file", "swap two files' contents",
])
def test_any_change_to_the_code_changes_the_hash(tree, change):
    before = code_hash(tree)
    stats = tree / "fed_app" / "stats.py"
    if change == "edit a byte":
        stats.write_text(stats.read_text().replace("len(xs)", "len(ys)"))
    elif change == "append a newline":
        stats.write_text(stats.read_text() + "\n")
    elif change == "empty a file":
        (tree / "README.md").write_text("")
    elif change == "rename":
        stats.rename(tree / "fed_app" / "stats2.py")
    elif change == "move to another folder":
        stats.rename(tree / "stats.py")
    elif change == "add a file":
        (tree / "fed_app" / "extra.py").write_text("import os\n")
    elif change == "add an empty file":
        (tree / "fed_app" / "py.typed").write_text("")
    elif change == "add a hidden file":
        (tree / ".env").write_text("X=1\n")
    elif change == "swap two files' contents":
        main, readme = (tree / "main.py").read_text(), (tree / "README.md").read_text()
        (tree / "main.py").write_text(readme)
        (tree / "README.md").write_text(main)
    assert code_hash(tree) != before


def _edit_pyproject(tree: Path, old: str, new: str) -> None:
    path = tree / "pyproject.toml"
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


def test_pyproject_app_name_is_ignored(tree):
    before = code_hash(tree)
    _edit_pyproject(tree, "fed_app_1700000000", "fed_app_1800000000")
    assert code_hash(tree) == before
    _edit_pyproject(tree, '"ds@openmined.org_fed_app_1800000000"', '"someone-else"')
    assert code_hash(tree) == before


@pytest.mark.parametrize("old,new", [
    ('datasites = ["do1@openmined.org", "do2@openmined.org"]', 'datasites = ["do1@openmined.org", "do3@openmined.org"]'),
    ('datasites = ["do1@openmined.org", "do2@openmined.org"]', 'datasites = ["do1@openmined.org"]'),
    ('aggregator = "ds@openmined.org"', 'aggregator = "eve@openmined.org"'),
    ("num-server-rounds = 1", "num-server-rounds = 2"),
    ('results-dir = "results"', 'results-dir = "/tmp/elsewhere"'),
    ('version = "1.0.0"', 'version = "1.0.1"'),
    ('"flwr==1.21.0"', '"flwr==1.20.0"'),
    ('publisher = "federation"', 'publisher = "federation"\napp_name = "not the syft_flwr one"'),
    ("[tool.syft_flwr]\n", "[tool.syft_flwr]\nextra = true\n"),
])
def test_pyproject_every_other_key_counts(tree, old, new):
    before = code_hash(tree)
    _edit_pyproject(tree, old, new)
    assert code_hash(tree) != before


@pytest.mark.parametrize("content", [
    b'[tool.syft_flwr]\napp_name = "a_1700000000"\nthis is = = not toml [\n',
    b"\xff\xfe not utf-8 [tool.syft_flwr]",
])
def test_pyproject_that_is_not_toml_is_hashed_as_bytes(tmp_path, content):
    root = make_tree(tmp_path / "bad", {"main.py": "print(1)\n", "pyproject.toml": content})
    h = code_hash(root)
    assert len(h) == 64
    # as bytes, every byte counts: even the app_name line, ignored in a valid pyproject.toml
    changed = content.replace(b"1700000000", b"1800000000") if b"1700000000" in content else content + b" "
    (root / "pyproject.toml").write_bytes(changed)
    assert code_hash(root) != h


@pytest.mark.parametrize("content", [
    'tool = "x"\n', "[tool]\nsyft_flwr = 1\n", '[tool]\nsyft_flwr = ["app_name"]\n',
], ids=["tool-is-a-string", "syft_flwr-is-an-int", "syft_flwr-is-an-array"])
def test_valid_toml_of_another_shape_is_hashed_without_a_crash(tmp_path, content):
    """Known bug (federation/codehash.py, _content): `[tool]`/`[tool.syft_flwr]` are assumed to be
    tables; any submitter can make code_hash raise, and with it the runner's review and `datasite jobs`."""
    root = make_tree(tmp_path / "odd", {"main.py": "print(1)\n", "pyproject.toml": content})
    h = code_hash(root)
    (root / "pyproject.toml").write_text(content.replace("1", "2").replace('"x"', '"y"').replace("app_name", "other"))
    assert len(h) == 64 and code_hash(root) != h


def _normalised_json(toml_text: str) -> str:
    doc = tomllib.loads(toml_text)
    doc["tool"]["syft_flwr"].pop("app_name")
    return json.dumps(doc, sort_keys=True, default=str)


@pytest.mark.parametrize("first,second", [
    # a valid pyproject.toml, and a file holding (as raw, non-TOML bytes) the JSON form it is hashed as
    (PYPROJECT, _normalised_json(PYPROJECT)),
    # a TOML date and a TOML string that reads the same
    ('[project]\nname = "x"\nreleased = 2025-01-01\n', '[project]\nname = "x"\nreleased = "2025-01-01"\n'),
], ids=["toml-vs-its-json-as-bytes", "date-vs-string"])
def test_different_pyproject_files_have_different_hashes(tmp_path, first, second):
    """Known bug (federation/codehash.py, _content): the normalised form of a valid pyproject.toml
    is hashed in the same domain as raw bytes, and `default=str` loses TOML value types."""
    a = make_tree(tmp_path / "a", {"main.py": "print(1)\n", "pyproject.toml": first})
    b = make_tree(tmp_path / "b", {"main.py": "print(1)\n", "pyproject.toml": second})
    assert (a / "pyproject.toml").read_bytes() != (b / "pyproject.toml").read_bytes()
    assert code_hash(a) != code_hash(b)


def test_bootstrapping_twice_gives_the_same_hash(tmp_path, monkeypatch):
    """syft_flwr.bootstrap stamps app_name with the time: two bootstraps of the same app are the same code."""
    from syft_flwr import bootstrap

    runs = []
    for stamp in (1_700_000_000.0, 1_800_000_123.0):
        dst = tmp_path / f"app-{int(stamp)}"
        shutil.copytree(REPO_ROOT / "fed_app", dst, ignore=shutil.ignore_patterns("__pycache__"))
        plain = code_hash(dst)
        with monkeypatch.context() as m:
            m.setattr(time, "time", lambda stamp=stamp: stamp)
            bootstrap(dst, aggregator=DS, datasites=["do1@openmined.org", "do2@openmined.org"])
        assert (dst / "main.py").is_file()
        runs.append((dst, plain))

    (a, plain_a), (b, plain_b) = runs
    text_a, text_b = (a / "pyproject.toml").read_text(), (b / "pyproject.toml").read_text()
    assert text_a != text_b
    assert "1700000000" in text_a and "1800000123" in text_b
    differing = [(x, y) for x, y in zip(text_a.splitlines(), text_b.splitlines()) if x != y]
    assert len(differing) == 1 and "app_name" in differing[0][0]  # nothing else was stamped
    assert code_hash(a) == code_hash(b)
    assert plain_a == plain_b and code_hash(a) != plain_a  # bootstrapping itself is a change


