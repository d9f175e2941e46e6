"""Load and validate SLA threshold profiles (TOML, pure: no Locust, no I/O besides reading the file).

A profile is one TOML file, ``config/<name>.toml``::

    description = "what this profile is for"
    extends = "local"          # optional: inherit another profile of the same folder; a metric listed here
                               # replaces the parent's thresholds for that metric
    window_s = 300             # optional: also judge every threshold per window of this many seconds (soak)
    eval_interval_s = 5        # optional: live evaluation period
    warmup_s = "30s"           # optional: keep the run's first seconds out of the verdict (--sla-warmup overrides)

    # 95 % of chat replies must arrive within 2 s
    [[thresholds."WS agent_completed"]]
    expression = "p(95) < 2000"
    description = "95 % of chat replies arrive within 2 s"
    abort_on_fail = false      # stop the run as soon as it fails (after delay_abort_eval)
    delay_abort_eval = "10s"   # grace period before abort_on_fail may act ("10s", "1m", or seconds)
    required = false           # no samples at all -> fail instead of "no data"

    [thresholds]
    "REDIS *" = ["p(95) < 50"] # short form: a list of expressions
    "WS connect" = ["p(95) < 1000", "p(95) <= baseline * 1.10"]   # a regression line (docs/sla.md): judged
                               # against --sla-baseline, kept in ``Profile.regressions``

Metric names are ``"TYPE name"``, as the SLA collector keys Locust's samples (``f"{request_type} {name}"``): the
suite's own (docs/protocol.md, checked against their known names) or any other a run emits (``GET /api/x`` from
Locust's HttpUser, a custom event); a glob ``*``/``?`` is allowed. Every error is a
:class:`ConfigError` naming the file, the key, the bad value and what was expected.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from config import CONFIG_DIR
from config.durations import parse_duration
from config.errors import UsageError
from config.toml_file import read_toml
from contract.isolation import ISOLATION_LEVELS, RETRYABLE_SQLSTATES
from contract.schema import CH_QUERIES, PG_QUERIES
from sla_checks.baseline import RegressionSpec
from sla_checks.evaluate import ThresholdSpec
from sla_checks.expressions import ExpressionError, Regression, parse_line

__all__ = [
    "CONFIG_DIR",
    "ConfigError",
    "Profile",
    "load_profile",
    "profile_path",
    "available_profiles",
    "validate_metric",
    "parse_duration",
    "KNOWN_METRICS",
]

REQUEST_TYPES = ("WS", "FLOW", "REDIS", "PG", "CH", "HTTP")
_WS_EVENTS = ("agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed")
_WS_NAMES = (
    "connect",
    *_WS_EVENTS,
    *(f"{e} (intended)" for e in _WS_EVENTS),  # open-model latency from the intended send time
    "events missing",
    "hang",  # how a message failed: hung, timed out, or answered with an error frame
    "timeout",
    "error",
    "heartbeat",
    "disconnect",
    "reconnect",  # a planned reconnect (the server closed with nothing in flight, or --ws-max-age)
    "heartbeat recovery",  # lost heartbeats (connection closed) -> the first pong on a new connection
    "protocol anomaly",
    "generator lag",
    "recovery",  # after a scenario step lowers the demand: the drop to the user's first reply within 2 s again
)
_HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
_TOP_KEYS = {"description", "extends", "window_s", "eval_interval_s", "warmup_s", "thresholds"}
_ITEM_KEYS = {"expression", "description", "abort_on_fail", "delay_abort_eval", "required"}
_REGRESSION_KEYS = {"expression", "description"}


def _known_metrics() -> dict[str, tuple[str, ...]]:
    pg, ch = tuple(PG_QUERIES), tuple(CH_QUERIES)
    return {
        "WS": _WS_NAMES,
        "FLOW": ("login→send→receive",),
        "PG": ("connect", "pool acquire", "commit", "lock stats", "schema", *pg,
               *(f"txn {level}" for level in ISOLATION_LEVELS), *RETRYABLE_SQLSTATES.values()),
        "CH": ("connect", "insert", "schema", *ch, *(f"query {q}" for q in ch)),
    }


KNOWN_METRICS: dict[str, tuple[str, ...]] = _known_metrics()
QUERY_FILE_PREFIX = "query "
"""PG and CH names that start so are open: the queries of ``--pg-queries`` / ``--clickhouse-queries`` files
(``PG query <name>``, ``CH query <name>``), whose names only the run knows."""
"""Closed name sets per request type of the suite; REDIS (command names) and HTTP (paths, ``ready:<tier>``) are
open; other request types (HTTP methods, custom events) are not checked."""

_REDIS_NAME = re.compile(r"^(connect|pool acquire|[A-Z][A-Z0-9_]*( [A-Z][A-Z0-9_]*)*( [a-z0-9_ ]+)?)$")
"""``connect``, ``pool acquire``, a command (``GET``, ``CLIENT PAUSE``) optionally qualified (``SET large``)."""
_HTTP_NAME = re.compile(r"^(/\S*|ready:[a-z]+)$")


class ConfigError(UsageError, ValueError):
    """A bad SLA profile or SLA option; the message names the file or option, the key, the bad value and what was
    expected (exit 2 at start)."""


@dataclass
class Profile:
    """A loaded threshold profile."""

    name: str
    path: str
    description: str = ""
    window_s: float = 0.0
    eval_interval_s: float = 5.0
    warmup_s: float = 0.0
    thresholds: list[ThresholdSpec] = field(default_factory=list)
    regressions: list[RegressionSpec] = field(default_factory=list)
    """Regression lines (``p(95) <= baseline * 1.10``), judged only against ``--sla-baseline``."""


def profile_path(name: str, config_dir: Path | str = CONFIG_DIR) -> Path:
    return Path(config_dir) / f"{name}.toml"


def available_profiles(config_dir: Path | str = CONFIG_DIR) -> list[str]:
    return sorted(p.stem for p in Path(config_dir).glob("*.toml"))


def _query_file_name(name: str, is_glob: bool) -> bool:
    """Whether ``name`` is (or, as a glob, may match) a query file's ``query <name>``."""
    if not is_glob:
        return name.startswith(QUERY_FILE_PREFIX) and bool(name[len(QUERY_FILE_PREFIX):].strip())
    literal = re.split(r"[*?\[]", name, maxsplit=1)[0]
    return literal.startswith(QUERY_FILE_PREFIX) or QUERY_FILE_PREFIX.startswith(literal)


