"""``users.csv_shutdown``: Locust's CSV writer, its files closed under it by Locust's shutdown, ends without an
error; any other error still raises."""

from __future__ import annotations

from pathlib import Path

import gevent
import pytest
from locust.env import Environment
from locust.stats import PERCENTILES_TO_REPORT, StatsCSVFileWriter

import users.csv_shutdown  # noqa: F401


def _writer(tmp_path: Path) -> StatsCSVFileWriter:
    env = Environment()
    env.create_local_runner()
    return StatsCSVFileWriter(env, PERCENTILES_TO_REPORT, str(tmp_path / "run"), full_history=False)


def test_files_closed_under_the_running_writer_end_it_quietly(tmp_path: Path) -> None:
    writer = _writer(tmp_path)
    g = gevent.spawn(writer.stats_writer)
    gevent.sleep(0.05)  # header written, now sleeping its second
    writer.close_files()  # what Locust's shutdown() does, the greenlet left running
    g.join(timeout=5)
    assert g.dead and g.successful(), g.exception
    assert (tmp_path / "run_stats.csv").read_text().startswith("Type,Name")


def test_another_value_error_still_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    writer = _writer(tmp_path)

    def bad_rows(*_: object) -> None:
        raise ValueError("not about closed files")

    monkeypatch.setattr(writer, "_requests_data_rows", bad_rows)
    g = gevent.spawn(writer.stats_writer)
    g.join(timeout=5)
    assert isinstance(g.exception, ValueError) and "not about closed files" in str(g.exception)
    writer.close_files()
