"""Entry point: ``locust -f locustfile.py``.

Importing a module below registers its Locust options (``--ws-*``, ``--redis-*``, ``--sla-*`` ...) and its event
hooks; the User classes imported here are the ones Locust offers. Keep this file to imports and option registration.
``locust -f locustfile.py --list-options`` lists every option the suite adds (``--help`` cannot: Locust prints it
before importing this file); docs/options.md is the same list, generated.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: locust monkey-patches gevent)
from locust import events

# isort: off
import users.accel  # noqa: F401  (first of the suite: scripts/build-accel's compiled hot path, when fresh)
# isort: on
import scenarios.plugin  # noqa: F401  (scenarios: --scenario, --list-scenarios, --inject-faults)
import sla_checks.plugin  # noqa: F401  (SLA: --sla-* options, live evaluation, verdict, exit code, reports)
import sla_checks.webui  # noqa: F401  (SLA tab + /sla/status, /sla/report in the web UI)
import users.csv_shutdown  # noqa: F401  (--csv: Locust's writer ends quietly once shutdown closed its files)
import users.ctrl_c  # noqa: F401  (Ctrl-C stops the run from Locust's main greenlet, never inside a user's)
import users.gc_freeze  # noqa: F401  (--gc-freeze: no long GC pauses at thousands of sessions)
from config.options import add_option
from config.options_reference import ListOptionsAction
from users.chat import ChatFlowUser, ChatUser  # noqa: F401  (chat: --ws-*/--jwt-* options + users)
from users.cleanup_check import METRIC as _CLEANUP_METRIC  # noqa: F401  (--cleanup-check: orphan runs at the stop)
from users.clickhouse_probe import ClickHouseProbeUser  # noqa: F401  (probes: options + users)
from users.health import HealthCheckUser  # noqa: F401
from users.postgres_probe import PostgresProbeUser  # noqa: F401
from users.redis_probe import RedisProbeUser  # noqa: F401
from users.resources import ResourceMonitor  # noqa: F401  (generator CPU/RSS gauges)
from users.tier_gauges import TierGauges  # noqa: F401  (the master's server-side tier gauges)


@events.init_command_line_parser.add_listener
def _add_list_options(parser: locust.argument_parser.LocustArgumentParser) -> None:
    add_option(parser, "--list-options", group="Load generator", action=ListOptionsAction, default=False, env=False,
               help="Print every option the suite adds (grouped, with env var, default and one line) and exit.")
