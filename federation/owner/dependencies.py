"""What a job's app declares it needs, against what this datasite has.

An owner runs jobs in its own environment (the executor's image) and installs nothing for a
job. The app's `[project] dependencies` are compared with the installed distributions: a
package that is not there means the job cannot run (rejected, naming it); a version outside
the declared range is shown to the owner and the DS but does not stop the job, unless the
owner is strict (STRICT_DEPENDENCIES).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Callable

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion


@dataclass
class Check:
    missing: list[str] = field(default_factory=list)  # requirements with nothing installed
    differ: list[str] = field(default_factory=list)  # "numpy==2.2.0 wanted, 2.3.3 here"
    invalid: list[str] = field(default_factory=list)  # lines that are no requirement

    def to_json(self) -> dict:
        return {"missing": self.missing, "differ": self.differ, "invalid": self.invalid}

    @property
    def note(self) -> str:
        """One line for the DS and the owner, empty when everything matches."""
        parts = []
        if self.missing:
            parts.append(f"not installed on this datasite: {', '.join(self.missing)} (an owner installs nothing "
                         "for a job)")
        if self.invalid:
            parts.append(f"not a requirement: {', '.join(map(repr, self.invalid))}")
        if self.differ:
            parts.append(f"versions differ: {'; '.join(self.differ)}")
        return "; ".join(parts)


def installed_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def declared(code_dir: Path) -> list[str]:
    """The app's `[project] dependencies` (none when it declares none)."""
    try:
        with open(code_dir / "pyproject.toml", "rb") as f:
            project = tomllib.load(f).get("project", {})
    except (OSError, tomllib.TOMLDecodeError):
        return []  # the runner names a missing or broken pyproject.toml itself
    deps = project.get("dependencies", [])
    return [str(d) for d in deps] if isinstance(deps, list) else []


def check(requirements: list[str], version_of: Callable[[str], str | None] = installed_version) -> Check:
    result = Check()
    for line in requirements:
        try:
            req = Requirement(line)
        except InvalidRequirement:
            result.invalid.append(line)
            continue
        if req.marker is not None and not req.marker.evaluate():
            continue  # not for this platform or Python
        have = version_of(canonicalize_name(req.name))
        if have is None:
            result.missing.append(str(req))
        elif req.specifier and not _within(req.specifier, have):
            result.differ.append(f"{req.name}{req.specifier} wanted, {have} here")
    return result


def _within(specifier, version: str) -> bool:
    try:
        return specifier.contains(version, prereleases=True)
    except InvalidVersion:  # not a PEP 440 version: it cannot be said to match
        return False


def check_code(code_dir: Path) -> Check:
    return check(declared(code_dir))
