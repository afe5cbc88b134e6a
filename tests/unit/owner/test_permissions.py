"""The guest rules an owner writes for the sync server."""

from __future__ import annotations

import re

import pytest
import yaml

from federation.owner.permissions import grant_guest_access

# --------------------------------------------------------------------------- permissions


def glob_re(pattern: str, user: str | None = None) -> re.Pattern:
    """SyftBox-style glob: `**` any depth, `*` one path segment, {useremail} the user's email
    (any one segment when no user is given)."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern.startswith("{useremail}", i):
            out += re.escape(user) if user else "[^/]+"
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


def perms_for(rules: list[dict], rel: str, user: str = "ds@openmined.org") -> set[str]:
    """What `user` may do with `rel` (every rule is for every user; {useremail} is the user)."""
    return {p for r in rules if glob_re(r["path"], user).match(rel) for p in r["permissions"]}


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


def test_a_guest_writes_requests_only_in_its_own_sender_folder(datasite):
    rules = load_rules(datasite / "app_data" / "RDS" / "syftperm.yaml")
    for rel in ("rpc/job/create/ds@openmined.org/abc.request", "rpc/health/ds@openmined.org/f.response",
                "rpc/dataset/get_all/ds@openmined.org/f.response"):
        assert {"read", "create", "write"} <= perms_for(rules, rel), rel
    # another party's folder, or a request outside any sender folder: nothing
    for rel in ("rpc/job/create/mallory@evil.org/abc.request", "rpc/job/create/abc.request", "rpc/x"):
        assert not perms_for(rules, rel), rel
    assert not perms_for(rules, "rpc/job/create/ds@openmined.org/abc.request", user="mallory@evil.org")
    assert perms_for(rules, "rpc/rpc.schema.json") == {"read"}


def test_the_legacy_server_accepts_the_rules(datasite):
    """syftbox 0.4.0 refuses a rule with `**` before {useremail} (PermissionParsingError)."""
    for app in ("RDS", "flwr"):
        for rule in load_rules(datasite / "app_data" / app / "syftperm.yaml"):
            path = rule["path"]
            if "{useremail}" in path:
                assert "**" not in path[:path.rindex("{useremail}")], (app, rule)


def test_rds_public_files_readable_not_writable(datasite):
    rules = load_rules(datasite / "app_data" / "RDS" / "syftperm.yaml")
    for rel in ("app.yaml", "public_files/readme.md", "user_files/ds@openmined.org/out.json"):
        assert perms_for(rules, rel) == {"read"}, rel
    # the permission file itself and the app folder root are not writable by guests
    for rel in ("syftperm.yaml", "anything.txt", "private/data.csv"):
        assert not perms_for(rules, rel) & {"write", "create", "admin"}, rel


def test_flwr_rpc_writable_rest_not(datasite):
    rules = load_rules(datasite / "app_data" / "flwr" / "syftperm.yaml")
    assert {"read", "create", "write"} <= perms_for(rules, "fed-app-123/rpc/messages/ds@openmined.org/m.request")
    assert not perms_for(rules, "fed-app-123/rpc/messages/ds@openmined.org/m.request", user="mallory@evil.org")
    assert not perms_for(rules, "fed-app-123/rpc/messages/m.request")
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
