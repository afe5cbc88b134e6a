"""Data owners by configuration: one settings folder per owner, one compose override for all.

    scripts/owners                 compose.owners.yaml for every do*/ folder beyond do1, do2
    scripts/owners --demo N        first create the missing demo owners do3..doN (owner K serves
                                   share K of N of the public Pima file) and have the DS ask all N
    --root DIR                     where the do*/ and ds/ folders are (default: this checkout)
    --out FILE                     the override to write (default: <root>/compose.owners.yaml)

Each generated owner extends compose.yaml's do1 and restates only what differs, so the two
cannot drift. Then `scripts/up` (it picks the override up) or
`docker compose -f compose.yaml -f compose.owners.yaml up --build`.

Adding an owner by hand: copy do1/ to do3/, give it its own SYFTBOX_EMAIL (and its datasets in
do3/datasets/<name>/private/), add the email to DATASITES in ds/settings.env, run scripts/owners.
Stdlib only: it runs on the host, before any image exists.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IN_BASE_COMPOSE = ("do1", "do2")  # compose.yaml defines these two
OWNER_DIR = re.compile(r"^do(\d+)$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ConfigError(Exception):
    """The settings folders do not describe a federation; the message says which file and why."""


def read_env(path: Path) -> dict[str, str]:
    values = {}
    for number, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "=" not in line:
            raise ConfigError(f"{path}:{number}: not KEY=VALUE: {line!r}")
        key, value = line.split("=", 1)
        values[key.strip()] = value.strip()
    return values


def owner_folders(root: Path) -> dict[str, str]:
    """doK folder name -> its owner's email, in K order; checked. do1 and do2 are always
    this checkout's (compose.yaml runs them); the others are found under `root`."""
    extra = [p for p in root.iterdir() if p.is_dir() and OWNER_DIR.match(p.name) and p.name not in IN_BASE_COMPOSE]
    folders = [REPO / n for n in IN_BASE_COMPOSE] + sorted(extra, key=lambda p: int(OWNER_DIR.match(p.name).group(1)))
    owners: dict[str, str] = {}
    for folder in folders:
        settings = folder / "settings.env"
        if not settings.is_file():
            raise ConfigError(f"{folder}/ has no settings.env (copy do1/settings.env and set SYFTBOX_EMAIL)")
        email = read_env(settings).get("SYFTBOX_EMAIL", "")
        if not EMAIL.match(email):
            raise ConfigError(f"{settings}: SYFTBOX_EMAIL={email!r} is not an email address")
        if email.lower() in {e.lower() for e in owners.values()}:
            other = next(n for n, e in owners.items() if e.lower() == email.lower())
            raise ConfigError(f"{settings}: {email} is already the owner in {other}/")
        owners[folder.name] = email
    return owners


def create_demo_owners(root: Path, count: int) -> None:
    """do3..doN as copies of do1's settings with their own email, where missing."""
    template = (REPO / "do1" / "settings.env").read_text()
    for k in range(len(IN_BASE_COMPOSE) + 1, count + 1):
        folder = root / f"do{k}"
        if (folder / "settings.env").exists():
            continue
        datasets = folder / "datasets"
        datasets.mkdir(parents=True, exist_ok=True)
        datasets.chmod(0o755)  # mounted into the owner, read by the image's uid 1000 (whatever the umask)
        settings = re.sub(r"\bdo1\b", f"do{k}", template)  # its email, its folder in the comments
        settings = re.sub(r"(?m)^# Data owner 1\b", f"# Data owner {k}", settings)
        settings = re.sub(r"(?m)^DEMO_PARTITION=.*$", f"DEMO_PARTITION={k}/{count}", settings)
        settings = re.sub(r"share \d+ of \d+", f"share {k} of {count}", settings)
        (folder / "settings.env").write_text(settings)
        print(f"created {folder}/ (do{k}@openmined.org)", file=sys.stderr)


