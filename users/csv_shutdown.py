"""Locust's ``--csv`` writer ends quietly when Locust has closed its files at shutdown.

Locust 2.47's ``shutdown()`` closes the CSV files (``StatsCSVFileWriter.close_files``) without stopping the greenlet
that rewrites them every second. When anything yields between that close and the process's exit, the greenlet wakes,
seeks a closed file and logs ``ValueError: I/O operation on closed file`` with a traceback after ``Shutting down
(exit code N)`` (CI23: a distributed master stopped by Ctrl-C). The exit code is already decided then, and the files
hold the last rows written; the traceback is noise that hides real ones. This wraps the writer so that exactly that
case, its files closed, ends the greenlet; any other error is raised as before.

Usage::

    import users.csv_shutdown   # done by locustfile.py
"""

from __future__ import annotations

from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust.stats import StatsCSVFileWriter

_locust_stats_writer = StatsCSVFileWriter.stats_writer


def _files_closed(writer: Any) -> bool:
    handle = getattr(writer, "requests_csv_filehandle", None)
    return handle is not None and bool(handle.closed)


def stats_writer(self: StatsCSVFileWriter) -> None:
    """Locust's CSV writer loop; returns when Locust's shutdown closed its files under it."""
    try:
        _locust_stats_writer(self)
    except ValueError:
        if _files_closed(self):
            return
        raise


if getattr(StatsCSVFileWriter.stats_writer, "__module__", "") != __name__:
    StatsCSVFileWriter.stats_writer = stats_writer  # type: ignore[method-assign]
