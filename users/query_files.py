"""Query files of the PostgreSQL and ClickHouse probes (``--pg-queries FILE``, ``--clickhouse-queries FILE``).

A query file is TOML with one table per query; each query is sampled as ``PG query NAME`` / ``CH query NAME``::

    # the message-flow read a chat message pays on staging
    [queries."thread history"]
    sql = "SELECT role, content FROM messages WHERE thread_id = %s ORDER BY created_at DESC LIMIT %s"
    params = ["t-42", 20]      # optional: a list (positional) or a table (named)
    weight = 3                 # optional, whole number >= 1 (default 1): how often it runs next to the others

    [queries."mark read"]
    sql = "UPDATE threads SET updated_at = now() WHERE id = %(id)s"
    params = { id = "t-42" }
    write = true               # optional (default false): the statement writes; refused with --probe-read-only

Placeholders are the driver's: PostgreSQL (psycopg) ``%s`` with a list, ``%(name)s`` with a table (a literal ``%``
is written ``%%`` when there are params); ClickHouse (HTTP query parameters, server >= 19.17) ``{name:Type}`` with a
table only. A statement is a read when it starts with SELECT, WITH, SHOW or EXPLAIN (after comments and opening
parentheses; ClickHouse also DESCRIBE, EXISTS); any other needs ``write = true``, and a write is refused at start
under ``--probe-read-only``. Reads run in read-only sessions (the server refuses what slipped past the keyword
check, e.g. a data-modifying ``WITH``).

The queries take turns by weight (a smooth weighted round-robin, :class:`QueryFile.pick`), not random draws: in
every cycle of ``sum(weights)`` picks each query runs exactly ``weight`` times, spread out, so a short run measures
every query of the file (a random draw of a weight-1 query among 100 misses it in 100 draws 37 % of the time, and a
threshold on its name would then have nothing to judge).

Every problem is a :class:`QueryFileError`: one line naming the option, the file, the table and the key.

Pure: reads the file, nothing else (no Locust, no driver).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from config.errors import UsageError
from config.toml_file import read_toml

__all__ = ["ProbeQuery", "QueryFile", "QueryFileError", "load_query_file", "refuse_writes", "statement_kind"]

Dialect = Literal["pg", "ch"]
READ_KINDS: dict[str, tuple[str, ...]] = {
    "pg": ("SELECT", "WITH", "SHOW", "EXPLAIN"),
    "ch": ("SELECT", "WITH", "SHOW", "EXPLAIN", "DESCRIBE", "DESC", "EXISTS"),
}
"""First keywords of a read statement per dialect."""
_QUERY_KEYS = ("sql", "params", "weight", "write")
MAX_NAME = 100
MAX_QUERIES = 200
_COMMENT = re.compile(r"\s+|--[^\n]*(\n|$)|/\*.*?\*/|\(", re.S)
_WORD = re.compile(r"[A-Za-z]+")
_PG_PLACEHOLDER = re.compile(r"%(?:\((?P<name>[^)]*)\))?(?P<fmt>.?)", re.S)
_CH_PLACEHOLDER = re.compile(r"\{\s*(?P<name>[A-Za-z_][A-Za-z0-9_]*)\s*:[^{}]+\}")
_NAME_BAD = re.compile(r"[\x00-\x1f\x7f]")


class QueryFileError(UsageError, ValueError):
    """A query file that cannot be used: the text names the option, the file, the table, the key and the fix."""


@dataclass(frozen=True)
class ProbeQuery:
    """One query of a query file."""

    name: str
    """Its table name: the metric is ``PG query <name>`` / ``CH query <name>``."""
    sql: str
    params: tuple[Any, ...] | dict[str, Any] | None = None
    """Positional (list in the file), named (table) or none."""
    weight: int = 1
    write: bool = False
    """Declared a write (``write = true``): runs in a read-write session, refused under ``--probe-read-only``."""
    kind: str = "SELECT"
    """The statement's first keyword, upper case."""

    @property
    def metric_name(self) -> str:
        """The sample name under the probe's request type (``query <name>``)."""
        return f"query {self.name}"


