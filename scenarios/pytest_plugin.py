"""The seed test plan as pytest tests: one test per seed test, each a short Locust run of its scenario.

Enabled with ``--seed-host URL`` (or ``--seed-catalogue``, the host then from ``LOCUST_HOST``); without either the
plugin adds nothing, so installing the suite (its ``pytest11`` entry point) changes no other pytest run. Load it
from a checkout with ``-p scenarios.pytest_plugin``::

    pytest -p scenarios.pytest_plugin --seed-host ws://127.0.0.1:8765/ws -k phase1 --junitxml seed.xml
    pytest -p scenarios.pytest_plugin --seed-host wss://staging.example/ws --seed-profile staging \\
        --seed-duration 2m --seed-option users_file=users.csv

Every seed test of :data:`scenarios.registry.SEED_PLAN` becomes a test named as in the seed plan, with the plan's file
as its node id (``tests/integration/infrastructure/test_redis_timeout_validation.py::test_redis_...``, so the JUnit
classname is the plan's module) and its phase as a marker and keyword (``phase1`` … ``phase5``, ``-k phase1`` or
``-m phase2``). The test runs ``locust --headless --scenario NAME`` in a subprocess (``--seed-duration`` →
``--scenario-duration``, ``--seed-profile`` → ``--sla-profile``, each ``--seed-option KEY=VALUE`` → ``--KEY VALUE``)
and asserts the verdict: pass expected (a healthy system); a failure names the failing thresholds. The SLA JSON report
is attached to the test (``user_properties``: JUnit ``<property>`` elements, the whole report as ``sla_report``), so
``--junitxml`` writes one JUnit file for all phases. Logs and reports land in ``--seed-report-dir`` (default: a new
temporary directory, named at the start).

When the run is given no paths (pytest's ``testpaths`` or the current directory), only the seed tests are
collected; with paths, those are collected too. Bad plugin options are a pytest usage error naming the option.

The catalogue is imported only when the plugin is enabled: it imports Locust, which monkey-patches the process
(gevent), and a pytest run that does not ask for the seed tests must not get that from an installed plugin.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from config.durations import DURATION_FORMS, parse_duration
from config.errors import SuiteError
from config.locustfile_path import LOCUSTFILE

if TYPE_CHECKING:
    from scenarios.registry import SeedTest

__all__ = ["SeedItem", "SeedSettings"]

_HOST_SCHEMES = ("ws://", "wss://", "http://", "https://")


@dataclass
class SeedSettings:
    """The plugin's options, checked at configure time."""

    host: str
    duration: str = ""
    duration_s: float | None = None
    profile: str = ""
    options: list[str] = field(default_factory=list)
    report_dir: Path = Path(".")


_SETTINGS = pytest.StashKey[SeedSettings]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("seed", "seed test plan: each seed test as a load scenario (ws-agent-loadtest)")
    group.addoption("--seed-host", default="", metavar="URL",
                    help="Run the seed tests against this chat WebSocket URL (ws:// or wss://); enables the plugin.")
    group.addoption("--seed-catalogue", action="store_true", default=False,
                    help="Run the seed tests; the host is --seed-host, else the LOCUST_HOST variable.")
    group.addoption("--seed-duration", default="", metavar="T",
                    help=f"Each scenario's wall time (--scenario-duration): {DURATION_FORMS}. Default: its own.")
    group.addoption("--seed-profile", default="", metavar="NAME", help="SLA profile of every run (--sla-profile).")
    group.addoption("--seed-option", action="append", default=[], metavar="KEY=VALUE",
                    help="Pass --KEY VALUE to every Locust run (KEY alone: a flag); repeatable.")
    group.addoption("--seed-report-dir", default="", metavar="DIR",
                    help="Where each run's log and SLA report go (default: a new temporary directory).")


