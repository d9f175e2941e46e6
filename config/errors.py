"""The suite's error root: every exception the suite raises derives from :class:`SuiteError`.

Two branches matter to a caller:

* :class:`UsageError`: bad input from the person running the suite (an option, a profile file, a scenario name, a
  credential the target refuses at the start-up check). Its text is one line naming the option (or file), the bad
  value (never a secret) and what to do. It ends the process with exit code 2 (Locust's usage-error code) before any
  load runs, through :func:`exit_usage`, the one place that turns it into that exit.
* every other :class:`SuiteError`: a failure while the run goes on (a reply that timed out, a probe that failed);
  it becomes a failed sample, never an exit.

The concrete classes keep their own names (``ChatConfigError``, ``ProbeConfigError``, ``ConfigError`` ...) and
their old bases (most are also a ``ValueError``), so ``except ValueError`` in a caller keeps working.

Pure: no Locust import.
"""

from __future__ import annotations

import logging
import sys
from typing import NoReturn

__all__ = ["USAGE_EXIT_CODE", "SuiteError", "UsageError", "exit_usage"]

USAGE_EXIT_CODE = 2
"""Exit code of a usage error (Locust's own for a bad command line)."""

_logger = logging.getLogger(__name__)


class SuiteError(Exception):
    """Root of every exception the suite raises."""


class UsageError(SuiteError):
    """Bad input from the person running the suite: one line naming the option, the value and the fix; exit 2."""

    exit_code = USAGE_EXIT_CODE


def exit_usage(error: UsageError | str, *, prefix: str = "", logger: logging.Logger | None = None) -> NoReturn:
    """Log ``error`` as one ERROR line (``"<prefix>: <text>"``) on ``logger`` and exit with code 2.

    The line goes through the caller's logger, so it names the module that refused the value; stderr is flushed
    first so the line is out before the process ends."""
    text = str(error)
    (logger or _logger).error("%s", f"{prefix}: {text}" if prefix else text)
    sys.stderr.flush()
    sys.exit(USAGE_EXIT_CODE)
