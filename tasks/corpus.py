"""Message contents for chat users: a small built-in corpus, or ``--ws-messages FILE`` (one message per line)."""

from __future__ import annotations

DEFAULT_MESSAGES: tuple[str, ...] = (
    "How can I lower the cost per request of my pipeline?",
    "Which model should I use for long-context summarisation?",
    "Show me last week's p95 latency by model.",
    "Why did my token usage double yesterday?",
    "Suggest caching opportunities for the retrieval step.",
    "Compare the cost of batch and streaming embedding calls.",
    "What is driving the error rate on the Triage agent?",
    "Summarise this thread and list the open action items.",
    "Which tools were called most often this month?",
    "Draft a plan to keep p95 latency under two seconds.",
)


def load_messages(path: str) -> tuple[str, ...]:
    """Non-empty lines of ``path`` (``#`` comments skipped); ValueError naming ``--ws-messages`` otherwise."""
    try:
        with open(path, encoding="utf-8") as fh:
            lines = [line.rstrip("\n") for line in fh]
    except OSError as exc:
        raise ValueError(f"--ws-messages {path!r} cannot be read ({exc.strerror}); give a text file, one message "
                         "per line") from None
    except UnicodeDecodeError:
        raise ValueError(f"--ws-messages {path!r} is not UTF-8 text") from None
    messages = tuple(line for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if not messages:
        raise ValueError(f"--ws-messages {path!r} holds no message; put one message per line")
    return messages