@dataclass(frozen=True)
class QueryFile:
    """The queries of one file, in file order."""

    path: str
    option: str
    queries: tuple[ProbeQuery, ...]
    _turns: dict[bool, list[int]] = field(default_factory=dict, init=False, repr=False, compare=False, hash=False)
    """The round-robin's running scores per pool (all queries / reads only), one per query of the pool."""

    @property
    def writes(self) -> tuple[ProbeQuery, ...]:
        return tuple(q for q in self.queries if q.write)

    def pick(self, *, read_only: bool = False) -> ProbeQuery | None:
        """The next query by weight (only reads when ``read_only``); None when nothing may run.

        Smooth weighted round-robin (nginx's): every query's score grows by its weight, the highest score runs (the
        first in file order on a tie) and loses the pool's total weight. Each cycle of ``sum(weights)`` picks runs
        every query ``weight`` times, interleaved (weights 2 and 1: a a b a a b ..., not a a a a b b). One cycle per
        process (the probe users of a process share it), per pool."""
        pool = [q for q in self.queries if not (read_only and q.write)]
        if not pool:
            return None
        scores = self._turns.get(read_only)  # no yield from here to the return: one greenlet at a time
        if scores is None:
            scores = self._turns[read_only] = [0] * len(pool)
        best = 0
        for i, q in enumerate(pool):
            scores[i] += q.weight
            if scores[i] > scores[best]:
                best = i
        scores[best] -= sum(q.weight for q in pool)
        return pool[best]