def _registry() -> Any:
    """:mod:`scenarios.registry`, imported on first use (it imports Locust: gevent's note on patching ``ssl`` late
    is expected here and kept off the terminal)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Monkey-patching ssl after ssl has already been imported")
        return importlib.import_module("scenarios.registry")


def _enabled(config: pytest.Config) -> bool:
    return bool(config.getoption("seed_host", "") or config.getoption("seed_catalogue", False))


def _settings(config: pytest.Config) -> SeedSettings:
    """The checked options; ``pytest.UsageError`` naming the option, the bad value and what to do."""
    host = (config.getoption("seed_host") or os.environ.get("LOCUST_HOST", "")).strip()
    if not host:
        raise pytest.UsageError("--seed-catalogue needs a host: give --seed-host ws://HOST:PORT/ws (or set LOCUST_HOST)")
    if not host.startswith(_HOST_SCHEMES):
        raise pytest.UsageError(f"--seed-host {host!r}: expected a ws://, wss://, http:// or https:// URL, "
                                "e.g. ws://127.0.0.1:8765/ws")
    duration = str(config.getoption("seed_duration") or "").strip()
    duration_s = None
    if duration:
        try:
            duration_s = parse_duration(duration)
        except ValueError:
            duration_s = 0.0
        if duration_s <= 0:
            raise pytest.UsageError(f"--seed-duration {duration!r}: expected a duration more than 0 s: {DURATION_FORMS}")
    from scenarios.seed_run import option_args

    try:
        options = option_args(config.getoption("seed_option") or [])
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    report_dir = str(config.getoption("seed_report_dir") or "")
    path = Path(report_dir) if report_dir else Path(tempfile.mkdtemp(prefix="seed-tests-"))
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise pytest.UsageError(f"--seed-report-dir {report_dir!r}: cannot create it ({exc}); give a writable "
                                "directory") from None
    return SeedSettings(host=host, duration=duration, duration_s=duration_s,
                        profile=str(config.getoption("seed_profile") or "").strip(), options=options,
                        report_dir=path.resolve())


def pytest_configure(config: pytest.Config) -> None:
    if not _enabled(config):
        return
    SEED_PHASES = _registry().SEED_PHASES
    for phase in SEED_PHASES:
        config.addinivalue_line("markers", f"phase{phase}: seed test plan phase {phase}")
    config.addinivalue_line("markers", "seed: a seed test plan test run as a load scenario")
    config.stash[_SETTINGS] = _settings(config)


def pytest_report_header(config: pytest.Config) -> str | None:
    settings = config.stash.get(_SETTINGS, None)
    if settings is None:
        return None
    return (f"seed tests: host {settings.host}, duration {settings.duration or 'each scenario’s own'}, "
            f"reports in {settings.report_dir}")


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """With the plugin on and no paths given, collect only the seed tests (not the directory's own tests)."""
    if _SETTINGS in config.stash and config.args_source != pytest.Config.ArgsSource.ARGS:
        return True
    return None


@pytest.hookimpl(tryfirst=True)  # before -k / -m deselect
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    if _SETTINGS not in config.stash:
        return
    seeds = [SeedItem.from_parent(session, name=seed.name, nodeid=f"{seed.file}::{seed.name}", seed=seed)
             for seed in _registry().SEED_PLAN]
    # reported as collected (the terminal's "collected N items", -k's "N selected" count them)
    config.hook.pytest_collectreport(report=pytest.CollectReport("", "passed", None, list(seeds)))
    items[:0] = seeds


class SeedVerdictError(SuiteError, AssertionError):
    """The scenario's verdict was not pass (the text names the failing thresholds)."""


class SeedItem(pytest.Item):
    """One seed test: its scenario as a Locust subprocess, the verdict asserted."""

    def __init__(self, *, seed: SeedTest, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        registry = _registry()
        self.seed = seed
        self.scenario = registry.get_scenario(registry.seed_test_index()[seed.name])
        self.add_marker("seed")
        self.add_marker(f"phase{seed.phase}")
        self.extra_keyword_matches.add(self.scenario.name)

    def runtest(self) -> None:
        from scenarios.seed_run import deadline_s, locust_argv, report_properties, verdict_problem

        settings = self.config.stash[_SETTINGS]
        out = settings.report_dir / self.seed.name
        out.mkdir(parents=True, exist_ok=True)
        report_path, log_path = out / "sla.json", out / "locust.log"
        report_path.unlink(missing_ok=True)
        argv = locust_argv(python=sys.executable, locustfile=str(LOCUSTFILE), host=settings.host,
                           scenario=self.scenario.name, report_json=str(report_path), duration=settings.duration,
                           profile=settings.profile, options=settings.options)
        returncode: int | None
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, cwd=self.config.invocation_params.dir, stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            try:
                returncode = proc.wait(timeout=deadline_s(self.scenario, settings.duration_s))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
                returncode = None
        try:
            report: dict[str, Any] | None = json.loads(report_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            report = None
        self.user_properties.extend(report_properties(report, scenario=self.scenario.name, phase=self.seed.phase,
                                                      returncode=returncode, report_path=str(report_path)))
        problem = verdict_problem(report, returncode, scenario=self.scenario.name, log=str(log_path))
        if problem is not None:
            raise SeedVerdictError(problem)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SeedVerdictError):
            return str(excinfo.value)
        return str(super().repr_failure(excinfo, style=style))

    def reportinfo(self) -> tuple[Path, int | None, str]:
        return self.path, None, f"{self.seed.file}::{self.seed.name} (scenario {self.scenario.name})"
