"""The options reference: every command-line option the suite adds to Locust, read from the parser itself.

The pure part takes an ``argparse`` parser (Locust's, after the locustfile's ``init_command_line_parser`` listeners
ran) and the option strings Locust declares on its own, and lists the rest grouped, each with its env var, default,
web-UI and secret flags and one line of help; it renders that list as markdown (``docs/options.md``) or plain text
(``--list-options``). Nothing here is written by hand, so the reference cannot drift from the parsers.

Usage::

    .venv/bin/python -m config.options_reference > docs/options.md     # or: --write (docs/options.md)
    .venv/bin/python -m config.options_reference --text                # what --list-options prints
    locust -f locustfile.py --list-options                             # the same, from Locust

``locust -f locustfile.py --help`` cannot show these options: Locust prints its help before it imports the
locustfile that registers them. ``--list-options`` is parsed after that import, like ``--list-scenarios``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "GROUPS",
    "ListOptionsAction",
    "OptionDoc",
    "group_of",
    "render_markdown",
    "render_text",
    "suite_options",
]

GROUPS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("Chat users", "chat-users.md", ("--ws-", "--jwt-", "--token-file", "--users-file")),
    ("Infrastructure probes", "probes.md",
     ("--probes", "--probe-", "--redis-", "--pg-", "--clickhouse-", "--health-")),
    ("SLA verdict and reports", "sla.md", ("--sla-",)),
    ("Scenarios", "scenarios.md",
     ("--scenario", "--list-scenarios", "--inject-", "--target-admin-token")),
    ("Load generator", "development.md", ("--gc-freeze", "--list-options")),
)
"""(group title, docs page that explains it, option-name prefixes), in display order. An option that matches no
prefix goes to its ``argparse`` group's title (``Other`` for the parser's default group)."""

OTHER = "Other"
DOCS_PAGE = {title: page for title, page, _ in GROUPS}
REPO_ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = REPO_ROOT / "locustfile.py"
OPTIONS_MD = REPO_ROOT / "docs" / "options.md"
GENERATOR = ".venv/bin/python -m config.options_reference --write"


@dataclass(frozen=True)
class OptionDoc:
    """One suite option as the reference shows it."""

    option: str
    """The long option string, e.g. ``--ws-reply-timeout`` (aliases follow in ``aliases``)."""
    aliases: tuple[str, ...]
    group: str
    env_var: str | None
    default: str
    """The default as text: ``—`` when there is none, ``on``/``off`` for flags, ``***`` for a secret's value."""
    kind: str
    """What the option takes: ``flag``, ``int``, ``number``, ``text``, or ``one of: a, b``."""
    web_ui: bool
    """Offered in the web UI's start form (re-read at each test start there)."""
    secret: bool
    """Hidden in logs, reports and the web UI."""
    help: str
    """The parser's help text on one line."""

    @property
    def summary(self) -> str:
        """The help's first sentence."""
        return first_sentence(self.help)


# ---------------------------------------------------------------------------------------------------------------
# Pure: from a parser to a list of OptionDoc


def group_of(option: str, argparse_group: str | None = None) -> str:
    """The reference group of ``option``: by its prefix (:data:`GROUPS`), else its ``argparse`` group's title."""
    for title, _page, prefixes in GROUPS:
        if any(option == p or (p.endswith("-") and option.startswith(p)) or option.startswith(p + "-")
               for p in prefixes):
            return title
    if argparse_group and argparse_group.lower() not in ("options", "optional arguments", "positional arguments"):
        return argparse_group
    return OTHER


def first_sentence(text: str) -> str:
    """``"Seconds until X (default 30). More."`` → ``"Seconds until X (default 30)."``; the whole text without a
    sentence end."""
    match = re.match(r"(.+?[.!?])(\s+[A-Z(]|$)", text)
    return match.group(1) if match else text


def shortened(text: str, width: int) -> str:
    """``text`` if it fits in ``width`` characters, else cut at a word boundary with ``…``."""
    if len(text) <= width:
        return text
    cut = text[: width - 1].rsplit(" ", 1)[0].rstrip(" ,;:")
    return cut + "…"


def _one_line(text: str | None, action: argparse.Action) -> str:
    if not text or text == argparse.SUPPRESS:
        return ""
    try:
        text = text % {"default": action.default, "prog": "locust", "dest": action.dest}
    except (KeyError, TypeError, ValueError):
        pass
    return " ".join(text.split())


