"""Writing a file so that a reader sees the old version or the new one, never half of it.

Every state file of ours (health, run records, job records, permission files, CSVs) is
written through `atomic_write`: a temporary file beside the target, then one rename.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def atomic_write(path: Path, content: str | bytes) -> None:
    """Replace `path` with `content` in one step (creating its folder)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A unique name per writer: two processes (the runner and the CLI) may write one file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content.encode() if isinstance(content, str) else content)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_json(path: Path, value: Any, indent: int | None = 2) -> None:
    atomic_write(path, json.dumps(value, indent=indent))


def read_json(path: Path) -> Any | None:
    """The file's JSON value; None when it is absent or not (yet) valid JSON."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
