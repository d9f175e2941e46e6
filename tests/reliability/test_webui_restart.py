"""Web-UI mode: start, stop, start again, stop. A stopped test leaves no chat connection open (no leaked session or
greenlet holding a socket), the second test connects and completes messages afresh, and every message of both tests
is accounted for (sent = ended + abandoned at stop)."""

from __future__ import annotations

import json
import signal
import time
import urllib.parse
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.reliability.helpers import free_port, locust_env, spawn_locust, wait_until


def _post(url: str, form: dict[str, str] | None = None) -> dict:
    data = urllib.parse.urlencode(form or {}).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=15) as r:
        return json.loads(r.read() or b"{}")


def _answers(base: str) -> bool:
    try:
        with urllib.request.urlopen(base + "/", timeout=5) as r:
            return r.status == 200
    except OSError:
        return False


def _completed(base: str) -> int:
    with urllib.request.urlopen(base + "/stats/requests", timeout=15) as r:
        stats = json.loads(r.read())["stats"]
    return sum(s["num_requests"] for s in stats if s["name"] == "agent_completed")


def _conns_to(pid: int, port: int) -> int:
    try:
        return sum(1 for c in psutil.Process(pid).net_connections(kind="tcp")
                   if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED)
    except psutil.Error:
        return -1


@pytest.mark.timeout(120)
def test_stop_closes_every_connection_and_a_new_test_starts_afresh(backend, tmp_path: Path) -> None:
    web = free_port()
    base = f"http://127.0.0.1:{web}"
    out, log = tmp_path / "bookkeeping.json", tmp_path / "locust.log"
    proc = spawn_locust(["--web-host", "127.0.0.1", "--web-port", str(web), "-H", backend.ws_url, "--sla-off",
                         "--ws-think-time", "0.2", "--ws-heartbeat-interval", "1", "ChatUser"],
                        locust_env({**backend.env, "RELIABILITY_OUT": str(out)}), log)
    try:
        assert wait_until(lambda: _answers(base), 40), log.read_text()
        starts = []
        for round_ in (1, 2):
            starts.append(time.time())
            assert _post(base + "/swarm", {"user_count": "4", "spawn_rate": "4", "host": backend.ws_url})["success"]
            assert wait_until(lambda: _conns_to(proc.pid, backend.port) >= 4, 20), f"round {round_}: not connected"
            # /stats/requests is memoized for up to 2 s (locust.web.DEFAULT_CACHE_TIME, "dynamic"): let the previous
            # test's cached figures expire so round 2 waits for its own completions.
            time.sleep(3)
            assert wait_until(lambda: _completed(base) >= 8, 30), f"round {round_}: no messages completed"
            time.sleep(1)
            _post(base + "/stop")
            assert wait_until(lambda: _conns_to(proc.pid, backend.port) == 0, 15), (
                f"round {round_}: {_conns_to(proc.pid, backend.port)} chat connections still open after stop")
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    text = log.read_text(errors="replace")
    assert "Traceback" not in text, text[-3000:]
    data = json.loads(out.read_text())
    summary = {k: v for k, v in data.items() if k != "samples"}
    assert data["clients"] == 8, summary  # 4 fresh users per test
    assert data["sent"] == data["ended"] + data["abandoned"], summary
    second = [x for x in data["samples"] if x[2] == "agent_completed" and x[3] and x[0] > starts[1]]
    assert len(second) >= 8, len(second)  # the second test really ran on fresh connections
