"""The privacy boundary shows in the imports: owner code never imports scientist code, nor the
reverse, and what both share imports neither."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "federation"
FORBIDDEN = {
    "owner": ("federation.scientist",),
    "scientist": ("federation.owner",),
    "common": ("federation.owner", "federation.scientist", "federation.sync_server"),
    "sync_server": ("federation.owner", "federation.scientist"),
}


def imported_modules(path: Path) -> set[str]:
    """Every module a file imports, at any depth (lazy imports in functions count too)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_party_never_imports_the_other(package):
    files = sorted((PACKAGE / package).rglob("*.py"))
    assert files, f"no modules in federation/{package}"
    crossing = {f"{path.relative_to(REPO_ROOT)} imports {name}"
                for path in files for name in imported_modules(path)
                if name.startswith(FORBIDDEN[package])}
    assert not crossing, "\n".join(sorted(crossing))


def test_the_check_sees_a_crossing(tmp_path):
    """Control: an import inside a function is found."""
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from federation.scientist import session\n")
    assert "federation.scientist.session" in imported_modules(module)
