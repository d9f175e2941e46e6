"""The compiled-hot-path experiment's pure parts: what it copies, what it says is missing, its rows."""

from __future__ import annotations

import importlib.util
import shutil
import sysconfig

import pytest

from bench import compiled_ab
from bench.common import ROOT


def test_every_hot_module_exists_so_a_rename_breaks_the_experiment_here() -> None:
    for module in compiled_ab.HOT_MODULES:
        assert (ROOT / module).is_file(), module


def test_the_copy_leaves_out_caches_environments_results_and_build_leftovers() -> None:
    names = [".git", ".venv", "node_modules", "results", "__pycache__", "ws_session.cpython-311-x86_64-linux-gnu.so",
             "timeline.c", "users", "tasks", "locustfile.py", "chat_bench.py"]
    assert compiled_ab.ignore_for_copy("/x", names) == {
        ".git", ".venv", "node_modules", "results", "__pycache__", "ws_session.cpython-311-x86_64-linux-gnu.so",
        "timeline.c"}


@pytest.mark.parametrize("what", ["cython", "compiler", "headers"])
def test_a_missing_tool_is_named_with_what_to_do(monkeypatch: pytest.MonkeyPatch, what: str) -> None:
    find_spec, which = importlib.util.find_spec, shutil.which
    monkeypatch.setattr(compiled_ab.importlib.util, "find_spec",
                        lambda name: None if (what == "cython" and name == "Cython") else find_spec(name) or object())
    monkeypatch.setattr(compiled_ab.shutil, "which", lambda cmd: None if what == "compiler" else which(cmd) or cmd)
    paths = dict(sysconfig.get_paths())
    if what == "headers":
        paths["include"] = "/nonexistent/include"
    else:
        paths["include"] = str(ROOT)  # any directory with a file called Python.h would do: fake one below
    monkeypatch.setattr(compiled_ab.sysconfig, "get_paths", lambda: paths)
    monkeypatch.setattr(compiled_ab.Path, "exists", lambda self: what != "headers")
    why = compiled_ab.missing_tools()
    assert why is not None
    expected = {"cython": "pip install cython", "compiler": "install gcc", "headers": "python3-dev"}[what]
    assert expected in why, why


def test_rows_give_the_medians_the_change_and_the_peer() -> None:
    res = {"modules": list(compiled_ab.HOT_MODULES), "compiled": [{"cpu_us_per_rt": 60.0}, {"cpu_us_per_rt": 70.0}, {"cpu_us_per_rt": 66.0}],
           "pure": [{"cpu_us_per_rt": 80.0}, {"cpu_us_per_rt": 90.0}, {"cpu_us_per_rt": 82.0}],
           "compiled_median": 66.0, "pure_median": 82.0,
           "artillery": {"status": "measured", "cpu_us_per_rt": 55.0}}
    rows = compiled_ab.rows(res)
    assert rows[0][1] == "median 66 µs CPU/rt (runs 60, 70, 66)"
    assert rows[2][1] == "-20 % CPU per round trip"
    assert rows[3] == ("peer: Artillery ws engine (same sitting)", "55 µs CPU/rt", "compiled ≤ it: MISSED")
    res["artillery"] = {"status": "skipped", "reason": "npm is not installed"}
    assert rows != compiled_ab.rows(res) and "npm is not installed" in compiled_ab.rows(res)[3][1]
