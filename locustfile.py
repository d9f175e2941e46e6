"""Entry point: ``locust -f locustfile.py``.

Importing a module below registers its Locust options (``--ws-*``, ``--redis-*``, ``--sla-*`` ...) and its event
hooks; the User classes imported here are the ones Locust offers. Keep this file to imports only.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: locust monkey-patches gevent)
