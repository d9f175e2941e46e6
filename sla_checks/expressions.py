"""Parser for the k6-style SLA threshold expressions of docs/sla.md (pure).

Grammar (whitespace free between tokens)::

    expression := statistic operator number [unit]
    statistic  := "p(" number ")" | "within(" number [ "ms" | "s" ] ")"
                | "avg" | "med" | "min" | "max" | "count" | "fail_ratio" | "rps"
    operator   := "<" | "<=" | ">" | ">=" | "==" | "!="
    unit       := "ms" | "s"          (latency statistics; default ms)
                | "%"                 (within / fail_ratio: a percentage; without it a ratio 0..1)

Examples: ``p(95) < 2000``, ``p(99.9) < 3s``, ``avg < 500``, ``med <= 300``, ``max < 15000``, ``count >= 100``,
``fail_ratio < 0.01`` (= ``fail_ratio < 1%``), ``rps >= 10``, ``within(2000) >= 95%`` (share of samples at or
under 2000 ms, failed samples never count as within).

Values are normalised: latencies in ms, ``within`` in percent (0..100), ``fail_ratio`` as a ratio (0..1).
:class:`ExpressionError` names the bad text, the position and what was expected.

A **regression line** compares the run with a baseline run (``--sla-baseline``, docs/sla.md "Baseline regression
gate") instead of a fixed number::

    regression := latency_stat ("<" | "<=") "baseline" [ "*" number ] [ "+" number [ "ms" | "s" ] ]
                | "rps" (">" | ">=") "baseline" [ "*" number ]
    latency_stat := "p(" number ")" | "med"

Examples: ``p(95) <= baseline * 1.10``, ``p(99) <= baseline * 1.1 + 5ms``, ``rps >= baseline * 0.9``.
:func:`parse_line` parses either kind; :func:`parse_expression` only absolute ones.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass

from config.errors import UsageError

__all__ = [
    "COUNT_VALUED_METRICS",
    "Expression",
    "ExpressionError",
    "Regression",
    "parse_expression",
    "parse_line",
    "parse_regression",
    "is_regression_text",
    "STATISTICS",
    "OPERATORS",
    "unit_of",
]

STATISTICS = ("p(N)", "within(MS)", "avg", "med", "min", "max", "count", "fail_ratio", "rps")
OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}

_LATENCY_STATS = ("avg", "med", "min", "max")
_EXPECTED_STAT = "a statistic: p(95), p(99.9), avg, med, min, max, count, fail_ratio, rps or within(2000)"
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


class ExpressionError(UsageError, ValueError):
    """A threshold expression that cannot be parsed; the message names the text and what was expected."""


@dataclass(frozen=True)
class Expression:
    """One parsed threshold expression."""

    text: str
    """The normalised source text, e.g. ``p(95) < 2000``."""
    stat: str
    """``p``, ``within``, ``avg``, ``med``, ``min``, ``max``, ``count``, ``fail_ratio`` or ``rps``."""
    arg: float | None
    """The percentile for ``p``, the limit in ms for ``within``, else None."""
    op: str
    """One of ``OPERATORS``."""
    limit: float
    """Right-hand side, normalised (ms, percent for within, ratio for fail_ratio)."""

    @property
    def unit(self) -> str:
        """Unit of the statistic's value: ms, %, ratio, rps or count."""
        if self.stat == "within":
            return "%"
        if self.stat == "fail_ratio":
            return "ratio"
        if self.stat in ("rps", "count"):
            return self.stat
        return "ms"

    @property
    def lhs(self) -> str:
        """The statistic as written on the left-hand side, e.g. ``p(95)`` (two thresholds with the same lhs on one
        metric judge the same thing; an exact metric's threshold overrides a glob's with the same lhs)."""
        if self.stat == "p":
            return f"p({_fmt(self.arg)})"
        if self.stat == "within":
            return f"within({_fmt(self.arg)})"
        return self.stat

    @property
    def is_latency(self) -> bool:
        return self.stat in ("p", "avg", "med", "min", "max")

    def holds(self, value: float) -> bool:
        """Whether ``value`` (in this expression's unit) satisfies the expression."""
        return OPERATORS[self.op](value, self.limit)

    def __str__(self) -> str:
        return self.text


def _fmt(x: float | None) -> str:
    if x is None:
        return ""
    return str(int(x)) if float(x).is_integer() else repr(float(x))


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip_ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def error(self, expected: str) -> ExpressionError:
        rest = self.text[self.pos :]
        got = f"{rest[:12]!r}" if rest else "the end of the text"
        return ExpressionError(
            f"bad SLA expression {self.text!r}: expected {expected} at position {self.pos + 1}, got {got}"
            f" (examples: 'p(95) < 2000', 'within(2000) >= 95%', 'fail_ratio < 0.01', 'rps >= 10')"
        )

    def take(self, literal: str) -> bool:
        self.skip_ws()
        if self.text.startswith(literal, self.pos):
            self.pos += len(literal)
            return True
        return False

    def number(self, what: str) -> float:
        self.skip_ws()
        m = _NUMBER.match(self.text, self.pos)
        if not m:
            raise self.error(what)
        self.pos = m.end()
        return float(m.group(0))

    def word(self) -> str:
        self.skip_ws()
        m = re.compile(r"[A-Za-z_]+").match(self.text, self.pos)
        if not m:
            return ""
        return m.group(0)