def owner_service(name: str, root: Path, partition: str | None) -> str:
    """One owner: compose.yaml's do1 (`extends`), with only what differs: its settings file, its
    volumes (the same mount points: its home, its own kit) and, in a demo, its share of the
    public file."""
    demo = f"\n    environment:\n      DEMO_PARTITION: {partition}" if partition else ""
    return f"""
  {name}:
    extends: {{file: {REPO / 'compose.yaml'}, service: do1}}
    env_file: !override [{root / name / 'settings.env'}]{demo}
    volumes:
      - {name}-home:/home/syft/federation
      - {name}-kit:/run/federation/kit:ro
      - {name}-jobs:/jobs
      - {root / name / 'datasets'}:/data/datasets:ro

  {name}-executor:
    extends: {{file: {REPO / 'compose.yaml'}, service: do1-executor}}
    volumes:
      - {name}-jobs:/jobs
"""


def credentials_service(root: Path, extra: list[str]) -> str:
    """The one-shot that issues kits: also one for each extra owner, into that owner's volume."""
    mounts = "".join(f"      - {root / n / 'settings.env'}:/parties/{n}.env:ro\n      - {n}-kit:/kits/{n}\n"
                     for n in extra)
    return f"\n  credentials:\n    volumes:\n{mounts}"


def override(root: Path, owners: dict[str, str], demo: bool) -> str:
    extra = [n for n in owners if n not in IN_BASE_COMPOSE]
    count = len(owners)
    parts = ["# Generated by scripts/owners from the do*/ settings folders: run it again, do not edit.\n",
             "services:"]
    for index, name in enumerate(owners, 1):
        partition = f"{index}/{count}" if demo else None
        if name in extra:
            parts.append(owner_service(name, root, partition))
        elif partition:
            parts.append(f"\n  {name}:\n    environment:\n      DEMO_PARTITION: {partition}\n")
    if extra:
        parts.append(credentials_service(root, extra))
    if demo or extra:
        parts.append("\n  ds:\n")
    if demo:
        parts.append(f"    environment:\n      DATASITES: {','.join(owners.values())}\n")
    if extra:
        parts.append("    depends_on:\n" + "".join(
            f"      {n}:\n        condition: service_started\n" for n in extra))
    if demo:  # the DS's notebook (profile notebook) asks the same owners
        parts.append(f"\n  notebook:\n    environment:\n      DATASITES: {','.join(owners.values())}\n")
    if extra:
        parts.append("\nvolumes:\n" + "".join(f"  {n}-home:\n  {n}-kit:\n  {n}-jobs:\n" for n in extra))
    if not (demo or extra):
        parts.append(" {}\n")  # do1 and do2 only: compose.yaml as it is
    return "".join(parts)


def check_datasites(root: Path, owners: dict[str, str]) -> list[str]:
    """Warnings: owners the DS does not ask, and DS entries no folder here runs."""
    ds_settings = root / "ds" / "settings.env"
    if not ds_settings.exists():
        ds_settings = REPO / "ds" / "settings.env"
    asked = [e.strip() for e in read_env(ds_settings).get("DATASITES", "").split(",") if e.strip()]
    warnings = [f"{name}/ ({email}) runs, but DATASITES in {ds_settings} does not ask it"
                for name, email in owners.items() if email.lower() not in {a.lower() for a in asked}]
    here = {e.lower() for e in owners.values()}
    warnings += [f"DATASITES names {email}, which no do*/ folder here runs (a standalone owner must join)"
                 for email in asked if email.lower() not in here]
    return warnings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/owners", description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo", type=int, metavar="N", help="create demo owners do3..doN first")
    parser.add_argument("--root", type=Path, default=REPO)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    root = args.root.resolve()
    out = args.out or root / "compose.owners.yaml"
    try:
        if args.demo is not None:
            if args.demo < 2:
                raise ConfigError(f"--demo {args.demo}: a federation needs at least 2 owners "
                                  "(syft_flwr.bootstrap refuses fewer)")
            root.mkdir(parents=True, exist_ok=True)
            create_demo_owners(root, args.demo)
        owners = owner_folders(root)
        if args.demo is not None:
            owners = {n: e for n, e in owners.items() if int(n[2:]) <= args.demo}
        if args.demo is None:
            for warning in check_datasites(root, owners):
                print(f"scripts/owners: warning: {warning}", file=sys.stderr)
    except (ConfigError, OSError) as e:
        print(f"scripts/owners: {e}", file=sys.stderr)
        return 2
    out.write_text(override(root, owners, demo=args.demo is not None))
    print(f"scripts/owners: {out}: {len(owners)} owners ({', '.join(owners.values())})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