def validate_metric(metric: str) -> str | None:
    """None if ``metric`` is a well-formed ``"TYPE name"`` (a glob allowed), else what was expected.

    Any request type a run can emit is accepted (Locust's HttpUser: ``GET /api/x``; a custom event:
    ``MyType my_name``). The suite's own types are checked precisely, to catch typos: WS, FLOW, PG and CH names come
    from closed sets (docs/protocol.md), REDIS names are command names, HTTP names are paths; a type that differs from
    one of them only in case (``ws connect``), or an HTTP method in lower case (``get /x``), is refused too."""
    example = "e.g. 'WS agent_completed', 'GET /api/items' or 'MyEvent my_name'"
    if not isinstance(metric, str) or not metric.strip():
        return f"a metric 'TYPE name': a request type, a space and a name ({example})"
    if metric != metric.strip() or " " not in metric or any(c in metric for c in "\t\r\n"):
        return f"a metric 'TYPE name': a request type, one space and a name, no surrounding blanks ({example})"
    rtype, name = metric.split(" ", 1)
    if not rtype or not name.strip():
        return f"a metric 'TYPE name': a request type, one space and a name ({example})"
    if rtype not in REQUEST_TYPES and rtype.upper() in REQUEST_TYPES:
        return f"the request type in upper case: {rtype.upper()!r} (the suite's types: {', '.join(REQUEST_TYPES)})"
    if rtype != rtype.upper() and rtype.upper() in _HTTP_METHODS:
        return f"the HTTP method in upper case: {rtype.upper()!r} (Locust's HttpUser emits it so)"
    if rtype not in REQUEST_TYPES:
        return None  # another request type (an HTTP method, a custom event): whatever the run emits
    is_glob = any(c in name for c in "*?[")
    if rtype in ("PG", "CH") and _query_file_name(name, is_glob):
        return None
    if rtype in KNOWN_METRICS:
        known = KNOWN_METRICS[rtype]
        files = {"PG": " or 'query <name>' of a --pg-queries file", "CH": " or 'query <name>' of a "
                 "--clickhouse-queries file"}.get(rtype, "")
        if is_glob:
            if not any(fnmatch.fnmatchcase(n, name) for n in known):
                return f"a glob matching at least one {rtype} metric name ({', '.join(known)}){files}"
        elif name not in known:
            guess = difflib.get_close_matches(name, known, n=1)
            hint = f" (did you mean {rtype} {guess[0]}?)" if guess else ""
            return f"a {rtype} metric name, one of: {', '.join(known)}{files}{hint}"
        return None
    if is_glob:
        return None
    if rtype == "REDIS" and not _REDIS_NAME.match(name):
        return "a Redis command name in upper case (GET, SET, SET large, ...), 'connect' or 'pool acquire'"
    if rtype == "HTTP" and not _HTTP_NAME.match(name):
        return "an HTTP path starting with '/' (e.g. '/health') or 'ready:<tier>'"
    return None