def _statistic(s: _Scanner) -> tuple[str, float | None]:
    """The statistic at the scanner's position: its name and argument (percentile, within's limit in ms)."""
    text = s.text
    word = s.word()
    arg: float | None = None
    if word in ("p", "within"):
        s.pos += len(word)
        if not s.take("("):
            raise s.error(
                f"'(' after {word!r}, as in {word}(95)" if word == "p" else "'(' as in within(2000)"
            )
        arg = s.number("a percentile between 0 and 100" if word == "p" else "a latency limit in ms")
        if word == "p" and not 0 <= arg <= 100:
            s.pos -= 1
            raise ExpressionError(
                f"bad SLA expression {text!r}: percentile {_fmt(arg)} is out of range, expected 0..100"
            )
        if word == "within":
            if s.take("ms"):
                pass
            elif s.take("s"):
                arg *= 1000.0
        if not s.take(")"):
            raise s.error("')'")
    elif word in (*_LATENCY_STATS, "count", "fail_ratio", "rps"):
        s.pos += len(word)
    else:
        raise s.error(_EXPECTED_STAT)
    return word, arg


def _operator(s: _Scanner) -> str:
    s.skip_ws()
    op = next((o for o in OPERATORS if s.text.startswith(o, s.pos)), None)
    if op is None:
        raise s.error("a comparison operator (<, <=, >, >=, ==, !=)")
    s.pos += len(op)
    return op


def parse_expression(text: str) -> Expression:
    """Parse one threshold expression; raises :class:`ExpressionError` on bad input."""
    if not isinstance(text, str):
        raise ExpressionError(f"bad SLA expression {text!r}: expected a string such as 'p(95) < 2000'")
    s = _Scanner(text)
    stat, arg = _statistic(s)
    op = _operator(s)
    if s.word() == "baseline":
        raise ExpressionError(
            f"bad SLA expression {text!r}: a regression line (compared with --sla-baseline) belongs in a profile's"
            " or scenario's thresholds, not here"
        )
    limit = s.number("a number")
    unit = ""
    for u in ("ms", "s", "%"):
        if s.take(u):
            unit = u
            break
    s.skip_ws()
    if s.pos != len(text):
        raise s.error("the end of the expression")
    if unit in ("ms", "s") and stat not in (*_LATENCY_STATS, "p"):
        raise ExpressionError(
            f"bad SLA expression {text!r}: unit {unit!r} only applies to latency statistics"
            f" (p(N), avg, med, min, max); {stat} takes a plain number{' or a %' if stat in ('fail_ratio', 'within') else ''}"
        )
    if unit == "%" and stat not in ("within", "fail_ratio"):
        raise ExpressionError(
            f"bad SLA expression {text!r}: '%' only applies to within(...) and fail_ratio; {stat} takes"
            f" {'a latency in ms' if stat in (*_LATENCY_STATS, 'p') else 'a plain number'}"
        )
    if unit == "s":
        limit *= 1000.0
    if stat == "within":
        if unit != "%":
            if limit > 1:
                raise ExpressionError(
                    f"bad SLA expression {text!r}: within(...) compares a share; write a percentage such as"
                    f" '95%' or a ratio 0..1 such as 0.95 (got {_fmt(limit)})"
                )
            limit *= 100.0
        if limit > 100:
            raise ExpressionError(f"bad SLA expression {text!r}: a share above 100% can never be met")
    if stat == "fail_ratio":
        if unit == "%":
            limit /= 100.0
        if limit > 1:
            raise ExpressionError(
                f"bad SLA expression {text!r}: fail_ratio is a ratio 0..1 (or a percentage with '%'),"
                f" got {_fmt(limit)}"
            )
    norm_unit = {"%": "%", "s": "s", "ms": ""}.get(unit, "")
    lhs = f"{stat}({_fmt(arg)})" if stat in ("p", "within") else stat
    number_text = _NUMBER.findall(text)[-1]
    normalised = f"{lhs} {op} {number_text}{norm_unit}"
    return Expression(text=normalised, stat=stat, arg=arg, op=op, limit=limit)


_REGRESSION_EXAMPLES = "examples: 'p(95) <= baseline * 1.10', 'p(99) <= baseline * 1.1 + 5ms', 'rps >= baseline * 0.9'"


