"""The compiled-hot-path benchmark's pure parts: its module paths and its rows."""

from __future__ import annotations

from bench import compiled_ab
from bench.common import ROOT


def test_every_hot_module_exists_so_a_rename_breaks_the_experiment_here() -> None:
    for module in compiled_ab.HOT_MODULES:
        assert (ROOT / module).is_file(), module
    assert compiled_ab.module_name("sla_checks/engine.py") == "sla_checks.engine"
    assert [compiled_ab.module_name(m) for m in compiled_ab.HOT_MODULES] == list(compiled_ab.accel.HOT_MODULES)


def test_rows_give_the_medians_the_change_and_the_peer() -> None:
    res = {"modules": list(compiled_ab.HOT_MODULES),
           "compiled": [{"cpu_us_per_rt": 60.0}, {"cpu_us_per_rt": 70.0}, {"cpu_us_per_rt": 66.0}],
           "pure": [{"cpu_us_per_rt": 80.0}, {"cpu_us_per_rt": 90.0}, {"cpu_us_per_rt": 82.0}],
           "compiled_median": 66.0, "pure_median": 82.0,
           "artillery": {"status": "measured", "cpu_us_per_rt": 70.0, "runs": [75.0, 70.0, 64.0]}}
    rows = compiled_ab.rows(res)
    assert rows[0] == ("ChatUser, 5 modules compiled (Cython)", "median 66 µs CPU/rt (runs 60, 70, 66)", "")
    assert rows[2][1] == "-20 % CPU per round trip"
    assert rows[3] == ("peer: Artillery ws engine (interleaved)", "median 70 µs CPU/rt (runs 75, 70, 64)", "")
    assert rows[4] == ("pure Python / Artillery", "1.17x", "≤ 1: MISSED")
    assert rows[5] == ("compiled / Artillery", "0.94x", "≤ 1: MET")
    res["artillery"] = {"status": "skipped", "reason": "npm is not installed"}
    assert "npm is not installed" in compiled_ab.rows(res)[3][1]
