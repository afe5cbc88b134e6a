"""Settings: every variable read once, a missing or malformed one named."""

from __future__ import annotations

from pathlib import Path

import pytest

from federation.common.settings import (OwnerSettings, Party, Policy, ScientistSettings, SettingsError)
from tests.unit.fakes import CODE, DS

H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64

# =========================================================================== settings


def settings_error(fn) -> str:
    with pytest.raises(SettingsError) as info:
        fn()
    return str(info.value)


def test_owner_settings_from_env_valid(env, tmp_path):
    env(SYFTBOX_EMAIL=" do1@openmined.org ", APPROVE_JOBS_FROM=" ds@openmined.org , b@x.org ,",
        FEDERATION_HOME=str(tmp_path), DEMO_PARTITION="2/3", MOCK_ROWS="25", JOB_TIMEOUT="12.5",
        PIMA_CSV="/data/pima.csv", DATASETS_DIR="/data/mine", ALLOW_REAL_ROWS_IN_MOCK="true",
        STRICT_DEPENDENCIES="yes", SYFTBOX_SERVER_URL="http://server:9000", PIMA_URL="file:///x.csv")
    s = OwnerSettings.from_env()
    assert s.party == Party("do1@openmined.org", "http://server:9000", tmp_path)
    assert s.party.syftbox_dir == tmp_path / "SyftBox"
    assert s.party.config_path == tmp_path / "config.json"
    assert s.party.state_dir == tmp_path / "state"
    assert s.policy == Policy(mode="auto", allowlist=("ds@openmined.org", "b@x.org"), pinned_hashes=(),
                              otherwise="pending")
    assert s.demo_partition == (2, 3)
    assert s.mock_rows == 25 and isinstance(s.mock_rows, int)
    assert s.job_timeout == 12.5
    assert s.pima_csv == Path("/data/pima.csv")
    assert s.datasets_dir == Path("/data/mine")
    assert s.allow_real_mock_rows is True and s.strict_dependencies is True
    assert s.pima_url == "file:///x.csv"


def test_owner_settings_defaults(env, monkeypatch):
    monkeypatch.delenv("SYNCED_RETENTION", raising=False)  # the integration session sets it in this process
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org")
    s = OwnerSettings.from_env()
    assert s.demo_partition == (1, 1)
    assert s.policy == Policy(mode="auto", allowlist=("ds@openmined.org",), pinned_hashes=(), otherwise="pending")
    assert s.mock_rows == 40
    assert s.job_timeout == 600
    assert s.synced_retention == 900  # 15 min
    assert s.pima_csv is None
    assert s.datasets_dir == Path("/data/datasets")
    assert s.demo_dataset == "pima-indians-diabetes-database"
    assert s.allow_real_mock_rows is False and s.strict_dependencies is False
    assert s.party.server_url is None  # the kit's
    assert s.party.kit == Path("/run/federation/kit/kit.json")
    assert s.party.home == Path.home() / "federation"


def test_owner_settings_demo_off_and_bad_flags(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", DEMO_PARTITION="off")
    assert OwnerSettings.from_env().demo_partition is None
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", ALLOW_REAL_ROWS_IN_MOCK="maybe")
    msg = settings_error(OwnerSettings.from_env)
    assert "ALLOW_REAL_ROWS_IN_MOCK" in msg and "'maybe'" in msg


def test_scientist_settings_fed_app_named_and_mounted_must_agree(env):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org", FED_APP="examples/moments",
        FED_APP_MOUNTED="fed_app")
    msg = settings_error(ScientistSettings.from_env)
    assert "'examples/moments'" in msg and "'fed_app'" in msg and "scripts/up" in msg
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org", FED_APP="examples/moments/",
        FED_APP_MOUNTED="examples/moments", FED_APP_DIR="/app/study")
    assert ScientistSettings.from_env().fed_app == Path("/app/study")
    for outside in ("/srv/app", "../elsewhere", "examples/../../x"):
        env(FED_APP=outside, FED_APP_MOUNTED=outside)
        assert "inside the repository" in settings_error(ScientistSettings.from_env)


@pytest.mark.parametrize("missing", ["SYFTBOX_EMAIL", "APPROVE_JOBS_FROM"])
@pytest.mark.parametrize("how", ["unset", "blank"])
def test_owner_settings_missing_required(env, monkeypatch, missing, how):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org")
    if how == "unset":
        monkeypatch.delenv(missing)
    else:
        monkeypatch.setenv(missing, "   ")
    msg = settings_error(OwnerSettings.from_env)
    assert missing in msg and "required" in msg