def _redacted_url(value: str) -> str:
    try:
        parts = urlsplit(value)
    except ValueError:
        return "***"
    if not parts.scheme or not parts.netloc:
        return "***"
    if parts.password is None:
        return value
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))


def default_text(action: argparse.Action, secret: bool) -> str:
    """The default as the reference shows it; a secret option's default is shown only as a URL without its
    password (``redis://127.0.0.1:6379/0``), anything else of it as ``***``."""
    value = action.default
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
        return "on" if value else "off"
    if action.nargs == 0:  # an action such as --list-options: no value, no default
        return "—"
    if value is None or value == "" or value is argparse.SUPPRESS:
        return "—"
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    elif isinstance(value, (list, tuple)):
        text = ",".join(str(v) for v in value) or "—"
    else:
        text = str(value)
    return _redacted_url(text) if secret else text


def kind_text(action: argparse.Action) -> str:
    """``flag`` / ``int`` / ``number`` / ``text`` / ``one of: a, b`` (choices, the empty one left out)."""
    if action.nargs == 0:
        return "flag"
    choices = [str(c) for c in (action.choices or ()) if str(c) != ""]
    if choices:
        return "one of: " + ", ".join(choices) if len(choices) <= 8 else f"one of {len(choices)} names"
    kind = action.type
    if kind is int:
        return "int"
    if kind is float:
        return "number"
    return "text"


def _group_titles(parser: argparse.ArgumentParser) -> dict[int, str]:
    titles: dict[int, str] = {}
    for group in getattr(parser, "_action_groups", ()):
        for action in group._group_actions:
            titles[id(action)] = group.title or ""
    return titles


def suite_options(parser: argparse.ArgumentParser, locust_options: Iterable[str]) -> list[OptionDoc]:
    """Every option of ``parser`` that is not one of ``locust_options`` (Locust's own option strings), in group
    order (:data:`GROUPS`, then other groups by title) and, within a group, in declaration order. Options whose
    help is ``argparse.SUPPRESS`` are left out."""
    own = set(locust_options)
    titles = _group_titles(parser)
    docs: list[OptionDoc] = []
    for action in parser._actions:
        strings = [s for s in action.option_strings if s.startswith("--")] or list(action.option_strings)
        if not strings or all(s in own for s in action.option_strings) or action.help == argparse.SUPPRESS:
            continue
        secret = bool(getattr(action, "is_secret", False))
        docs.append(OptionDoc(
            option=strings[0],
            aliases=tuple(s for s in action.option_strings if s != strings[0]),
            group=group_of(strings[0], titles.get(id(action))),
            env_var=getattr(action, "env_var", None) or None,
            default=default_text(action, secret),
            kind=kind_text(action),
            web_ui=bool(getattr(action, "include_in_web_ui", False)),
            secret=secret,
            help=_one_line(action.help, action),
        ))
    order = {title: i for i, (title, _, _) in enumerate(GROUPS)}
    return sorted(docs, key=lambda d: (order.get(d.group, len(order)), d.group if d.group not in order else ""))


def grouped(options: Sequence[OptionDoc]) -> list[tuple[str, list[OptionDoc]]]:
    """``options`` split by group, keeping their order."""
    out: list[tuple[str, list[OptionDoc]]] = []
    for doc in options:
        if not out or out[-1][0] != doc.group:
            out.append((doc.group, []))
        out[-1][1].append(doc)
    return out


# ---------------------------------------------------------------------------------------------------------------
# Pure: rendering


def _cell(text: str) -> str:
    """Table-cell text: ``|`` escaped, ``<``/``>`` as entities (``<jwt>`` is not an HTML tag), ``*`` literal."""
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;").replace("*", "\\*")


