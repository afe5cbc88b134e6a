"""The identity of submitted code: one sha256 over the code tree.

Independent of file order and of caches (`__pycache__`, `*.pyc`, `.DS_Store`).
One key is left out: `[tool.syft_flwr] app_name` in pyproject.toml, which
`syft_flwr.bootstrap` stamps with the time on every run; it names the run, it is
not code. Everything else, the owners list and the app config included, counts.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path

IGNORED_DIRS = {"__pycache__", ".pytest_cache", ".ipynb_checkpoints"}
IGNORED_SUFFIXES = {".pyc", ".pyo"}
IGNORED_NAMES = {".DS_Store"}


def code_files(root: Path) -> list[Path]:
    """The files that make up the code, as paths relative to `root`, sorted."""
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if not path.is_file() or any(part in IGNORED_DIRS for part in rel.parts[:-1]):
            continue
        if path.suffix in IGNORED_SUFFIXES or path.name in IGNORED_NAMES:
            continue
        files.append(rel)
    return sorted(files, key=lambda p: p.as_posix())


def _tagged(value):
    """A TOML value with its type kept (so 2025-01-01 and "2025-01-01" stay different)."""
    if isinstance(value, dict):
        return ["table", {k: _tagged(v) for k, v in value.items()}]
    if isinstance(value, list):
        return ["array", [_tagged(v) for v in value]]
    if hasattr(value, "isoformat"):
        return [type(value).__name__, value.isoformat()]
    return [type(value).__name__, value]


def _content(root: Path, rel: Path) -> bytes:
    """What is hashed for one file: its bytes, or for pyproject.toml its parsed form
    without the run's app_name. The two are tagged so that one can never pass for the other."""
    data = (root / rel).read_bytes()
    if rel.as_posix() == "pyproject.toml":
        try:
            doc = tomllib.loads(data.decode())
        except (UnicodeDecodeError, tomllib.TOMLDecodeError):
            return b"raw\0" + data  # not valid TOML: hash it as it is
        tool = doc.get("tool")
        syft_flwr = tool.get("syft_flwr") if isinstance(tool, dict) else None
        if isinstance(syft_flwr, dict):
            syft_flwr.pop("app_name", None)
        return b"toml\0" + json.dumps(_tagged(doc), sort_keys=True).encode()
    return b"raw\0" + data


def code_hash(root: Path) -> str:
    if not root.is_dir():
        raise FileNotFoundError(f"no code folder at {root}")
    digest = hashlib.sha256()
    for rel in code_files(root):
        digest.update(rel.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(_content(root, rel)).hexdigest().encode() + b"\n")
    return digest.hexdigest()