@dataclass(frozen=True)
class Regression:
    """One parsed regression line: the run's statistic against ``factor`` × the baseline's, plus ``slack_ms``."""

    text: str
    """The normalised source text, e.g. ``p(95) <= baseline * 1.1 + 5ms``."""
    stat: str
    """``p`` (``med`` is read as ``p(50)``) or ``rps``."""
    arg: float | None
    """The percentile for ``p``, None for ``rps``."""
    op: str
    """``<`` / ``<=`` for a percentile (a rise is the regression), ``>`` / ``>=`` for ``rps`` (a fall is)."""
    factor: float
    """Multiplies the baseline's value (1.1: may rise 10 %; 0.9: may fall 10 %)."""
    slack_ms: float = 0.0
    """Absolute slack added to a percentile's limit (ms): a 2 ms metric may move by a few ms of noise."""

    @property
    def unit(self) -> str:
        return "rps" if self.stat == "rps" else "ms"

    @property
    def lhs(self) -> str:
        return f"p({_fmt(self.arg)})" if self.stat == "p" else self.stat

    @property
    def is_latency(self) -> bool:
        return self.stat == "p"

    def limit(self, baseline_value: float) -> float:
        """The line's limit for the baseline's value of the statistic."""
        return baseline_value * self.factor + self.slack_ms

    def holds(self, value: float, baseline_value: float) -> bool:
        """Whether ``value`` keeps to the line drawn from ``baseline_value`` (point estimates, no test)."""
        return OPERATORS[self.op](value, self.limit(baseline_value))

    def __str__(self) -> str:
        return self.text


def is_regression_text(text: object) -> bool:
    """Whether ``text`` is written as a regression line (its right-hand side starts with ``baseline``)."""
    return isinstance(text, str) and re.search(r"(<|<=|>|>=|==|!=)\s*baseline\b", text) is not None


def parse_regression(text: str) -> Regression:
    """Parse one regression line (grammar in the module docstring); raises :class:`ExpressionError`."""
    if not isinstance(text, str):
        raise ExpressionError(f"bad regression line {text!r}: expected a string such as 'p(95) <= baseline * 1.10'")
    s = _Scanner(text)
    stat, arg = _statistic(s)
    if stat == "med":
        stat, arg = "p", 50.0
    if stat not in ("p", "rps"):
        raise ExpressionError(
            f"bad regression line {text!r}: a regression line judges p(N), med or rps against the baseline"
            f" ({stat} cannot be compared with a statistical test here); {_REGRESSION_EXAMPLES}"
        )
    op = _operator(s)
    allowed = ("<", "<=") if stat == "p" else (">", ">=")
    if op not in allowed:
        what = "a rise of a latency is the regression: use < or <=" if stat == "p" else (
            "a fall of the throughput is the regression: use > or >=")
        raise ExpressionError(f"bad regression line {text!r}: operator {op!r}: {what}; {_REGRESSION_EXAMPLES}")
    if s.word() != "baseline":
        raise s.error("'baseline'")
    s.pos += len("baseline")
    factor = 1.0
    if s.take("*"):
        factor = s.number("a factor such as 1.10")
        if factor <= 0:
            raise ExpressionError(f"bad regression line {text!r}: the factor must be above 0 (got {_fmt(factor)})")
    slack = 0.0
    if s.take("+"):
        if stat != "p":
            raise ExpressionError(
                f"bad regression line {text!r}: an absolute slack '+ N' applies to a latency line only;"
                f" {_REGRESSION_EXAMPLES}")
        slack = s.number("an absolute slack in ms, e.g. 5ms")
        if s.take("ms"):
            pass
        elif s.take("s"):
            slack *= 1000.0
    s.skip_ws()
    if s.pos != len(text):
        raise s.error("the end of the regression line ('* factor', then '+ slack ms')")
    normalised = f"{_lhs(stat, arg)} {op} baseline"
    if factor != 1.0:
        normalised += f" * {_fmt(factor)}"
    if slack:
        normalised += f" + {_fmt(slack)}ms"
    return Regression(text=normalised, stat=stat, arg=arg, op=op, factor=factor, slack_ms=slack)


def _lhs(stat: str, arg: float | None) -> str:
    """``p(95)`` for a percentile, else the statistic's name."""
    return f"{stat}({_fmt(arg)})" if stat in ("p", "within") else stat


def parse_line(text: str) -> Expression | Regression:
    """A threshold line of a profile or scenario: a regression line (:func:`parse_regression`) when its right-hand
    side is ``baseline``, else an absolute expression (:func:`parse_expression`)."""
    return parse_regression(text) if is_regression_text(text) else parse_expression(text)


COUNT_VALUED_METRICS = frozenset({"BACKEND orphan runs"})
"""Metrics whose samples carry a count in ``response_time`` (the only number a Locust sample has): their latency
statistics are counts, not milliseconds (``users/cleanup_check.py``'s ``BACKEND orphan runs``)."""


def unit_of(expr: Expression, metric: str) -> str:
    """The unit of ``expr``'s value on ``metric``: ``count`` for a latency statistic of a count-valued metric, else
    :attr:`Expression.unit`."""
    unit = expr.unit
    return "count" if unit == "ms" and metric in COUNT_VALUED_METRICS else unit
