"""A distributed run (master + 2 workers, chat users against the reference backend) that ends while messages are in
flight — SIGTERM or Ctrl-C (SIGINT) to the master mid-run, or ``--run-time`` expiring — is judged on every sample
the workers sent, their final reports included: the master's SLA report counts exactly the ``WS agent_completed``
samples the workers' reports carried (``worker_counts_locustfile.py`` logs them per worker) and Locust's own final
stats (``--json-file``) agree — also when replies are still in flight at the stop and the workers' final reports come
seconds later (``--stop-timeout``); the master exits 0 (a passing verdict) with no traceback, and every worker exits.

The ``group-*`` cases signal the master and both workers at once, as Ctrl-C in a terminal does (one process group;
``locust --processes N`` forks its workers into it): each worker stops its users and sends its final report before it
tells the master it quits, and the master judges only after, so no sample of the last seconds is lost.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
COUNTING = str(Path(__file__).resolve().parent / "worker_counts_locustfile.py")
STOP_TIMEOUT = 3
AGENT_SLOW_MS = 1000
# passes whenever chat replies flowed: the verdict, and so the exit code, does not depend on the machine's load
CONFIG = '[thresholds]\n"WS agent_completed" = ["count > 0"]\n'


def completed_in_csv(path: Path) -> int:
    """``WS agent_completed`` requests in Locust's live ``--csv`` stats (rewritten every second), 0 before."""
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.DictReader(fh) if (r["Type"], r["Name"]) == ("WS", "agent_completed")]
    except (OSError, KeyError):
        return 0
    return int(rows[0]["Request Count"]) if rows else 0


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("end", ["sigterm", "sigint", "run-time", "group-sigint", "group-sigterm"])
def test_master_stopped_mid_run_judges_workers_final_samples(backend, faults, tmp_path: Path, end: str) -> None:
    # replies take 1.3-1.6 s (the backend's own think time, no shared service touched): when the run ends, every
    # user is waiting for one, and the workers' final reports come well after the stop (Locust's master waits 0.5 s)
    faults.apply("agent-slow", ms=AGENT_SLOW_MS, for_s=90)
    env = {**os.environ, **backend.env, "SLA_COUNT_DIR": str(tmp_path)}
    (tmp_path / "sla.toml").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    run_time = "10s" if end == "run-time" else "120s"
    group = end.startswith("group-")  # the master leads a process group its workers join: one signal reaches all
    log = tmp_path / "master.log"
    with log.open("w") as fh:
        master = subprocess.Popen(
            [LOCUST, "-f", COUNTING, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
             "--expect-workers", "2", "--headless", "--only-summary", "-H", backend.ws_url, "-u", "6", "-r", "6",
             "-t", run_time, "--stop-timeout", str(STOP_TIMEOUT), "--ws-think-time", "0.1",
             "--sla-config", str(tmp_path / "sla.toml"), "--sla-report-json", str(tmp_path / "sla.json"),
             "--csv", str(tmp_path / "live"), "--json-file", str(tmp_path / "final"),
             "--exit-code-on-error", "0", "ChatUser"],
            cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True, process_group=0 if group else None)
    worker_logs = [tmp_path / f"worker{i}.log" for i in range(2)]
    workers = []
    for wlog in worker_logs:
        with wlog.open("w") as fh:
            workers.append(subprocess.Popen(
                [LOCUST, "-f", COUNTING, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port),
                 "ChatUser"],
                cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, text=True,
                process_group=master.pid if group else None))
    try:
        if end == "run-time":
            master.wait(timeout=60)
        else:
            # samples flowed: the master's live stats (fed by the workers' reports) count chat replies
            assert wait_until(lambda: completed_in_csv(tmp_path / "live_stats.csv") > 0, 40, 0.2), log.read_text()
            time.sleep(1.5)  # mid-report-interval (3 s): each worker holds samples its next report would carry
            sig = signal.SIGTERM if end.endswith("sigterm") else signal.SIGINT
            if group:
                os.killpg(master.pid, sig)  # as a terminal's Ctrl-C: the master and both workers at the same instant
            else:
                master.send_signal(sig)
            master.wait(timeout=STOP_TIMEOUT + 20)
        for w in workers:
            w.wait(timeout=STOP_TIMEOUT + 20)  # no worker outlives its master's quit
    finally:
        for p in (master, *workers):
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    out = log.read_text(errors="replace")
    assert master.returncode == 0, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    for w, wlog in zip(workers, worker_logs, strict=True):
        assert "Traceback" not in wlog.read_text(errors="replace"), wlog.read_text(errors="replace")[-3000:]
        assert w.returncode == 0, (w.returncode, wlog.read_text(errors="replace")[-3000:])

    counts = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("worker-*.json"))]
    assert len(counts) == 2, (counts, out[-2000:])
    # each worker's reports carried every sample it recorded: its final report came after its last sample
    assert all(c["recorded"] == c["shipped"] for c in counts), counts
    shipped = sum(c["shipped"] for c in counts)
    rep = json.loads((tmp_path / "sla.json").read_text())
    judged = rep["metrics"]["WS agent_completed"]["count"]
    locust_final = sum(e["num_requests"] for e in json.loads((tmp_path / "final.json").read_text())
                       if (e["method"], e["name"]) == ("WS", "agent_completed"))
    print(f"{end}: workers shipped {shipped} WS agent_completed samples, SLA report judged {judged}, "
          f"Locust's final stats {locust_final}")
    assert shipped > 0
    # every sample the workers recorded (their users' last replies included) is judged
    assert judged == sum(c["recorded"] for c in counts), (judged, counts, out[-2000:])
    assert judged == shipped, (judged, shipped, counts, out[-2000:])
    assert locust_final == shipped, (locust_final, shipped, counts)
    assert (rep["workers"], rep["workers_lost"], rep["verdict"]) == (2, 0, "pass"), rep["verdict_reasons"]
