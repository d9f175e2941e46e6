"""Messages still in flight when the run stops are accounted for: a local run and a master + worker run, each stopped
by ``--run-time`` with ``--stop-timeout 0`` while every chat user waits for slow replies (``agent-slow``: the reference
backend's own think time, no shared service touched). With no latency threshold on ``WS agent_completed`` their limit
is the reply deadline (30 s), so none had waited too long: they stay "in flight at stop", counted, not judged (the
ones past a latency limit are judged as failures: ``test_verdict_hostile.py``). The report's ``abandoned_at_stop``
and ``messages.in_flight`` equal what the users that ran counted (``instrumented_locustfile.py`` writes each
process's bookkeeping), sent = completed + failed + in flight, every format says so, and a warning at the end names
``--stop-timeout``."""

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
    m = rep["messages"]
    print(f"{mode}: sent {sum(u['sent'] for u in users)}, judged {rep['metrics']['WS agent_completed']['count']}, "
          f"abandoned at stop {rep['abandoned_at_stop']} (users counted {abandoned}), messages {m}")
    assert abandoned >= 1, users  # the stop really cut messages off (else this proves nothing)
    assert rep["abandoned_at_stop"] == abandoned, (rep["abandoned_at_stop"], users)
    assert (m["in_flight"], m["failed_at_stop"], m["in_flight_limit_ms"]) == (abandoned, 0, None), m
    # every message sent was judged or is in flight at the stop: nothing unaccounted for
    assert m["sent"] == sum(u["sent"] for u in users), (m, users)
    assert m["sent"] == m["completed"] + m["failed"] + m["in_flight"] and m["unaccounted"] == 0, m
    assert m["completed"] + m["failed"] == rep["metrics"]["WS agent_completed"]["count"], m
    assert f"+ {abandoned} in flight at stop" in out
    assert f"{abandoned} in flight at stop had waited less than their reply deadline: counted, not judged" in out
    assert "--stop-timeout" in next(ln for ln in out.splitlines() if "still in flight at stop" in ln and "WARN" in ln)
    xml = junit.read_text()
    assert f'name="abandoned_at_stop" value="{abandoned}"' in xml
    assert f'name="messages_in_flight" value="{abandoned}"' in xml and f'name="messages_sent" value="{m["sent"]}"' in xml