def _read(path: Path, where: str) -> dict[str, Any]:
    return read_toml(
        path, f"SLA config file {str(path)!r}", "give a TOML file like config/ci.toml", ConfigError,
        missing=f"{where}: SLA config file {str(path)!r} does not exist; available profiles in {path.parent}:"
        f" {', '.join(available_profiles(path.parent)) or 'none'} (use --sla-profile NAME or --sla-config FILE)",
    )


def _thresholds(path: Path, table: Any) -> dict[str, list[ThresholdSpec | RegressionSpec]]:
    f = str(path)
    if not isinstance(table, dict):
        raise ConfigError(
            f"{f}: key 'thresholds' must be a table of metric = [expressions] (got {type(table).__name__})"
        )
    out: dict[str, list[ThresholdSpec | RegressionSpec]] = {}
    for metric, items in table.items():
        key = f"thresholds.{metric!r}".replace("'", '"')
        problem = validate_metric(metric)
        if problem:
            raise ConfigError(f"{f}: key {key}: unknown metric {metric!r}; expected {problem}")
        if isinstance(items, str | dict):
            items = [items]
        if not isinstance(items, list) or not items:
            raise ConfigError(
                f"{f}: key {key} must be a non-empty list of expressions or [[{key}]] tables (got {items!r})"
            )
        specs: list[ThresholdSpec | RegressionSpec] = []
        for i, item in enumerate(items):
            ikey = f"{key}[{i}]"
            if isinstance(item, str):
                item = {"expression": item}
            if not isinstance(item, dict):
                raise ConfigError(f"{f}: key {ikey}: expected an expression string or a table, got {item!r}")
            unknown = set(item) - _ITEM_KEYS
            if unknown:
                raise ConfigError(
                    f"{f}: key {ikey}: unknown key(s) {', '.join(sorted(unknown))}; expected only"
                    f" {', '.join(sorted(_ITEM_KEYS))}"
                )
            if "expression" not in item:
                raise ConfigError(
                    f"{f}: key {ikey}: missing 'expression' (e.g. expression = \"p(95) < 2000\")"
                )
            try:
                expr = parse_line(item["expression"])
            except ExpressionError as e:
                raise ConfigError(f"{f}: key {ikey}.expression: {e}") from None
            if isinstance(expr, Regression):
                specs.append(_regression(f, ikey, metric, expr, item, path))
                continue
            for flag in ("abort_on_fail", "required"):
                if flag in item and not isinstance(item[flag], bool):
                    raise ConfigError(f"{f}: key {ikey}.{flag} = {item[flag]!r}: expected true or false")
            if "description" in item and not isinstance(item["description"], str):
                raise ConfigError(f"{f}: key {ikey}.description = {item['description']!r}: expected a string")
            try:
                delay = parse_duration(item.get("delay_abort_eval", 0))
            except ValueError as e:
                raise ConfigError(
                    f"{f}: key {ikey}.delay_abort_eval = {item['delay_abort_eval']!r}: {e}"
                ) from None
            specs.append(
                ThresholdSpec(
                    metric=metric,
                    expression=expr,
                    description=item.get("description", ""),
                    abort_on_fail=item.get("abort_on_fail", False),
                    delay_abort_eval_s=delay,
                    required=item.get("required", False),
                    source=f"{path.name}: {ikey}",
                )
            )
        out[metric] = specs
    return out


