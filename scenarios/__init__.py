"""Named load scenarios: the seed test plan as runnable Locust scenarios (``--scenario NAME``).

The catalogue (:mod:`scenarios.registry`) and the shapes (:mod:`scenarios.shapes`) are plain data and pure logic;
:mod:`scenarios.plugin` (imported by ``locustfile.py``) adds the ``--scenario*`` options, activates a scenario and
schedules its faults.
"""

from __future__ import annotations

from scenarios.registry import (
    SCENARIOS,
    FaultSpec,
    Scenario,
    Threshold,
    UserMix,
    get_scenario,
    scenario_names,
)

__all__ = ["SCENARIOS", "FaultSpec", "Scenario", "Threshold", "UserMix", "get_scenario", "scenario_names"]
