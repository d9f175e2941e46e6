"""``python -m sla_checks compare OLD.json NEW.json``: the baseline regression gate on two saved JSON reports
(:mod:`sla_checks.compare`)."""

from __future__ import annotations

import sys

USAGE = "usage: python -m sla_checks compare OLD.json NEW.json [--json OUT] [--html OUT] (see --help)"


def _main(argv: list[str]) -> int:
    if not argv or argv[0] != "compare":
        print(USAGE, file=sys.stderr)
        return 2
    from sla_checks.compare import main

    return main(argv[1:])


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
