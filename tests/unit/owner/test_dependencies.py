"""A job's declared packages against the owner's environment."""

from __future__ import annotations

from pathlib import Path

from federation.owner.dependencies import check, check_code, declared

HERE = {"numpy": "2.3.3", "flwr": "1.21.0", "pandas": "2.3.2", "matplotlib": "3.10.6"}


def test_installed_in_range_is_fine_and_extras_and_names_are_normalised():
    result = check(["flwr[simulation]==1.21.0", "NumPy>=2", "matplotlib"], HERE.get)
    assert (result.missing, result.differ, result.invalid, result.note) == ([], [], [], "")


def test_a_package_the_owner_lacks_is_missing_and_a_version_outside_the_range_differs():
    result = check(["lifelines>=0.27", "numpy==2.2.0", "pandas<3"], HERE.get)
    assert result.missing == ["lifelines>=0.27"]
    assert result.differ == ["numpy==2.2.0 wanted, 2.3.3 here"]
    assert result.note == ("not installed on this datasite: lifelines>=0.27 (an owner installs nothing for a job); "
                           "versions differ: numpy==2.2.0 wanted, 2.3.3 here")


def test_markers_for_another_platform_are_not_asked_and_junk_is_named():
    result = check(['pywin32>=300; sys_platform == "win32"', "not a requirement!!"], HERE.get)
    assert result.missing == [] and result.invalid == ["not a requirement!!"]


def test_the_declared_dependencies_of_an_app_folder(tmp_path: Path):
    assert declared(tmp_path) == []  # no pyproject.toml: the runner says so itself
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "x"\ndependencies = ["numpy>=2", "nopkg-xyz"]\n')
    assert declared(tmp_path) == ["numpy>=2", "nopkg-xyz"]
    assert check_code(tmp_path).missing == ["nopkg-xyz"]  # against this environment, which has numpy
