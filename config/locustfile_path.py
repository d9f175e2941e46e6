"""Where the suite's locustfile is, for ``locust -f`` from any directory.

``pip install .`` installs ``locustfile.py`` beside the suite's top-level packages (``config``, ``users``, ...), as
it sits beside them in the repository; the ``ws-agent-locustfile`` command prints its path::

    locust -f "$(ws-agent-locustfile)" --list-scenarios
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["LOCUSTFILE", "main"]

LOCUSTFILE = Path(__file__).resolve().parent.parent / "locustfile.py"
"""The locustfile of this installation (or of this checkout)."""


def main() -> int:
    """Print :data:`LOCUSTFILE`; exit 1 with a hint when it is missing (an install that left it out)."""
    if not LOCUSTFILE.is_file():
        print(
            f"error: no locustfile at {LOCUSTFILE}; reinstall the suite (pip install ws-agent-loadtest) or pass the "
            "checkout's locustfile.py to locust -f",
            file=sys.stderr,
        )
        return 1
    print(LOCUSTFILE)
    return 0


if __name__ == "__main__":
    sys.exit(main())
