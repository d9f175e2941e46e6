"""``python -m reference_backend``: run the reference backend on uvicorn (one worker, uvloop + httptools)."""

from __future__ import annotations

import logging
import os
import socket
import sys

import uvicorn

from reference_backend.app import create_app
from reference_backend.logs import setup_logging
from reference_backend.settings import SettingsError, exit_on_error, settings_from_args

log = logging.getLogger("reference_backend")


def main(argv: list[str] | None = None) -> None:
    try:
        settings = settings_from_args(argv)
    except SettingsError as e:
        exit_on_error(str(e))
        return
    setup_logging(settings.log_level, settings.log_format,
                  [settings.jwt_secret, settings.admin_token, settings.seed_password])
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((settings.host, settings.port))
        sock.listen(2048)  # clients that connect before uvicorn accepts wait in the backlog instead of being refused
    except OSError as e:
        exit_on_error(f"cannot listen on {settings.host}:{settings.port}: {e.strerror}; pick another --port "
                      f"(or --port 0 for any free one)")
        return
    port = sock.getsockname()[1]
    port_file = os.environ.get("TARGET_PORT_FILE")
    config = uvicorn.Config(
        create_app(settings), loop="uvloop", http="httptools", ws="websockets-sansio", lifespan="on",
        log_config=None, access_log=False, ws_max_size=max(4 * settings.max_frame_bytes, 1 << 20),
        ws_ping_interval=None, ws_per_message_deflate=False, timeout_graceful_shutdown=5,
        limit_concurrency=settings.max_connections, proxy_headers=False, server_header=False,
    )
    server = uvicorn.Server(config)
    log.info("listening on http://%s:%d (ws://%s:%d/ws), pid %d", settings.host, port, settings.host, port,
             os.getpid())
    if port_file:
        with open(port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.replace(port_file + ".tmp", port_file)
    server.run(sockets=[sock])
    sys.exit(0 if not getattr(server, "force_exit", False) else 1)


if __name__ == "__main__":
    main()
