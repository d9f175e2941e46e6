"""scripts/rehearse end to end: a real network namespace, HAProxy terminating TLS, latency on the path, the tiers
forwarded through it, and the soak scenario with ``--sla-profile staging`` (root only; skipped otherwise)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="scripts/rehearse needs root (network namespace, veth, tc)"),
    pytest.mark.skipif(shutil.which("ip") is None or shutil.which("haproxy") is None,
                       reason="needs iproute2 (ip netns) and HAProxy: run scripts/setup as root"),
]


def _ip_netns_works() -> bool:
    try:
        return subprocess.run(["ip", "netns", "list"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def rehearse(out: Path, *args: str, timeout: float = 150) -> subprocess.CompletedProcess[str]:
    if not _ip_netns_works():
        pytest.skip("ip netns is not usable here")
    return subprocess.run([str(REPO / "scripts" / "rehearse"), "--out", str(out), *args], cwd=REPO,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.timeout(180)
def test_healthy_path_passes_and_the_reply_pays_the_round_trip(tmp_path: Path) -> None:
    latency_ms, jitter_ms, think_ms = 5.0, 1.0, 200.0
    res = rehearse(tmp_path, "--length", "40s", "--latency", f"{latency_ms:g}ms", "--jitter", f"{jitter_ms:g}ms",
                   "--lifetime", "120s", "--backend-think", f"{think_ms:g}ms", "--", "--sla-warmup", "5s")
    tail = res.stdout[-3000:] + res.stderr[-2000:]
    assert res.returncode == 0, tail
    report = json.loads((tmp_path / "sla.json").read_text())
    assert report["verdict"] == "pass" and report["scenario"]["name"] == "soak", tail
    reply = report["metrics"]["WS agent_completed"]
    assert reply["count"] > 100 and reply["failures"] == 0, reply
    # every reply crossed the path twice: the fixed think time plus a round trip (minus jitter) is its floor
    assert reply["p50"] >= think_ms + 2 * (latency_ms - jitter_ms), reply
    # the tiers were probed through the namespace too: a Redis command pays the round trip
    redis = report["metrics"]["REDIS GET"]
    assert redis["count"] > 0 and redis["p50"] >= 2 * (latency_ms - jitter_ms), redis
    path = json.loads((tmp_path / "path.json").read_text())
    assert path["ws_url"].startswith("wss://198.18.") and path["exit_code"] == 0
    # torn down: no namespace and no veth left behind
    assert "wsrehearse" not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert subprocess.run(["ip", "link", "show", "wsrh0"], capture_output=True).returncode != 0


@pytest.mark.timeout(180)
def test_redis_pause_mid_run_fails_and_attribution_names_redis(tmp_path: Path) -> None:
    res = rehearse(tmp_path, "--length", "40s", "--latency", "5ms", "--jitter", "1ms", "--lifetime", "120s",
                   "--fault", "redis-pause", "--fault-at", "15s", "--fault-for", "8s", "--fault-ms", "4000",
                   "--", "--sla-warmup", "5s")
    tail = res.stdout[-3000:] + res.stderr[-2000:]
    assert res.returncode == 3, tail
    report = json.loads((tmp_path / "sla.json").read_text())
    assert report["verdict"] == "fail", tail
    summaries = " ".join(a["summary"] for a in report["attribution"]).lower()
    assert "redis" in summaries, report["attribution"]


def test_bad_option_exits_2_with_one_line_before_any_setup(tmp_path: Path) -> None:
    res = rehearse(tmp_path, "--length", "soon", timeout=30)
    assert res.returncode == 2
    assert "--length 'soon'" in res.stderr and "10s" in res.stderr
    assert not (tmp_path / "path").exists()
