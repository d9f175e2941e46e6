"""The compiled hot path (users/accel.py, scripts/build-accel) on real sockets: a real Cython build of the five hot
modules, then (1) the chat tests, unit and real-socket, run again on it — the compiled leg: the same behaviour from
the same source — and (2) a Locust run of ChatUser against the bench server that logs the build it uses and measures
every reply. Needs Cython (requirements-dev.txt) and a C compiler with the Python headers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.common import ROOT, BenchServer, run_locust
from users import accel

CHAT_TESTS = [
    "tests/unit/test_chat_codec.py", "tests/unit/test_sample_sink.py", "tests/unit/test_timeline.py",
    "tests/unit/test_timeline_fuzz.py", "tests/unit/test_ws_deflate.py", "tests/integration/test_chat_reconnect.py",
    "tests/integration/test_chat_sample_sink.py", "tests/integration/test_chat_timing.py",
    "tests/integration/test_session_park.py", "tests/integration/test_chat_bad_input.py",
    "tests/integration/test_chat_wait_guard.py",
]


@pytest.fixture(scope="module")
def build(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = accel.missing_tools()
    if why:
        pytest.fail(f"the compiled hot path cannot be built on this machine: {why}")
    out = tmp_path_factory.mktemp("accel") / "build"
    built = accel.build(out)
    assert sorted(built) == sorted(accel.HOT_MODULES)
    return out


@pytest.mark.timeout(600)
def test_the_chat_tests_pass_on_the_compiled_build(build: Path, tmp_path: Path) -> None:
    env = {**os.environ, "WS_SUITE_TEST_COMPILED": "1", "WS_SUITE_ACCEL_DIR": str(build)}
    r = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", f"--basetemp={tmp_path / 'leg'}",
                        *CHAT_TESTS], cwd=ROOT,
                       env=env, capture_output=True, text=True, timeout=540)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert f"compiled hot path: 5 modules from {build}" in out, out[:3000]
    assert " passed" in out and " failed" not in out, out[-2000:]


@pytest.mark.timeout(180)
def test_a_locust_run_uses_the_build_and_measures_every_reply(build: Path) -> None:
    with BenchServer(max_seconds=120) as srv:
        run = run_locust(["bench/chat_bench.py"], srv.url, 20, classes=["BenchChatUser"], warmup=1.0, window=3.0,
                         env={"BENCH_SLA": "1", "WS_SUITE_ACCEL": "on", "WS_SUITE_ACCEL_DIR": str(build)})
    assert f"chat hot path: compiled (5 modules: {', '.join(sorted(accel.HOT_MODULES))})" in run.log_head, \
        run.log_head
    meter = run.load[0]
    assert meter["count"] > 100 and meter["failures"] == 0, meter
    assert run.exit_codes == [0], run.log_tail[-3000:]
