from __future__ import annotations

import pytest

from sla_checks.expressions import ExpressionError, parse_expression

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize(
    ("text", "stat", "arg", "op", "limit", "unit"),
    [
        ("p(95) < 2000", "p", 95.0, "<", 2000.0, "ms"),
        ("p(99.9)<3000", "p", 99.9, "<", 3000.0, "ms"),
        ("p(99) <= 3s", "p", 99.0, "<=", 3000.0, "ms"),
        ("avg < 500", "avg", None, "<", 500.0, "ms"),
        ("med <= 300ms", "med", None, "<=", 300.0, "ms"),
        ("min > 0", "min", None, ">", 0.0, "ms"),
        ("max < 15000", "max", None, "<", 15000.0, "ms"),
        ("count >= 100", "count", None, ">=", 100.0, "count"),
        ("fail_ratio < 0.01", "fail_ratio", None, "<", 0.01, "ratio"),
        ("fail_ratio < 1%", "fail_ratio", None, "<", 0.01, "ratio"),
        ("rps >= 10", "rps", None, ">=", 10.0, "rps"),
        ("within(2000) >= 95%", "within", 2000.0, ">=", 95.0, "%"),
        ("within(2s) >= 0.95", "within", 2000.0, ">=", 95.0, "%"),
        ("  count == 3 ", "count", None, "==", 3.0, "count"),
        ("count != 3", "count", None, "!=", 3.0, "count"),
    ],
)
def test_parse_valid_expression_gives_normalised_parts(text, stat, arg, op, limit, unit):
    e = parse_expression(text)
    assert (e.stat, e.arg, e.op, e.unit) == (stat, arg, op, unit)
    assert e.limit == pytest.approx(limit)
    assert parse_expression(e.text) == e  # the normalised text parses to the same expression


@pytest.mark.parametrize(
    ("text", "expected_words"),
    [
        ("p95 < 2000", ["'('", "p95 < 2000"]),
        ("p(95 < 2000", ["')'"]),
        ("p(95) 2000", ["comparison operator"]),
        ("p(95) < fast", ["a number", "'fast'"]),
        ("p(101) < 1", ["out of range", "0..100"]),
        ("latency < 3", ["a statistic", "p(95)"]),
        ("", ["a statistic", "end of the text"]),
        ("max < 2000 foo", ["end of the expression", "'foo'"]),
        ("rps >= 10%", ["'%' only applies"]),
        ("count > 3ms", ["unit 'ms'"]),
        ("within(2000) >= 95", ["percentage", "95"]),
        ("fail_ratio < 2", ["ratio 0..1"]),
        ("within(2000) >= 101%", ["above 100%"]),
    ],
)
def test_parse_bad_expression_names_text_and_expectation(text, expected_words):
    with pytest.raises(ExpressionError) as err:
        parse_expression(text)
    msg = str(err.value)
    assert repr(text) in msg
    for w in expected_words:
        assert w in msg


@pytest.mark.parametrize(
    ("text", "value", "holds"),
    [
        ("p(95) < 2000", 1999.0, True),
        ("p(95) < 2000", 2000.0, False),
        ("p(95) <= 2000", 2000.0, True),
        ("p(95) <= 2000", 2001.0, False),
        ("rps >= 10", 10.0, True),
        ("rps > 10", 10.0, False),
        ("within(2000) >= 95%", 95.0, True),
        ("within(2000) >= 95%", 94.9, False),
    ],
)
def test_holds_respects_strict_and_inclusive_operators(text, value, holds):
    assert parse_expression(text).holds(value) is holds