def test_scientist_settings_missing_datasites(env):
    env(SYFTBOX_EMAIL="ds@openmined.org")
    msg = settings_error(ScientistSettings.from_env)
    assert "DATASITES" in msg


def test_scientist_settings_missing_email(env):
    env(DATASITES="do1@openmined.org")
    assert "SYFTBOX_EMAIL" in settings_error(ScientistSettings.from_env)


@pytest.mark.parametrize("bad", ["not-an-email", "a@b", "a b@c.org", "@x.org"])
def test_malformed_email_is_named(env, bad):
    env(SYFTBOX_EMAIL=bad, APPROVE_JOBS_FROM="ds@openmined.org")
    msg = settings_error(OwnerSettings.from_env)
    assert "SYFTBOX_EMAIL" in msg and repr(bad) in msg


def test_malformed_email_in_a_list_is_named(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org,oops")
    msg = settings_error(OwnerSettings.from_env)
    assert "APPROVE_JOBS_FROM" in msg and "'oops'" in msg

    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org;do2@openmined.org")
    msg = settings_error(ScientistSettings.from_env)
    assert "DATASITES" in msg


def test_list_of_only_commas_is_refused(env):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM=" , ,")
    msg = settings_error(OwnerSettings.from_env)
    assert "APPROVE_JOBS_FROM" in msg


@pytest.mark.parametrize("part", ["3/2", "x", "0/2", "1/0", "1-2", "2", "1/2/3", "-1/2"])
def test_demo_partition_rejected(env, part):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", DEMO_PARTITION=part)
    msg = settings_error(OwnerSettings.from_env)
    assert "DEMO_PARTITION" in msg and repr(part) in msg