def render_markdown(options: Sequence[OptionDoc]) -> str:
    """``docs/options.md``: one table per group."""
    in_ui = sum(1 for d in options if d.web_ui)
    lines = [
        "# Options reference",
        "",
        f"<!-- Generated by `{GENERATOR}` from the parsers; do not edit by hand. -->",
        "",
        f"Every option the suite adds to Locust ({len(options)}; Locust's own are in `locust --help` and "
        "[Locust's configuration docs](https://docs.locust.io/en/stable/configuration.html)). Each is also an "
        "environment variable (the *env var* column) and a key of a `locust.conf` file (the option without its "
        "leading dashes, e.g. `sla-profile = ci`; see `locust.conf.example`). A command-line value beats the env "
        "var, which beats the config file, which beats the default.",
        "",
        "`locust -f locustfile.py --help` does not list these options: Locust prints its help before it imports the "
        "locustfile that registers them. `locust -f locustfile.py --list-options` prints this reference instead.",
        "",
        f"*Web UI*: the option is a field of the web UI's start form ({in_ui} of them) and is read again at each "
        "test start. *Secret*: the value never appears in logs, reports or the web UI. A bad value stops Locust "
        "before any load with exit code 2 and one line naming the option, the value and the fix.",
        "",
        "Regenerate this page after changing an option: `" + GENERATOR + "` "
        "(`tests/unit/test_docs_options.py` fails until you do).",
    ]
    for title, docs in grouped(options):
        lines += ["", f"## {title}", ""]
        page = DOCS_PAGE.get(title)
        if page:
            lines += [f"Explained in [{page}]({page}).", ""]
        lines += ["| option | env var | default | takes | web UI | description |", "|---|---|---|---|---|---|"]
        for d in docs:
            name = f"`{d.option}`" + "".join(f", `{a}`" for a in d.aliases)
            if d.secret:
                name += " (secret)"
            env = f"`{d.env_var}`" if d.env_var else "—"
            default = "—" if d.default == "—" else "`" + d.default.replace("|", "\\|") + "`"
            lines.append(f"| {name} | {env} | {default} | {_cell(d.kind)} | {'yes' if d.web_ui else ''} | "
                         f"{_cell(d.help)} |")
    return "\n".join(lines) + "\n"


def render_text(options: Sequence[OptionDoc], width: int = 110) -> str:
    """What ``--list-options`` prints: per group, each option with its env var and default, then one line of help."""
    lines = [f"Options the suite adds to Locust ({len(options)}); Locust's own: locust --help.",
             "Each is also its env var and a locust.conf key. [web UI]: in the start form; [secret]: never shown."]
    for title, docs in grouped(options):
        lines += ["", f"{title}:"]
        for d in docs:
            flags = "".join(f" [{f}]" for f, on in (("web UI", d.web_ui), ("secret", d.secret)) if on)
            env = d.env_var or "no env var"
            lines.append(f"  {d.option}  ({env}; default {d.default}){flags}")
            summary = shortened(d.summary, width - 6)
            if summary:
                lines.append(f"      {summary}")
    lines += ["", "Full reference: docs/options.md"]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------------------
# I/O: Locust's parser, the --list-options action and the generator command


def locust_own_options() -> set[str]:
    """The option strings Locust declares itself (its parser before any ``init_command_line_parser`` listener)."""
    from locust.argument_parser import get_empty_argument_parser, setup_parser_arguments

    parser = get_empty_argument_parser(add_help=True, default_config_files=[])
    setup_parser_arguments(parser)  # type: ignore[no-untyped-call]  # unannotated in Locust
    return {s for action in parser._actions for s in action.option_strings}


def reference_parser(locustfile: Path = LOCUSTFILE) -> argparse.ArgumentParser:
    """Locust's full parser as ``locust -f LOCUSTFILE`` builds it: the locustfile is imported first (its imports
    register the suite's ``init_command_line_parser`` listeners), then :func:`locust.argument_parser.get_parser`."""
    import locust  # noqa: F401  (first: it monkey-patches gevent)
    from locust.argument_parser import get_parser
    from locust.util.load_locustfile import load_locustfile

    load_locustfile(str(locustfile))
    return get_parser(default_config_files=[])


class ListOptionsAction(argparse.Action):
    """``--list-options``: print every suite option grouped, with env var, default and one line, and exit 0."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        kwargs.setdefault("nargs", 0)
        kwargs.setdefault("default", False)
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: str | None = None) -> None:
        sys.stdout.write(render_text(suite_options(parser, locust_own_options())))
        sys.stdout.flush()
        sys.exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    cli = argparse.ArgumentParser(prog="python -m config.options_reference", description=__doc__.split("\n")[0])
    cli.add_argument("--write", action="store_true", help=f"write {OPTIONS_MD.relative_to(REPO_ROOT)} instead of "
                     "printing it")
    cli.add_argument("--text", action="store_true", help="print the plain-text list (what --list-options prints)")
    cli.add_argument("-f", "--locustfile", type=Path, default=LOCUSTFILE, help="locustfile (default: the suite's)")
    args = cli.parse_args(argv)
    options = suite_options(reference_parser(args.locustfile), locust_own_options())
    text = render_text(options) if args.text else render_markdown(options)
    if args.write:
        OPTIONS_MD.write_text(text, encoding="utf-8")
        print(f"wrote {OPTIONS_MD.relative_to(REPO_ROOT)} ({len(options)} options)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
