"""The DS's session with each owner: the dataset it publishes."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from federation.scientist.errors import WorkflowError
from federation.scientist.session import OwnerSession as Owner
from federation.scientist.session import dataset_check

A = "do1@openmined.org"

# ---------------------------------------------------------------- the dataset an owner publishes


def owner_with(names: list[str]) -> Owner:
    datasets = SimpleNamespace(get_all=lambda: [SimpleNamespace(name=n) for n in names])
    return Owner(A, session=SimpleNamespace(dataset=datasets))


def test_the_named_dataset_is_found():
    assert dataset_check("pima", owner_with(["cancer", "pima"]))() is True


def test_nothing_published_yet_keeps_waiting():
    check = dataset_check("pima", owner_with([]), grace=0)
    assert check() is False and check() is False


def test_other_datasets_but_never_ours_is_a_clear_error_after_the_grace():
    check = dataset_check("pima", owner_with(["cancer", "asthma"]), grace=0.05)
    assert check() is False  # could still be syncing
    time.sleep(0.1)
    with pytest.raises(WorkflowError, match=f"{A} has no dataset 'pima'; it publishes: asthma, cancer"):
        check()


