"""Messages still in flight when the run stops are not judged, but the SLA report says how many: a local run and a
master + worker run, each stopped by ``--run-time`` with ``--stop-timeout 0`` while every chat user waits for slow
replies (``agent-slow``: the reference backend's own think time, no shared service touched). The report's
``abandoned_at_stop`` equals what the users that ran counted (``instrumented_locustfile.py`` writes each process's
bookkeeping), every message sent is either judged or counted there, the terminal table says so, and a warning at the
end names ``--stop-timeout``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until
from tests.reliability.helpers import locust_env, spawn_locust

CONFIG = '[thresholds]\n"WS agent_completed" = ["count > 0"]\n'  # passes whenever chat replies flowed
AGENT_SLOW_MS = 1000


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["local", "distributed"])
def test_messages_in_flight_at_stop_are_counted_in_the_sla_report(backend, faults, tmp_path: Path, mode: str) -> None:
    faults.apply("agent-slow", ms=AGENT_SLOW_MS, for_s=90)
    cfg = tmp_path / "sla.toml"
    cfg.write_text(CONFIG, encoding="utf-8")
    report = tmp_path / "sla.json"
    junit = tmp_path / "sla.xml"
    run = ["--headless", "-u", "4", "-r", "4", "-t", "6s", "--stop-timeout", "0", "--only-summary",
           "-H", backend.ws_url, "--ws-think-time", "0", "--ws-inflight", "2", "--sla-config", str(cfg),
           "--sla-report-json", str(report), "--sla-report-junit", str(junit), "--exit-code-on-error", "0"]
    log = tmp_path / "main.log"
    procs = []
    if mode == "local":
        procs.append(spawn_locust([*run, "ChatUser"],
                                  locust_env({**backend.env, "RELIABILITY_OUT": str(tmp_path / "main.json")}), log))
        counted = [tmp_path / "main.json"]
    else:
        port = free_port()
        procs.append(spawn_locust(
            ["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--expect-workers", "1",
             *run, "ChatUser"],
            locust_env({**backend.env, "RELIABILITY_OUT": str(tmp_path / "main.json")}), log))
        procs.append(spawn_locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port), "ChatUser"],
                                  locust_env({**backend.env, "RELIABILITY_OUT": str(tmp_path / "worker.json")}),
                                  tmp_path / "worker.log"))
        counted = [tmp_path / "worker.json"]
    try:
        for p in procs:
            p.wait(60)
        assert wait_until(lambda: all(c.exists() for c in counted), 10), log.read_text(errors="replace")[-3000:]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(10)
    out = log.read_text(errors="replace")
    assert procs[0].returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    users = [json.loads(c.read_text()) for c in counted]
    abandoned = sum(u["abandoned"] for u in users)
    rep = json.loads(report.read_text())
    print(f"{mode}: sent {sum(u['sent'] for u in users)}, judged {rep['metrics']['WS agent_completed']['count']}, "
          f"abandoned at stop {rep['abandoned_at_stop']} (users counted {abandoned})")
    assert abandoned >= 1, users  # the stop really cut messages off (else this proves nothing)
    assert rep["abandoned_at_stop"] == abandoned, (rep["abandoned_at_stop"], users)
    # every message sent was judged or is in abandoned_at_stop: nothing unaccounted for
    assert sum(u["sent"] for u in users) == rep["metrics"]["WS agent_completed"]["count"] + rep["abandoned_at_stop"]
    assert f"{abandoned} message(s) were still in flight at stop (not judged)" in out
    assert "--stop-timeout" in next(ln for ln in out.splitlines() if "still in flight at stop" in ln and "WARN" in ln)
    assert 'name="abandoned_at_stop"' in junit.read_text() and f'value="{abandoned}"' in junit.read_text()
