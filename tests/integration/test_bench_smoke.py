"""Smoke of the benchmark tooling (not its speed): the bench server speaks the protocol, the raw client and the
Locust meter produce figures, and the harness prints its table and writes JSON. Real processes, loopback only."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid

import orjson
import pytest
import websocket

from bench.common import ROOT, BenchServer, child_env, run_locust, run_raw_client

EVENTS = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


def _recv_json(ws: websocket.WebSocket) -> dict:
    return orjson.loads(ws.recv())


@pytest.mark.timeout(60)
def test_bench_server_answers_five_events_echoing_ids_and_pong():
    with BenchServer(max_seconds=60) as srv:
        ws = websocket.create_connection(srv.url, subprotocols=["jwt-auth.abc.def.ghi"], timeout=10)
        try:
            assert ws.getsubprotocol() == "jwt-auth.abc.def.ghi"
            assert _recv_json(ws)["type"] == "connection_established"
            tid, cid = uuid.uuid4().hex, uuid.uuid4().hex
            ws.send(orjson.dumps({"type": "user_message",
                                  "payload": {"content": "hi", "thread_id": tid, "correlation_id": cid}}))
            got = [_recv_json(ws) for _ in EVENTS]
            assert [e["type"] for e in got] == EVENTS
            assert all(e["thread_id"] == tid and e["correlation_id"] == cid for e in got)
            assert got[2]["tool_name"] and "results" in got[3]
            ws.send(orjson.dumps({"type": "ping", "timestamp": 123.5}))
            pong = _recv_json(ws)
            assert pong["type"] == "pong" and pong["data"]["timestamp"] == 123.5
        finally:
            ws.close()


@pytest.mark.timeout(60)
def test_bench_server_delay_holds_replies_at_least_d():
    with BenchServer(delay=0.2, max_seconds=60) as srv:
        ws = websocket.create_connection(srv.url, timeout=10)
        try:
            ws.recv()
            t = time.perf_counter()
            ws.send(orjson.dumps({"type": "user_message", "payload": {"content": "hi"}}))
            for _ in EVENTS:
                ws.recv()
            assert time.perf_counter() - t >= 0.2
        finally:
            ws.close()


@pytest.mark.timeout(90)
@pytest.mark.parametrize("client", ["wsproto-gevent", "wsproto-plain", "websocket-client"])
def test_raw_client_reports_round_trips_and_cpu(client):
    with BenchServer(max_seconds=60) as srv:
        r = run_raw_client(srv.url, client, connections=5, warmup=0.3, duration=1.0)
    assert r["client"] == client and r["errors"] == 0
    assert r["round_trips"] > 0 and r["rate"] > 0 and r["cpu_us_per_rt"] > 0


@pytest.mark.timeout(120)
def test_locust_meter_measures_naive_user_window():
    with BenchServer(max_seconds=90) as srv:
        run = run_locust(["bench/naive_user.py"], srv.url, 5, warmup=0.5, window=1.5)
    (m,) = run.load
    assert m["role"] == "local" and m["metric"] == "WS agent_completed"
    assert m["count"] > 0 and m["failures"] == 0 and m["cpu_us_per_rt"] > 0
    assert m["p50_ms"] is not None and m["p50_ms"] <= m["p99_ms"]
    assert run.exit_codes == [0]


@pytest.mark.timeout(120)
def test_bench_harness_prints_table_and_writes_json(tmp_path):
    # the cheapest section: Artillery is skipped cleanly unless already installed in bench/.node
    r = subprocess.run([sys.executable, "-m", "bench", "artillery", "--quick"], cwd=ROOT,
                       env=child_env(BENCH_RESULTS_DIR=str(tmp_path)), capture_output=True, text=True, timeout=110)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "figure" in r.stdout and "measured" in r.stdout and "peer: Artillery ws engine" in r.stdout
    summary = json.loads((tmp_path / "summary-quick.json").read_text())
    assert summary["what"] == "artillery" and summary["rows"]
    assert json.loads((tmp_path / "artillery-quick.json").read_text())["status"] in ("skipped", "measured")
