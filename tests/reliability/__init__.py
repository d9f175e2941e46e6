"""Reliability and security suite (issue 9): real processes, real services, each test bounded.

- test_faults_midrun.py: one headless run (chat + flow + every probe) through a black-holed network, a SIGKILLed and
  restarted backend, pg_terminate_backend, a restarted Redis and a stopped/started ClickHouse; nothing lost.
- test_worker_lost.py: master + 2 workers, one SIGKILLed: reported, survivor goes on, verdict says a worker was lost.
- test_stop_accounting.py / test_sigterm.py: messages cut off by the stop or by SIGTERM are counted, none lost.
- test_webui_restart.py: web-UI start/stop/start/stop: a stop closes every chat connection, the next test is fresh.
- test_bad_config.py: bad configuration → exit 2, the option and the fix named, no traceback, no load.
- test_secrets.py (+ test_secret_scanner.py): a whole session's outputs scanned for known secrets and JWTs.
- test_backend_security.py: forged JWT headers, malformed claims, admin API, per-user rate limit, loopback bind.

Helpers: helpers.py (TCP proxy, project-local redis-server, PG termination by owning pid, secret scanner);
instrumented_locustfile.py (the project's locustfile + per-run bookkeeping of sent/ended/abandoned messages).
Run: ``.venv/bin/python -m pytest tests/reliability`` (≈4 min, serially; needs ``scripts/services up`` and root
for the ClickHouse stop/start).
"""
