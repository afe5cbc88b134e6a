"""scripts/owners: N data owners from settings folders, checked, as one compose override."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml


class ComposeLoader(yaml.SafeLoader):
    """YAML as compose reads it: `!override` marks a value that replaces the extended one."""


ComposeLoader.add_constructor("!override", lambda loader, node: {"!override": loader.construct_sequence(node)})

from tests.conftest import REPO_ROOT

spec = importlib.util.spec_from_file_location("owners", REPO_ROOT / "scripts" / "owners.py")
owners = importlib.util.module_from_spec(spec)
spec.loader.exec_module(owners)


def generate(root: Path, *args: str) -> tuple[int, dict | None]:
    out = root / "override.yaml"
    code = owners.main(["--root", str(root), "--out", str(out), *args])
    return code, (yaml.load(out.read_text(), ComposeLoader) if out.exists() else None)


def test_demo_of_four_adds_two_owners_and_splits_the_public_file_four_ways(tmp_path):
    code, config = generate(tmp_path, "--demo", "4")
    assert code == 0
    services = config["services"]
    assert sorted(services) == ["credentials", "do1", "do2", "do3", "do3-executor", "do4", "do4-executor", "ds",
                                "notebook"]
    assert services["notebook"]["environment"]["DATASITES"] == services["ds"]["environment"]["DATASITES"]
    assert [services[f"do{k}"]["environment"]["DEMO_PARTITION"] for k in range(1, 5)] == ["1/4", "2/4", "3/4", "4/4"]
    assert services["ds"]["environment"]["DATASITES"] == ",".join(f"do{k}@openmined.org" for k in range(1, 5))
    assert sorted(services["ds"]["depends_on"]) == ["do3", "do4"]
    assert sorted(config["volumes"]) == ["do3-home", "do3-jobs", "do3-kit", "do4-home", "do4-jobs", "do4-kit"]
    # each extra owner has its executor, sharing only its jobs volume
    assert services["do4-executor"] == {"extends": {"file": str(REPO_ROOT / "compose.yaml"), "service": "do1-executor"},
                                        "volumes": ["do4-jobs:/jobs"]}
    assert "do4-jobs:/jobs" in services["do4"]["volumes"]
    # each extra owner gets a kit, into a volume only it mounts
    kits = services["credentials"]["volumes"]
    assert "do4-kit:/kits/do4" in kits and f"{tmp_path / 'do4' / 'settings.env'}:/parties/do4.env:ro" in kits
    assert "do4-kit:/run/federation/kit:ro" in services["do4"]["volumes"]
    assert not any("do4-kit" in v for n, s in services.items() if n not in ("do4", "credentials")
                   for v in s.get("volumes", []))
    do4 = services["do4"]
    assert do4["env_file"] == {"!override": [str(tmp_path / "do4" / "settings.env")]}  # do1's is not inherited
    assert f"{tmp_path / 'do4' / 'datasets'}:/data/datasets:ro" in do4["volumes"]
    assert "do4-home:/home/syft/federation" in do4["volumes"]
    settings = owners.read_env(tmp_path / "do4" / "settings.env")
    assert settings["SYFTBOX_EMAIL"] == "do4@openmined.org" and settings["DEMO_PARTITION"] == "4/4"
    assert settings["APPROVE_JOBS_FROM"] == "ds@openmined.org"
    assert (tmp_path / "do4" / "datasets").stat().st_mode & 0o777 == 0o755  # readable by uid 1000
    assert not (tmp_path / "do1").exists()  # do1 and do2 are the checkout's own


def mount_target(volume: str) -> str:
    """Where a compose volume is mounted (its source may be "${VAR:-default}")."""
    return re.sub(r"^\$\{[^}]*\}", "source", volume).split(":")[1]


def test_each_owner_extends_do1_of_compose_yaml_and_restates_only_what_differs(tmp_path):
    """The generated owner cannot drift from compose.yaml's: it is do1, with its own settings
    file, home and private folder (mounted where do1 mounts them) and demo share."""
    _, config = generate(tmp_path, "--demo", "3")
    base = yaml.safe_load((REPO_ROOT / "compose.yaml").read_text())["services"]["do1"]
    do3 = config["services"]["do3"]
    assert do3["extends"] == {"file": str(REPO_ROOT / "compose.yaml"), "service": "do1"}
    assert set(do3) == {"extends", "env_file", "environment", "volumes"}
    assert do3["environment"] == {"DEMO_PARTITION": "3/3"}
    targets = {mount_target(v) for v in do3["volumes"]}
    assert targets <= {mount_target(v) for v in base["volumes"]}  # each replaces do1's mount there
    assert targets == {"/home/syft/federation", "/run/federation/kit", "/jobs", "/data/datasets"}


def test_an_owner_folder_added_by_hand_is_picked_up_and_the_ds_warned_if_it_does_not_ask_it(tmp_path, capsys):
    (tmp_path / "do7").mkdir()
    (tmp_path / "do7" / "settings.env").write_text("SYFTBOX_EMAIL=clinic@hospital.org\nAPPROVAL=manual\n")
    code, config = generate(tmp_path)
    assert code == 0
    assert sorted(config["services"]) == ["credentials", "do7", "do7-executor", "ds"]
    assert "environment" not in config["services"]["do7"]  # no demo share: only what the folder says
    assert "environment" not in config["services"]["ds"]  # DATASITES stays the DS's own entry
    assert "do7/ (clinic@hospital.org) runs, but DATASITES" in capsys.readouterr().err


def test_only_do1_and_do2_gives_an_empty_override(tmp_path):
    code, config = generate(tmp_path)
    assert code == 0 and config == {"services": {}}


@pytest.mark.parametrize("files, words", [
    ({"do3/notes.txt": "x"}, "do3/ has no settings.env"),
    ({"do3/settings.env": "SYFTBOX_EMAIL=not-an-email\n"}, "SYFTBOX_EMAIL='not-an-email' is not an email"),
    ({"do3/settings.env": "SYFTBOX_EMAIL=do1@openmined.org\n"}, "do1@openmined.org is already the owner in do1/"),
    ({"do3/settings.env": "SYFTBOX_EMAIL do3@openmined.org\n"}, "settings.env:1: not KEY=VALUE"),
])
def test_bad_owner_folders_are_refused_naming_the_file_and_nothing_is_written(tmp_path, capsys, files, words):
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    code, config = generate(tmp_path)
    assert code == 2 and config is None
    assert words in capsys.readouterr().err


def test_a_demo_needs_two_owners(tmp_path, capsys):
    code, config = generate(tmp_path, "--demo", "1")
    assert code == 2 and config is None
    assert "at least 2 owners" in capsys.readouterr().err
