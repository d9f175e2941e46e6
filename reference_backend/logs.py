"""Logging setup: JSON (or plain) lines on stderr, with tokens and secrets redacted from every record."""

from __future__ import annotations

import logging
import re
import sys
import time

import orjson

_TOKEN_PATTERNS = (
    re.compile(r"(token=)[^&\s\"']+", re.I),
    re.compile(r"(bearer[ .])[A-Za-z0-9_\-.=]{8,}", re.I),
    re.compile(r"((?:jwt-auth|jwt)\.)[A-Za-z0-9_\-.=]{8,}", re.I),
    re.compile(r"()eyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
)


class RedactFilter(logging.Filter):
    """Replace JWTs, ``token=`` query values and the configured secrets by ``***``."""

    def __init__(self, secrets: list[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s and len(s) >= 4]

    def redact(self, text: str) -> str:
        for pat in _TOKEN_PATTERNS:
            text = pat.sub(r"\1***", text)
        for s in self.secrets:
            text = text.replace(s, "***")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.redact(msg)
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        record.msg, record.args = clean, None
        return True


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        d = {"ts": round(record.created, 3), "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
             "level": record.levelname.lower(), "logger": record.name, "msg": record.getMessage()}
        if record.exc_text:
            d["exc"] = record.exc_text
        return orjson.dumps(d).decode()


def setup_logging(level: str, fmt: str, secrets: list[str]) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactFilter(secrets))
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "asyncio"):
        lg = logging.getLogger(name)
        lg.handlers[:] = []
        lg.propagate = True
    logging.captureWarnings(True)
    if level.lower() != "debug":  # per-connection "connection open"/"[accepted]" lines only when debugging
        logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").disabled = True  # access lines would carry ?token= query strings
    logging.getLogger("httpx").setLevel(logging.WARNING)
