"""What may run here: the policy's decisions."""

from __future__ import annotations

import pytest

from federation.common.settings import Policy
from federation.owner.policy import OTHERWISE, Decision, Verdict, decide
from tests.unit.fakes import CODE, DS, STRANGER

ALLOW = ["ds@openmined.org", "Second.Scientist@Example.org"]
HASH = "ab" * 32  # a code hash; no hashes are pinned here, so any code counts
POLICY = Policy(mode="auto", allowlist=tuple(ALLOW))

# =========================================================================== policy


H1, H2, H3 = "1" * 64, "2" * 64, "3" * 64


@pytest.mark.parametrize("submitter", [DS, "DS@OPENMINED.ORG", STRANGER, None])
@pytest.mark.parametrize("pinned", [(), (CODE,)])
def test_manual_mode_leaves_every_job_pending(submitter, pinned):
    for otherwise in ("pending", "reject"):
        d = decide(Policy("manual", (DS,), pinned, otherwise), submitter, CODE)
        assert d.verdict is Verdict.HOLD and d.approve is False
        assert "manual" in d.reason


def test_auto_allowlisted_without_pins_is_approved():
    d = decide(Policy("auto", (DS,)), DS, CODE)
    assert d.verdict is Verdict.APPROVE and d.approve is True
    assert DS in d.reason


@pytest.mark.parametrize("otherwise", ["pending", "reject"])
def test_auto_allowlisted_with_matching_pin_is_approved(otherwise):
    d = decide(Policy("auto", (DS,), (H1, CODE, H2), otherwise), DS, CODE)
    assert d.verdict is Verdict.APPROVE and d.approve is True
    assert CODE[:12] in d.reason and "hash" in d.reason


@pytest.mark.parametrize("otherwise", ["pending", "reject"])
def test_auto_allowlisted_with_other_pins_is_not_approved(otherwise):
    d = decide(Policy("auto", (DS,), (H1, H2), otherwise), DS, CODE)
    assert d.verdict is OTHERWISE[otherwise] and d.approve is False
    assert CODE[:12] in d.reason and "hash" in d.reason and "not" in d.reason


@pytest.mark.parametrize("otherwise", ["pending", "reject"])
@pytest.mark.parametrize("pinned", [(), (CODE,)])
def test_auto_stranger_is_not_approved_even_with_a_pinned_hash(otherwise, pinned):
    d = decide(Policy("auto", (DS,), pinned, otherwise), STRANGER, CODE)
    assert d.verdict is OTHERWISE[otherwise] and d.approve is False
    assert STRANGER in d.reason and "not on the allowlist" in d.reason


@pytest.mark.parametrize("allowed,submitter", [
    ("DS@OpenMined.ORG", "ds@openmined.org"), ("ds@openmined.org", "Ds@OpenMined.Org"),
])
def test_allowlist_is_case_insensitive(allowed, submitter):
    assert decide(Policy("auto", (allowed,), (CODE,)), submitter, CODE).approve is True


@pytest.mark.parametrize("kwargs,bad", [
    ({"mode": "bogus"}, "bogus"), ({"mode": "Auto"}, "Auto"), ({"mode": ""}, "''"),
    ({"otherwise": "approve"}, "approve"), ({"otherwise": "bogus"}, "bogus"), ({"otherwise": ""}, "''"),
])
def test_policy_refuses_bad_values(kwargs, bad):
    with pytest.raises(ValueError) as info:
        Policy(**kwargs)
    assert bad in str(info.value)


# --------------------------------------------------------------------------- policy


@pytest.mark.parametrize("submitter", [
    "ds@openmined.org", "DS@OpenMined.org", "second.scientist@example.org", "SECOND.SCIENTIST@EXAMPLE.ORG",
])
def test_allowlisted_submitter_is_approved_case_insensitively(submitter):
    d = decide(POLICY, submitter, HASH)
    assert isinstance(d, Decision)
    assert d.approve is True
    assert d.verdict is Verdict.APPROVE
    assert submitter in d.reason
    assert "allowlist" in d.reason


@pytest.mark.parametrize("submitter", [
    "mallory@openmined.org", "ds@openmined.org.evil.com", "ds@openmined", "x-ds@openmined.org", "",
])
def test_other_submitters_are_not_approved(submitter):
    d = decide(POLICY, submitter, HASH)
    assert d.approve is False
    assert d.verdict is Verdict.HOLD  # left for a person: the default for jobs auto mode does not approve
    assert (submitter or "(unknown)") in d.reason
    assert "not on the allowlist" in d.reason


def test_unknown_submitter_is_not_approved():
    d = decide(POLICY, None, HASH)
    assert d.approve is False
    assert d.verdict is Verdict.HOLD
    assert "(unknown)" in d.reason


def test_empty_allowlist_approves_nobody():
    d = decide(Policy(mode="auto", allowlist=()), "ds@openmined.org", HASH)
    assert d.approve is False
    assert d.verdict is Verdict.HOLD


def test_decide_does_not_modify_the_allowlist():
    allow = list(ALLOW)
    policy = Policy(mode="auto", allowlist=allow)  # even a list given by a caller is left alone
    assert decide(policy, "DS@OPENMINED.ORG", HASH).approve is True
    assert allow == ALLOW
    assert policy == Policy(mode="auto", allowlist=list(ALLOW))




def test_a_hash_pinned_in_capitals_matches_the_lowercase_code_hash(monkeypatch):
    monkeypatch.setenv("SYFTBOX_EMAIL", "do1@openmined.org")
    monkeypatch.setenv("APPROVE_JOBS_FROM", DS)
    monkeypatch.setenv("APPROVED_CODE_HASHES", CODE.upper())
    monkeypatch.setenv("UNAPPROVED_JOBS", "reject")
    from federation.common.settings import OwnerSettings

    policy = OwnerSettings.from_env().policy
    assert decide(policy, DS, CODE).approve is True
    assert decide(policy, DS, "3" * 64).verdict is Verdict.REJECT