@pytest.mark.parametrize("value", ["soon", "10s", "nan?"])
def test_owner_non_number_rejected(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", JOB_TIMEOUT=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "JOB_TIMEOUT" in msg and "not a number" in msg


@pytest.mark.parametrize("value", ["soon", "10s", "0.5", "0", "-3"])
def test_owner_mock_rows_must_be_a_whole_number(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", MOCK_ROWS=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "MOCK_ROWS" in msg and "not a whole number >= 1" in msg and repr(value) in msg


@pytest.mark.parametrize("value", ["0", "-5"])
def test_owner_timeout_must_be_positive(env, value):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", JOB_TIMEOUT=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "JOB_TIMEOUT" in msg and "> 0" in msg


@pytest.mark.parametrize("value, seconds", [("45", 45), ("90s", 90), ("15m", 900), ("1.5h", 5400),
                                            ("2d", 172800), (" 6H ", 21600)])
def test_owner_synced_retention_is_a_duration(env, value, seconds):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", SYNCED_RETENTION=value)
    assert OwnerSettings.from_env().synced_retention == seconds


@pytest.mark.parametrize("value, says", [("soon", "not a duration"), ("15 minutes", "not a duration"),
                                         ("-5m", "not a duration"), ("10s", "shorter than the minimum of 30 s"),
                                         ("0", "shorter than the minimum")])
def test_owner_synced_retention_rejects_what_is_no_duration_or_too_short(env, value, says):
    env(SYFTBOX_EMAIL="do1@openmined.org", APPROVE_JOBS_FROM="ds@openmined.org", SYNCED_RETENTION=value)
    msg = settings_error(OwnerSettings.from_env)
    assert "SYNCED_RETENTION" in msg and says in msg


@pytest.mark.parametrize("name", ["WAIT_TIMEOUT", "ROUND_TIMEOUT"])
def test_scientist_non_number_timeout_rejected(env, name):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org", **{name: "later"})
    msg = settings_error(ScientistSettings.from_env)
    assert name in msg and "'later'" in msg


def test_scientist_settings_valid(env, tmp_path):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org, do2@openmined.org",
        FEDERATION_HOME=str(tmp_path / "home"), FED_APP_DIR=str(tmp_path / "app"),
        RESULTS_DIR=str(tmp_path / "res"), WAIT_TIMEOUT="30", ROUND_TIMEOUT="7.5")
    s = ScientistSettings.from_env()
    assert s.party.email == "ds@openmined.org"
    assert s.party.home == tmp_path / "home"
    assert s.datasites == ["do1@openmined.org", "do2@openmined.org"]
    assert s.fed_app == tmp_path / "app"
    assert s.results_dir == tmp_path / "res"
    assert s.wait_timeout == 30.0 and s.round_timeout == 7.5
    assert s.dataset == "pima-indians-diabetes-database"
    assert s.min_replies == 2  # by default every owner must reply


@pytest.mark.parametrize("value, words", [("3", "DATASITES names only 2"), ("0", "whole number >= 1"),
                                          ("two", "whole number >= 1")])
def test_scientist_min_replies_must_fit_the_owners(env, value, words):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org,do2@openmined.org", MIN_REPLIES=value)
    msg = settings_error(ScientistSettings.from_env)
    assert "MIN_REPLIES" in msg and words in msg


def test_scientist_owner_named_twice_is_refused(env):
    env(SYFTBOX_EMAIL="ds@openmined.org", DATASITES="do1@openmined.org,DO1@openmined.org")
    assert "names an owner twice" in settings_error(ScientistSettings.from_env)


# =========================================================================== settings


@pytest.fixture
def owner_env(env):
    env(SYFTBOX_EMAIL="do1@openmined.org")
    return env


def owner_settings_error() -> str:
    return settings_error(OwnerSettings.from_env)


def test_manual_mode_needs_no_allowlist(owner_env):
    owner_env(APPROVAL="manual")
    p = OwnerSettings.from_env().policy
    assert p.mode == "manual" and p.allowlist == () and p.pinned_hashes == () and p.otherwise == "pending"


def test_manual_mode_keeps_a_given_allowlist(owner_env):
    owner_env(APPROVAL="manual", APPROVE_JOBS_FROM="ds@openmined.org, b@x.org")
    p = OwnerSettings.from_env().policy
    assert p.mode == "manual" and p.allowlist == ("ds@openmined.org", "b@x.org")


@pytest.mark.parametrize("approval", [None, "auto"])
def test_auto_mode_needs_an_allowlist(owner_env, approval):
    if approval:
        owner_env(APPROVAL=approval)
    msg = owner_settings_error()
    assert "APPROVE_JOBS_FROM" in msg and "required" in msg


def test_bogus_approval_mode_is_named(owner_env):
    owner_env(APPROVAL="bogus", APPROVE_JOBS_FROM=DS)
    msg = owner_settings_error()
    assert "APPROVAL" in msg and "'bogus'" in msg


@pytest.mark.parametrize("value,bad", [
    ("xyz", "xyz"),
    ("ab" * 31, "ab" * 31),  # 62 hex digits
    ("ab" * 33, "ab" * 33),  # 66
    ("g" * 64, "g" * 64),
    (f"{H1}, {'0x' + H2[2:]}", "0x" + H2[2:]),
])
def test_bad_code_hash_is_named(owner_env, value, bad):
    owner_env(APPROVE_JOBS_FROM=DS, APPROVED_CODE_HASHES=value)
    msg = owner_settings_error()
    assert "APPROVED_CODE_HASHES" in msg and bad in msg


def test_bogus_unapproved_jobs_is_named(owner_env):
    owner_env(APPROVE_JOBS_FROM=DS, UNAPPROVED_JOBS="bogus")
    msg = owner_settings_error()
    assert "UNAPPROVED_JOBS" in msg and "'bogus'" in msg


def test_valid_policy_settings_land_in_the_policy(owner_env):
    upper = CODE.upper()
    owner_env(APPROVAL="auto", APPROVE_JOBS_FROM="ds@openmined.org,b@x.org", APPROVED_CODE_HASHES=f" {H1} ,{upper},",
        UNAPPROVED_JOBS="reject")
    p = OwnerSettings.from_env().policy
    assert p == Policy(mode="auto", allowlist=("ds@openmined.org", "b@x.org"), pinned_hashes=(H1, CODE),
                       otherwise="reject")
    # a hash pinned in capitals is kept as code_hash's lowercase hex (owner/test_policy: it matches)
    assert CODE in p.pinned_hashes and H3 not in p.pinned_hashes




def test_server_settings_serve_tls_only(env, monkeypatch, tmp_path):
    from federation.common.settings import ServerSettings, SettingsError

    s = ServerSettings.from_env()
    assert s.public_url == "https://syftbox:5001" and s.own_tls is None and s.names == ()
    monkeypatch.setenv("SYNC_SERVER_URL", "http://syftbox:5001")
    with pytest.raises(SettingsError, match="SYNC_SERVER_URL.*not https"):
        ServerSettings.from_env()
    monkeypatch.delenv("SYNC_SERVER_URL")
    monkeypatch.setenv("TLS_CERT_FILE", str(tmp_path / "cert.pem"))
    with pytest.raises(SettingsError, match="go together"):
        ServerSettings.from_env()
    for name in ("TLS_KEY_FILE", "TLS_CA_FILE"):
        monkeypatch.setenv(name, str(tmp_path / name))
    with pytest.raises(SettingsError, match="TLS_CERT_FILE: .* is not a file"):
        ServerSettings.from_env()