def _regression(f: str, ikey: str, metric: str, reg: Regression, item: dict[str, Any], path: Path) -> RegressionSpec:
    """A regression line of the profile: only ``expression`` and ``description`` apply to it."""
    unknown = set(item) - _REGRESSION_KEYS
    if unknown:
        raise ConfigError(
            f"{f}: key {ikey}: {', '.join(sorted(unknown))} does not apply to a regression line ({reg}); expected only"
            f" {', '.join(sorted(_REGRESSION_KEYS))}"
        )
    if "description" in item and not isinstance(item["description"], str):
        raise ConfigError(f"{f}: key {ikey}.description = {item['description']!r}: expected a string")
    return RegressionSpec(metric=metric, regression=reg, description=item.get("description", ""),
                          source=f"{path.name}: {ikey}")


def load_profile(
    name: str | None = None,
    path: str | Path | None = None,
    config_dir: str | Path = CONFIG_DIR,
    _chain: tuple[str, ...] = (),
) -> Profile:
    """Load profile ``name`` from ``config_dir`` or the file ``path`` (which wins); raises :class:`ConfigError`."""
    if path is None:
        if not name:
            raise ConfigError("no SLA profile given: use --sla-profile NAME or --sla-config FILE")
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise ConfigError(
                f"--sla-profile {name!r}: expected a profile name, one of"
                f" {', '.join(available_profiles(config_dir))} (or a file with --sla-config)"
            )
        path = profile_path(name, config_dir)
        where = f"--sla-profile {name!r}"
    else:
        where = f"--sla-config {str(path)!r}"
    path = Path(path)
    data = _read(path, where)
    f = str(path)
    unknown = set(data) - _TOP_KEYS
    if unknown:
        raise ConfigError(
            f"{f}: unknown key(s) {', '.join(sorted(unknown))}; expected only {', '.join(sorted(_TOP_KEYS))}"
            ' (thresholds go under [thresholds] or [[thresholds."TYPE name"]])'
        )
    prof = Profile(name=name or path.stem, path=f)
    by_metric: dict[str, list[ThresholdSpec | RegressionSpec]] = {}
    if "extends" in data:
        parent = data["extends"]
        if not isinstance(parent, str) or not parent:
            raise ConfigError(f"{f}: key extends = {parent!r}: expected the name of another profile")
        if parent in _chain or parent == path.stem:
            raise ConfigError(
                f"{f}: key extends = {parent!r}: circular extends ({' -> '.join((*_chain, parent))})"
            )
        base = load_profile(parent, config_dir=path.parent, _chain=(*_chain, path.stem))
        prof.description, prof.window_s, prof.eval_interval_s, prof.warmup_s = (
            base.description,
            base.window_s,
            base.eval_interval_s,
            base.warmup_s,
        )
        for spec in base.thresholds:
            by_metric.setdefault(spec.metric, []).append(spec)
        for line in base.regressions:
            by_metric.setdefault(line.metric, []).append(line)
    if "description" in data:
        if not isinstance(data["description"], str):
            raise ConfigError(f"{f}: key description = {data['description']!r}: expected a string")
        prof.description = data["description"]
    for key in ("window_s", "eval_interval_s", "warmup_s"):
        if key in data:
            v = data[key]
            try:
                seconds = parse_duration(v)
            except ValueError as e:
                raise ConfigError(f"{f}: key {key} = {v!r}: {e}") from None
            if key == "eval_interval_s" and seconds <= 0:
                raise ConfigError(f"{f}: key {key} = {v!r}: expected a positive number of seconds")
            setattr(prof, key, seconds)
    by_metric.update(_thresholds(path, data.get("thresholds", {})))
    prof.thresholds = [s for specs in by_metric.values() for s in specs if isinstance(s, ThresholdSpec)]
    prof.regressions = [s for specs in by_metric.values() for s in specs if isinstance(s, RegressionSpec)]
    if not prof.thresholds:
        raise ConfigError(f"{f}: no thresholds; expected at least one under [thresholds]")
    return prof
