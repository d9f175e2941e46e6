"""Named load scenarios: the seed test plan as runnable Locust scenarios (``--scenario NAME``).

The catalogue (:mod:`scenarios.registry`) and the shapes (:mod:`scenarios.shapes`) are plain data and pure logic;
:mod:`scenarios.plugin` (imported by ``locustfile.py``) adds the ``--scenario*`` options, activates a scenario and
schedules its faults; :mod:`scenarios.pytest_plugin` runs the seed tests as pytest tests.

The names below load the catalogue on first use, not with the package: importing a module of the package (the
pytest plugin, which pytest may load into any run) does not import Locust, whose import monkey-patches the process.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["SCENARIOS", "FaultSpec", "Scenario", "Threshold", "UserMix", "get_scenario", "scenario_names"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("scenarios.registry"), name)
    raise AttributeError(f"module 'scenarios' has no attribute {name!r}")
