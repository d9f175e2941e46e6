"""Stopping a run with messages in flight loses none: with ``--stop-timeout 0`` and no think time every chat user
(long-lived ``ChatUser`` and the login flow ``ChatFlowUser``) is cut off mid-message, and still every message sent
either ended in a ``WS agent_completed`` sample or is counted by ``users.chat.abandoned_at_stop()``, and the SLA
report's message accounting agrees: sent = completed + failed + in flight at stop (with no latency threshold their
limit is the reply deadline, so none of the cut-off messages is judged as a failure).

Regression test of two counting bugs: ``_abandoned["count"] += client.close()`` lost updates (``close()`` yields, so
concurrent stops read the same old count), and the flow user did not count its cut-off message at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.reliability.helpers import locust_env, spawn_locust


@pytest.mark.timeout(90)
@pytest.mark.parametrize("user_class", ["ChatUser", "ChatFlowUser"])
def test_messages_cut_off_by_the_stop_are_counted_not_lost(backend, tmp_path: Path, user_class: str) -> None:
    out = tmp_path / "bookkeeping.json"
    log = tmp_path / "locust.log"
    cfg = tmp_path / "sla.toml"
    cfg.write_text('[thresholds]\n"WS agent_completed" = ["count > 0"]\n', encoding="utf-8")
    report = tmp_path / "sla.json"
    proc = spawn_locust(["--headless", "-u", "6", "-r", "6", "-t", "6s", "--stop-timeout", "0", "--only-summary",
                         "--sla-config", str(cfg), "--sla-report-json", str(report), "-H", backend.ws_url, "--ws-think-time", "0", "--ws-inflight", "2",
                         "--exit-code-on-error", "0", user_class],
                        locust_env({**backend.env, "RELIABILITY_OUT": str(out)}), log)
    proc.wait(70)
    text = log.read_text(errors="replace")
    assert proc.returncode == 0, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    data = json.loads(out.read_text())
    summary = {k: v for k, v in data.items() if k != "samples"}
    print(summary)
    assert data["stats_completed_requests"] > 0, summary
    assert data["abandoned"] >= 1, summary  # the stop really cut messages off (else this proves nothing)
    assert data["ended"] == data["stats_completed_requests"], summary
    assert data["sent"] == data["stats_completed_requests"] + data["abandoned"], summary
    m = json.loads(report.read_text())["messages"]
    assert (m["sent"], m["completed"] + m["failed"], m["in_flight"]) == (
        data["sent"], data["stats_completed_requests"], data["abandoned"]), (m, summary)
