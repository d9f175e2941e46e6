"""Unit tests of the packaging metadata: pyproject.toml's dependencies and extras agree with the pinned
requirements files, and every top-level package of the repository is installed by ``pip install .``.

The install itself (a fresh venv, ``locust -f <installed locustfile>`` from another directory) is proven in
tests/integration/test_install.py.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
NOT_INSTALLED = {"tests", "bench", "scripts", "docs"}
"""Top-level folders that stay in the checkout."""
PINS_OF = {"generator": "requirements-generator.txt", "backend": "requirements-backend.txt", "dev": "requirements-dev.txt"}


def pins(name: str) -> dict[str, Requirement]:
    """The ``name==version`` lines of a requirements file, by canonical package name."""
    out = {}
    for line in (ROOT / name).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            req = Requirement(line)
            out[canonicalize_name(req.name)] = req
    return out


def declared(group: str) -> dict[str, Requirement]:
    """pyproject's requirements of ``group`` (``generator`` = [project] dependencies), by canonical name."""
    project = PYPROJECT["project"]
    items = project["dependencies"] if group == "generator" else project["optional-dependencies"][group]
    reqs = (Requirement(item) for item in items)
    return {canonicalize_name(r.name): r for r in reqs if canonicalize_name(r.name) != canonicalize_name(project["name"])}


def test_requirements_txt_is_the_three_pinned_files() -> None:
    lines = [ln.strip() for ln in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()]
    assert [ln for ln in lines if ln and not ln.startswith("#")] == [f"-r {f}" for f in PINS_OF.values()]


@pytest.mark.parametrize("group", list(PINS_OF))
def test_every_pin_is_declared_in_pyproject_and_satisfies_its_range(group: str) -> None:
    pinned, wanted = pins(PINS_OF[group]), declared(group)
    assert set(pinned) == set(wanted), f"{PINS_OF[group]} and pyproject's {group} name different packages"
    for name, pin in pinned.items():
        (spec,) = pin.specifier
        assert spec.operator == "==", f"{PINS_OF[group]}: {pin} is not pinned with =="
        assert wanted[name].specifier.contains(spec.version), f"pin {pin} is outside pyproject's {wanted[name]}"
        assert pin.extras == wanted[name].extras, f"{pin} and {wanted[name]} ask for different extras"


def test_a_package_is_pinned_once() -> None:
    names = [n for f in PINS_OF.values() for n in pins(f)]
    assert len(names) == len(set(names)), names


def test_dev_extra_pulls_the_backend_the_tests_start() -> None:
    assert "ws-agent-loadtest[backend]" in PYPROJECT["project"]["optional-dependencies"]["dev"]


def test_every_top_level_package_of_the_checkout_is_installed() -> None:
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").is_file()} - NOT_INSTALLED
    include = set(PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"])
    missing = sorted(p for p in packages if p not in include or f"{p}.*" not in include)
    assert not missing, f"add {missing} to [tool.setuptools.packages.find] include in pyproject.toml"
    assert PYPROJECT["tool"]["setuptools"]["py-modules"] == ["locustfile"]


def test_profiles_are_package_data_and_the_locustfile_command_exists() -> None:
    assert list((ROOT / "config").glob("*.toml")), "config/ holds the SLA profiles"
    assert PYPROJECT["tool"]["setuptools"]["package-data"]["config"] == ["*.toml"]
    module, _, func = PYPROJECT["project"]["scripts"]["ws-agent-locustfile"].partition(":")
    assert re.fullmatch(r"[a-z_.]+", module) and (ROOT / (module.replace(".", "/") + ".py")).is_file()
    from config.locustfile_path import LOCUSTFILE, main

    assert func == main.__name__ and LOCUSTFILE == ROOT / "locustfile.py"