def statement_kind(sql: str) -> str:
    """The first keyword of ``sql`` in upper case, after whitespace, ``--``/``/* */`` comments and ``(``; '' if none."""
    pos = 0
    while True:
        m = _COMMENT.match(sql, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
    word = _WORD.match(sql, pos)
    return word.group(0).upper() if word else ""


def _where(option: str, path: str, name: str | None = None, key: str | None = None) -> str:
    text = f"{option} {path!r}"
    if name is not None:
        text += f": [queries.{_toml_key(name)}]"
    if key is not None:
        text += f" key {key!r}"
    return text


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else '"' + name.replace('"', '\\"') + '"'


def _check_pg_params(where: str, sql: str, params: tuple[Any, ...] | dict[str, Any] | None) -> None:
    if params is None:
        return
    positional, named = 0, set()
    for m in _PG_PLACEHOLDER.finditer(sql):
        if m.group("fmt") == "%" and m.group("name") is None:
            continue
        if m.group("fmt") not in ("s", "b", "t"):
            raise QueryFileError(f"{where}: a '%' that is not a placeholder (%s, %(name)s); with params write a "
                                 "literal % as %%")
        if m.group("name") is None:
            positional += 1
        else:
            named.add(m.group("name"))
    if isinstance(params, tuple):
        if named or positional != len(params):
            raise QueryFileError(f"{where}: {len(params)} positional param(s) but the sql has {positional} %s "
                                 f"placeholder(s){' and named ones' if named else ''}; give one value per %s")
        return
    if positional or named != set(params):
        missing = sorted(named - set(params))
        unused = sorted(set(params) - named)
        detail = "; ".join(filter(None, [
            f"no value for %({', '.join(missing)})s" if missing else "",
            f"not used in the sql: {', '.join(unused)}" if unused else "",
            "the sql mixes %s with named params" if positional else "",
        ]))
        raise QueryFileError(f"{where}: named params must match the sql's %(name)s placeholders ({detail})")


def _check_ch_params(where: str, sql: str, params: tuple[Any, ...] | dict[str, Any] | None) -> None:
    named = {m.group("name") for m in _CH_PLACEHOLDER.finditer(sql)}
    if params is None:
        if named:
            raise QueryFileError(f"{where}: the sql has {{{', '.join(sorted(named))}:Type}} placeholder(s) but no "
                                 "params table; add params = { name = value }")
        return
    if isinstance(params, tuple):
        raise QueryFileError(f"{where}: ClickHouse takes named params only: a table like {{ id = 42 }} used as "
                             "{id:UInt64} in the sql")
    bad = [k for k, v in params.items() if not isinstance(v, (str, int, float, bool))]
    if bad:
        raise QueryFileError(f"{where}: param(s) {', '.join(bad)} must be a string, number or boolean")
    if named != set(params):
        missing, unused = sorted(named - set(params)), sorted(set(params) - named)
        detail = "; ".join(filter(None, [f"no value for {', '.join(missing)}" if missing else "",
                                         f"not used in the sql: {', '.join(unused)}" if unused else ""]))
        raise QueryFileError(f"{where}: params must match the sql's {{name:Type}} placeholders ({detail})")


def _query(option: str, path: str, dialect: Dialect, name: str, table: Any) -> ProbeQuery:
    if not name or name != name.strip() or len(name) > MAX_NAME or _NAME_BAD.search(name):
        raise QueryFileError(f"{_where(option, path, name)}: the query name must be 1-{MAX_NAME} characters, no "
                             "surrounding blanks or control characters (it becomes the metric name)")
    if not isinstance(table, dict):
        raise QueryFileError(f"{_where(option, path, name)}: expected a table with sql = \"...\" (and optional "
                             f"params, weight, write), got a {type(table).__name__}")
    unknown = [k for k in table if k not in _QUERY_KEYS]
    if unknown:
        raise QueryFileError(f"{_where(option, path, name, unknown[0])}: unknown key; a query takes "
                             f"{', '.join(_QUERY_KEYS)}")
    sql = table.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise QueryFileError(f"{_where(option, path, name, 'sql')}: missing or empty; give the statement as a "
                             'string, e.g. sql = "SELECT 1"')
    sql = sql.strip().rstrip(";").strip()
    weight = table.get("weight", 1)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 1000:
        raise QueryFileError(f"{_where(option, path, name, 'weight')}: {weight!r} is not a whole number from 1 to "
                             "1000 (how often it is drawn next to the other queries; default 1)")
    write = table.get("write", False)
    if not isinstance(write, bool):
        raise QueryFileError(f"{_where(option, path, name, 'write')}: {write!r} is not true or false")
    raw = table.get("params")
    params: tuple[Any, ...] | dict[str, Any] | None
    if raw is None:
        params = None
    elif isinstance(raw, list):
        params = tuple(raw)
    elif isinstance(raw, dict):
        params = dict(raw)
    else:
        raise QueryFileError(f"{_where(option, path, name, 'params')}: {raw!r} is neither a list (positional) nor "
                             "a table (named)")
    where = _where(option, path, name, "params")
    (_check_pg_params if dialect == "pg" else _check_ch_params)(where, sql, params)
    kind = statement_kind(sql)
    if not write and kind not in READ_KINDS[dialect]:
        raise QueryFileError(
            f"{_where(option, path, name, 'sql')}: the statement ({kind or 'no keyword'}) is not a read "
            f"({', '.join(READ_KINDS[dialect])}); set write = true on this query to allow it (never with "
            "--probe-read-only)")
    return ProbeQuery(name=name, sql=sql, params=params, weight=weight, write=write, kind=kind)


def load_query_file(path: str, option: str, dialect: Dialect) -> QueryFile:
    """Read and check the query file ``path`` given to ``option``; raises :class:`QueryFileError`."""
    doc = read_toml(path, f"{option} {path!r}", "give a TOML file with [queries.NAME] tables", QueryFileError)
    extra = [k for k in doc if k != "queries"]
    if extra:
        raise QueryFileError(f"{_where(option, path)}: unknown top-level key {extra[0]!r}; the file holds only "
                             "[queries.NAME] tables")
    queries = doc.get("queries")
    if not isinstance(queries, dict) or not queries:
        raise QueryFileError(f"{_where(option, path)}: no [queries.NAME] table; add at least one, e.g. "
                             '[queries.ping] with sql = "SELECT 1"')
    if len(queries) > MAX_QUERIES:
        raise QueryFileError(f"{_where(option, path)}: {len(queries)} queries, at most {MAX_QUERIES}")
    return QueryFile(path=path, option=option,
                     queries=tuple(_query(option, path, dialect, str(n), t) for n, t in queries.items()))


def refuse_writes(qf: QueryFile) -> None:
    """Raise :class:`QueryFileError` naming the first write query of ``qf`` (for ``--probe-read-only``)."""
    for q in qf.writes:
        raise QueryFileError(
            f"{_where(qf.option, qf.path, q.name, 'write')}: a write query ({q.kind}) while --probe-read-only is on; "
            "drop this query from the file, or run without --probe-read-only")
