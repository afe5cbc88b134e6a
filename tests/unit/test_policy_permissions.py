"""Unit tests for the owner's approval policy and the guest permission files."""

from __future__ import annotations

import re

import pytest
import yaml

from federation.permissions import grant_guest_access
from federation.policy import Decision, Policy, decide

ALLOW = ["ds@openmined.org", "Second.Scientist@Example.org"]
HASH = "ab" * 32  # a code hash; no hashes are pinned here, so any code counts
POLICY = Policy(mode="auto", allowlist=tuple(ALLOW))


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize("submitter", [
    "ds@openmined.org", "DS@OpenMined.org", "second.scientist@example.org", "SECOND.SCIENTIST@EXAMPLE.ORG",
])
def test_allowlisted_submitter_is_approved_case_insensitively(submitter):
    d = decide(POLICY, submitter, HASH)
    assert isinstance(d, Decision)
    assert d.approve is True
    assert d.action == "approve"
    assert submitter in d.reason
    assert "allowlist" in d.reason


@pytest.mark.parametrize("submitter", [
    "mallory@openmined.org", "ds@openmined.org.evil.com", "ds@openmined", "x-ds@openmined.org", "",
])
def test_other_submitters_are_not_approved(submitter):
    d = decide(POLICY, submitter, HASH)
    assert d.approve is False
    assert d.action == "pending"  # left for a person: the default for jobs auto mode does not approve
    assert (submitter or "(unknown)") in d.reason
    assert "not on the allowlist" in d.reason


def test_unknown_submitter_is_not_approved():
    d = decide(POLICY, None, HASH)
    assert d.approve is False
    assert d.action == "pending"
    assert "(unknown)" in d.reason


def test_empty_allowlist_approves_nobody():
    d = decide(Policy(mode="auto", allowlist=()), "ds@openmined.org", HASH)
    assert d.approve is False
    assert d.action == "pending"


def test_decide_does_not_modify_the_allowlist():
    allow = list(ALLOW)
    policy = Policy(mode="auto", allowlist=allow)  # even a list given by a caller is left alone
    assert decide(policy, "DS@OPENMINED.ORG", HASH).approve is True
    assert allow == ALLOW
    assert policy == Policy(mode="auto", allowlist=list(ALLOW))


# --------------------------------------------------------------------------- permissions


def glob_re(pattern: str) -> re.Pattern:
    """SyftBox-style glob: `**` any depth, `*` one path segment, {useremail} one segment."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern.startswith("{useremail}", i):
            out += "[^/]+"
            i += len("{useremail}")
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out + r"\Z")


def load_rules(path) -> list[dict]:
    doc = yaml.safe_load(path.read_text())
    assert isinstance(doc, list) and doc
    for rule in doc:
        assert set(rule) == {"path", "user", "permissions"}
        assert isinstance(rule["permissions"], list)
    return doc


def perms_for(rules: list[dict], rel: str) -> set[str]:
    return {p for r in rules if glob_re(r["path"]).match(rel) for p in r["permissions"]}


@pytest.fixture
def datasite(tmp_path):
    site = tmp_path / "SyftBox" / "datasites" / "do1@openmined.org"
    grant_guest_access(site)
    return site


def test_both_permission_files_are_written(datasite):
    rds = datasite / "app_data" / "RDS" / "syftperm.yaml"
    flwr = datasite / "app_data" / "flwr" / "syftperm.yaml"
    assert rds.is_file() and flwr.is_file()
    # nothing else left behind (no temp files)
    assert sorted(p.name for p in (datasite / "app_data" / "RDS").iterdir()) == ["syftperm.yaml"]
    assert sorted(p.name for p in (datasite / "app_data" / "flwr").iterdir()) == ["syftperm.yaml"]


def test_every_rule_is_for_every_user(datasite):
    for app in ("RDS", "flwr"):
        for rule in load_rules(datasite / "app_data" / app / "syftperm.yaml"):
            assert rule["user"] == "*", (app, rule)


def test_rds_store_is_read_only(datasite):
    rules = load_rules(datasite / "app_data" / "RDS" / "syftperm.yaml")
    store_rules = [r for r in rules if r["path"].startswith("store")]
    assert store_rules, "the store must be readable by guests"
    for r in store_rules:
        assert set(r["permissions"]) == {"read"}, r
    # whatever rule matches a file in the store, it grants read only
    for rel in ("store/job/0a1b.json", "store/user_code/x/main.py", "store/dataset/pima.yaml", "store/x"):
        assert perms_for(rules, rel) == {"read"}, rel
    assert "admin" not in {p for r in rules for p in r["permissions"]}


def test_rds_rpc_paths_can_be_created_and_written(datasite):
    rules = load_rules(datasite / "app_data" / "RDS" / "syftperm.yaml")
    for rel in ("rpc/job/create/abc.request", "rpc/dataset/get_all/f.response", "rpc/x"):
        assert {"read", "create", "write"} <= perms_for(rules, rel), rel


def test_rds_public_files_readable_not_writable(datasite):
    rules = load_rules(datasite / "app_data" / "RDS" / "syftperm.yaml")
    for rel in ("app.yaml", "public_files/readme.md", "user_files/ds@openmined.org/out.json"):
        assert perms_for(rules, rel) == {"read"}, rel
    # the permission file itself and the app folder root are not writable by guests
    for rel in ("syftperm.yaml", "anything.txt", "private/data.csv"):
        assert not perms_for(rules, rel) & {"write", "create", "admin"}, rel


def test_flwr_rpc_writable_rest_not(datasite):
    rules = load_rules(datasite / "app_data" / "flwr" / "syftperm.yaml")
    assert {"read", "create", "write"} <= perms_for(rules, "fed-app-123/rpc/messages/m.request")
    for rel in ("syftperm.yaml", "fed-app-123/main.py", "fed-app-123/results/out.json"):
        assert not perms_for(rules, rel) & {"write", "create", "admin"}, rel


def test_no_rule_grants_the_whole_app_folder(datasite):
    for app in ("RDS", "flwr"):
        for rule in load_rules(datasite / "app_data" / app / "syftperm.yaml"):
            path = rule["path"]
            assert path not in ("**", "*", "/**", "./**", "**/*"), (app, rule)
            assert not path.startswith("**"), (app, rule)
            if {"write", "create", "admin"} & set(rule["permissions"]):
                # a writable rule is confined to an rpc folder
                assert "rpc/" in path, (app, rule)
                assert not glob_re(path).match("store/job/x.json")
                assert not glob_re(path).match("syftperm.yaml")


def test_grant_replaces_a_file_the_rds_server_wrote(tmp_path):
    site = tmp_path / "site"
    rds = site / "app_data" / "RDS"
    rds.mkdir(parents=True)
    (rds / "syftperm.yaml").write_text(yaml.safe_dump([{"path": "**", "user": "*", "permissions": ["admin"]}]))
    grant_guest_access(site)
    rules = load_rules(rds / "syftperm.yaml")
    assert all(r["path"] != "**" for r in rules)
    assert "admin" not in {p for r in rules for p in r["permissions"]}
    grant_guest_access(site)  # idempotent
    assert load_rules(rds / "syftperm.yaml") == rules
