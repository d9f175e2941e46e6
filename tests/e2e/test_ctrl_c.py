"""Ctrl-C ends a run gracefully whichever greenlet was running when it came (``users/ctrl_c.py``).

``BusyUser`` (``busy_locustfile.py``) keeps a user's greenlet running 99 % of the time, so Python's own SIGINT
handling would raise ``KeyboardInterrupt`` inside a user: that user dies mid-task without ``on_stop``, gevent prints
its traceback, and a worker's final report races its death. With the suite's handler the interrupt reaches Locust's
main greenlet only: every user stops through ``on_stop``, no traceback is printed, and the process exits.
Standalone, distributed (a master and a worker) and ``--processes 2`` (forked workers), SIGINT to the process group
as a terminal's Ctrl-C sends it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port, wait_until

ROOT = Path(__file__).resolve().parents[2]
LOCUST = str(Path(sys.executable).parent / "locust")
BUSY = str(Path(__file__).resolve().parent / "busy_locustfile.py")
USERS = 4


def _files(d: Path, event: str) -> list[Path]:
    return sorted(d.glob(f"{event}-*"))


@pytest.mark.timeout(90)
@pytest.mark.parametrize("mode", ["standalone", "distributed", "processes"])
def test_ctrl_c_while_users_hold_the_cpu_stops_every_user_without_a_traceback(tmp_path: Path, mode: str) -> None:
    env = {**os.environ, "CTRL_C_DIR": str(tmp_path)}
    common = ["--stop-timeout", "5", "BusyUser"]
    head = ["--headless", "-u", str(USERS), "-r", str(USERS), "-t", "120s", "-H", "ws://127.0.0.1:9"]
    logs = []
    procs = []
    try:
        if mode in ("standalone", "processes"):
            logs.append(tmp_path / "locust.log")
            forks = ["--processes", "2"] if mode == "processes" else []  # a master and 2 forked workers
            with logs[0].open("w") as fh:
                procs.append(subprocess.Popen([LOCUST, "-f", BUSY, *forks, *head, *common], cwd=ROOT, env=env,
                                              stdout=fh, stderr=subprocess.STDOUT, process_group=0))
        else:
            port = free_port()
            logs.append(tmp_path / "master.log")
            with logs[0].open("w") as fh:
                procs.append(subprocess.Popen(
                    [LOCUST, "-f", BUSY, "--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port),
                     "--expect-workers", "1", *head, *common],
                    cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, process_group=0))
            logs.append(tmp_path / "worker.log")
            with logs[1].open("w") as fh:
                procs.append(subprocess.Popen(
                    [LOCUST, "-f", BUSY, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port), *common],
                    cwd=ROOT, env=env, stdout=fh, stderr=subprocess.STDOUT, process_group=procs[0].pid))
        text = lambda: "\n".join(p.read_text(errors="replace") for p in logs if p.exists())  # noqa: E731
        assert wait_until(lambda: len(_files(tmp_path, "started")) == USERS, 40, 0.1), text()[-3000:]
        os.killpg(procs[0].pid, signal.SIGINT)  # as a terminal's Ctrl-C: every process of the run at once
        for p in procs:
            p.wait(timeout=30)  # stop-timeout 5 s, and the users stop at their next yield
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    out = text()
    assert "Traceback" not in out, out[-3000:]
    assert "KeyboardInterrupt" not in out, out[-3000:]
    assert len(_files(tmp_path, "stopped")) == USERS, (os.listdir(tmp_path), out[-3000:])
