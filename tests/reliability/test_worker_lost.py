"""A distributed run (``--master --expect-workers 2`` + 2 ``--worker`` processes, chat users against the reference
backend) where one worker is SIGKILLed mid-run: the master reports the worker missing, the other worker goes on, the
run still stops at ``--run-time``, and the SLA verdict is computed from what arrived and says a worker was lost."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.reliability.helpers import free_port, locust_env, spawn_locust, wait_until

RUN_TIME = 24
SLA = """
[[thresholds."WS agent_completed"]]
expression = "p(95) < 5000"
description = "loose: the backend is healthy, only the lost worker may fail the run"
"""


@pytest.mark.timeout(150)
def test_killed_worker_is_reported_and_verdict_comes_from_what_arrived(backend, tmp_path: Path) -> None:
    cfg = tmp_path / "sla.toml"
    cfg.write_text(SLA, encoding="utf-8")
    port = free_port()
    report = tmp_path / "sla.json"
    common = ["--ws-think-time", "0.3", "--ws-heartbeat-interval", "1"]
    master_log = tmp_path / "master.log"
    master = spawn_locust(
        ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "2",
         "--headless", "-u", "4", "-r", "4", "-t", f"{RUN_TIME}s", "--stop-timeout", "5", "--only-summary",
         "-H", backend.ws_url, "--sla-config", str(cfg), "--sla-report-json", str(report), *common, "ChatUser"],
        locust_env({**backend.env, "RELIABILITY_OUT": str(tmp_path / "master.json")}), master_log)
    workers = [
        # no -H and no chat options: a worker gets them from the master (regression: it used to exit 2)
        spawn_locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "ChatUser"],
                     locust_env({**backend.env, "RELIABILITY_OUT": str(tmp_path / f"worker{i}.json")}),
                     tmp_path / f"worker{i}.log")
        for i in range(2)
    ]
    t_spawn = time.monotonic()
    try:
        assert wait_until(lambda: "Sending spawn jobs" in master_log.read_text(errors="replace"), 60), \
            master_log.read_text()[-3000:]
        time.sleep(8)
        killed_at = time.time()
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(10)
        master.wait(RUN_TIME + 60)
        for w in workers[1:]:
            w.wait(30)
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait(10)
    wall = time.monotonic() - t_spawn
    text = master_log.read_text(errors="replace")
    print(f"master wall {wall:.1f} s, exit {master.returncode}")
    assert wall < RUN_TIME + 45, (wall, text[-3000:])
    assert "Traceback" not in text, text[-4000:]

    # the master reports the lost worker
    assert "failed to send heartbeat, setting state to missing" in text, text[-3000:]
    assert "went missing; its samples since its last report are lost" in text, text[-3000:]
    rep = json.loads(report.read_text())
    assert rep["workers"] == 2 and rep["workers_lost"] == 1, (rep["workers"], rep["workers_lost"])
    assert any("worker(s) lost" in r for r in rep["verdict_reasons"]), rep["verdict_reasons"]
    assert master.returncode == 3 and rep["verdict"] == "fail"

    # the verdict is computed from what arrived: the threshold itself was judged and passes on the survivor's data
    th = rep["thresholds"][0]
    assert (th["metric"], th["status"]) == ("WS agent_completed", "pass"), th
    # the other worker went on after the kill, and everything it sent is accounted for at the master
    survivor = json.loads((tmp_path / "worker1.json").read_text())
    after = [s for s in survivor["samples"] if s[2] == "agent_completed" and s[3] and s[0] > killed_at + 3]
    assert len(after) >= 5, len(after)
    assert survivor["sent"] == survivor["ended"] + survivor["abandoned"], survivor
    # the master's chat options reached it: heartbeats every 1 s (the default is 15 s)
    beats = [s for s in survivor["samples"] if s[2] == "heartbeat"]
    assert len(beats) >= 10, len(beats)
    master_data = json.loads((tmp_path / "master.json").read_text())
    assert master_data["stats_completed_requests"] == rep["metrics"]["WS agent_completed"]["count"]
    assert master_data["stats_completed_requests"] >= survivor["ended"] + 1
    assert not (tmp_path / "worker0.json").exists()  # SIGKILLed: it never got to write
