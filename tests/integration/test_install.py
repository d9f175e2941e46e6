"""``pip install .`` gives a load generator that runs from any directory.

A plain venv (no system site-packages, so nothing the checkout's .venv has can hide a missing dependency) gets the
suite with ``pip install --no-deps`` of a copy of the checkout, then only the load generator's pins
(requirements-generator.txt, from pip's configured index or PyPI); ``locust -f <the installed locustfile>`` then
lists the scenarios and the options from a directory that holds no part of the suite.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scenarios.registry import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]
COPY_IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "__pycache__", ".run", "artifacts", "build", "*.egg-info", ".pytest_cache", ".ruff_cache",
    "tests", "bench",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _run(argv: list[str], *, cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path | dict[str, str]]:
    """A fresh venv with the suite and the load generator's pinned dependencies only."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=COPY_IGNORE)  # builds leave build/ and *.egg-info: not in the checkout
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME") and not k.startswith("LOCUST_")}
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], cwd=tmp, env=env, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    _run([*pip, "install", "--no-deps", str(src)], cwd=tmp, env=env, timeout=300)
    _run([*pip, "install", "-r", str(src / "requirements-generator.txt")], cwd=tmp, env=env, timeout=600)
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    return {"venv": venv, "cwd": elsewhere, "env": env}


def test_installed_locustfile_command_points_into_the_venv(installed: dict) -> None:
    venv, cwd, env = installed["venv"], installed["cwd"], installed["env"]
    out = _run([str(venv / "bin" / "ws-agent-locustfile")], cwd=cwd, env=env, timeout=60).stdout.strip()
    locustfile = Path(out)
    assert locustfile.name == "locustfile.py" and locustfile.is_file(), out
    assert venv.resolve() in locustfile.resolve().parents, f"{out} is not the installed copy"
    where = _run([str(venv / "bin" / "python"), "-c", "import config, sla_checks; print(config.__file__)"],
                 cwd=cwd, env=env, timeout=60).stdout
    assert venv.resolve() in Path(where.strip()).resolve().parents, where
    profiles = sorted(p.name for p in (Path(where.strip()).parent).glob("*.toml"))
    assert profiles == sorted(p.name for p in (ROOT / "config").glob("*.toml")), profiles


def test_installed_locustfile_lists_scenarios_from_another_directory(installed: dict) -> None:
    """The generator-only venv has none of the reference backend's packages, and the suite still loads: the load
    generator does not need them."""
    venv, cwd, env = installed["venv"], installed["cwd"], installed["env"]
    probe = subprocess.run([str(venv / "bin" / "python"), "-c", "import starlette"], cwd=cwd, env=env,
                           capture_output=True, text=True, timeout=60, check=False)
    assert probe.returncode != 0, "the generator-only venv has starlette (a backend dependency)"
    locustfile = _run([str(venv / "bin" / "ws-agent-locustfile")], cwd=cwd, env=env, timeout=60).stdout.strip()
    out = _run([str(venv / "bin" / "locust"), "-f", locustfile, "--list-scenarios"], cwd=cwd, env=env, timeout=120)
    assert SCENARIOS and all(name in out.stdout for name in SCENARIOS), out.stdout
    options = _run([str(venv / "bin" / "locust"), "-f", locustfile, "--list-options"], cwd=cwd, env=env, timeout=120)
    assert "--sla-profile" in options.stdout and "--ws-think-time" in options.stdout, options.stdout[-2000:]
