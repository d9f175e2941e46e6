"""The baseline regression gate: the regression-line syntax, the statistical tests on exact histograms (identical runs
pass, a +20 % shift fails, small samples never fail on noise, the false-failure rate on the line itself stays at or
under 5 %), the default lines, the profile loader and scenario composition, the report / JUnit / terminal hook-up
and ``python -m sla_checks compare``."""

from __future__ import annotations

import json
import math
import random
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from scenarios.compose import compose
from scenarios.registry import Scenario, Steady, Threshold, UserMix
from sla_checks.baseline import (
    CONFIDENCE,
    DEFAULT_SLACK_MS,
    NO_BASELINE,
    Baseline,
    BaselineError,
    Gate,
    RegressionSpec,
    baseline_from_report,
    default_lines,
    judge,
    load_baseline,
    regression_verdict,
)
from sla_checks.compare import main as compare_main
from sla_checks.engine import Engine
from sla_checks.evaluate import FAIL, INCONCLUSIVE, NO_DATA, PASS, MetricData, ThresholdSpec
from sla_checks.expressions import ExpressionError, parse_expression, parse_line, parse_regression
from sla_checks.histogram import Histogram
from sla_checks.profiles import ConfigError, load_profile
from sla_checks.report import build_report, render_junit, render_terminal
from sla_checks.significance import binom_cdf, percentile_bounds, percentile_regression, rate_regression

pytestmark = pytest.mark.timeout(60)

T0 = 1_800_000_000.0


def hist(values) -> Histogram:
    h = Histogram()
    h.record_many(values)
    return h


def lognormal(seed: int, n: int, scale: float = 1.0, mu: float = 6.3, sigma: float = 0.3) -> Histogram:
    rnd = random.Random(seed)
    return hist(scale * rnd.lognormvariate(mu, sigma) for _ in range(n))


# --- syntax ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "stat", "arg", "op", "factor", "slack"),
    [
        ("p(95) <= baseline * 1.10", "p", 95.0, "<=", 1.1, 0.0),
        ("p(99)<=baseline*1.1+5ms", "p", 99.0, "<=", 1.1, 5.0),
        ("p(95) < baseline + 0.02s", "p", 95.0, "<", 1.0, 20.0),
        ("med <= baseline * 1.2", "p", 50.0, "<=", 1.2, 0.0),
        ("rps >= baseline * 0.9", "rps", None, ">=", 0.9, 0.0),
        ("rps > baseline", "rps", None, ">", 1.0, 0.0),
    ],
)
def test_regression_lines_parse(text, stat, arg, op, factor, slack):
    reg = parse_line(text)
    assert (reg.stat, reg.arg, reg.op, reg.factor, reg.slack_ms) == (stat, arg, op, factor, slack)
    assert parse_regression(str(reg)) == reg  # the normalised text parses to the same line


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("avg <= baseline * 1.1", "judges p(N), med or rps"),
        ("p(95) >= baseline * 1.1", "a rise of a latency is the regression"),
        ("rps <= baseline * 0.9", "a fall of the throughput is the regression"),
        ("rps >= baseline * 0.9 + 3", "applies to a latency line only"),
        ("p(95) <= baseline * 0", "above 0"),
        ("p(95) <= baseline * 1.1 extra", "the end of the regression line"),
    ],
)
def test_bad_regression_lines_say_what_is_expected(text, fragment):
    with pytest.raises(ExpressionError, match="regression line|bad SLA expression") as e:
        parse_line(text)
    assert fragment in str(e.value)


@pytest.mark.parametrize("text", ["p(95) < 2000", "within(2s) >= 95%", "fail_ratio < 1%", "rps >= 10", "count < 1",
                                  "max < 3000", "med <= 300", "p(99.9) < 3s"])
def test_every_absolute_expression_parses_as_before(text):
    assert parse_line(text) == parse_expression(text)


def test_parse_expression_refuses_a_regression_line_with_a_hint():
    with pytest.raises(ExpressionError, match="regression line"):
        parse_expression("p(95) <= baseline * 1.1")


# --- statistics -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("k", "n", "p"), [(3, 10, 0.3), (18, 20, 0.95), (0, 5, 0.5), (50, 100, 0.5), (940, 1000, 0.95)])
def test_binomial_cdf_matches_the_sum_of_the_pmf(k, n, p):
    exact = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    assert binom_cdf(k, n, p) == pytest.approx(exact, rel=1e-9, abs=1e-12)


def test_percentile_bounds_cover_the_true_percentile_at_their_level():
    true_p95 = math.exp(6.3 + 0.3 * 1.6448536)  # lognormal(6.3, 0.3)
    below = above = 0
    for seed in range(200):
        low, high = percentile_bounds(lognormal(seed, 300), 95, 0.95)
        below += low is not None and low <= true_p95
        above += high is not None and high >= true_p95 - 1  # buckets round up by < 1 ms
    assert below >= 0.93 * 200 and above >= 0.93 * 200, (below, above)


def test_a_small_sample_has_no_upper_bound_for_a_high_percentile():
    assert percentile_bounds(lognormal(1, 50), 99, 0.95)[1] is None


@pytest.mark.parametrize("n", [200, 2000, 5000])
def test_identical_distributions_pass(n):
    for seed in range(10):
        conf = percentile_regression(lognormal(seed, n), lognormal(1000 + seed, n), 95, 1.10, 0.0, False)
        assert conf < CONFIDENCE, (seed, conf)


@pytest.mark.parametrize(("q", "n"), [(95, 5000), (99, 20000)])  # a p(99) rests on a tenth of p(95)'s tail
def test_a_20_percent_shift_fails(q, n):
    for seed in range(5):
        conf = percentile_regression(lognormal(seed, n), lognormal(1000 + seed, n, 1.2), q, 1.10, 0.0, False)
        assert conf >= CONFIDENCE, (seed, conf)


@pytest.mark.parametrize("n", [5, 20, 60])
def test_small_samples_do_not_fail_on_noise(n):
    """Runs of a few samples from one distribution never fail, even a 10 % line (p95 and p99), over 100 seeds."""
    for seed in range(100):
        a, b = lognormal(seed, n), lognormal(5000 + seed, n)
        for q in (95, 99):
            assert percentile_regression(a, b, q, 1.10, 0.0, False) < CONFIDENCE, (n, seed, q)


def test_a_few_ms_of_noise_on_a_fast_metric_stays_within_the_default_slack():
    """A 2 ms Redis-like metric whose samples come back 3 ms slower (a busy loop) does not fail the default line."""
    rnd = random.Random(3)
    a = hist(0.6 + rnd.expovariate(1.5) for _ in range(3000))
    b = hist(3.0 + 0.6 + rnd.expovariate(1.5) for _ in range(3000))
    assert percentile_regression(a, b, 95, 1.10, DEFAULT_SLACK_MS, False) < CONFIDENCE
    assert percentile_regression(a, b, 95, 1.10, 0.0, False) >= CONFIDENCE  # without the slack it would fail


def test_a_run_exactly_on_the_line_fails_in_at_most_5_percent_of_tries():
    """Calibration: the new run's p95 is exactly 1.10 x the baseline's (the boundary of a 10 % line)."""
    failures = sum(
        percentile_regression(lognormal(seed, 1000), lognormal(9000 + seed, 1000, 1.10), 95, 1.10, 0.0, False)
        >= CONFIDENCE
        for seed in range(100)
    )
    assert failures <= 5


def test_throughput_test():
    assert rate_regression(1000, 100.0, 1000, 100.0, 0.9) < 0.05  # the same rate
    assert rate_regression(1000, 100.0, 950, 100.0, 0.9) < CONFIDENCE  # -5 %: within the line
    assert rate_regression(1000, 100.0, 750, 100.0, 0.9) >= CONFIDENCE  # -25 % on many samples
    assert rate_regression(10, 10.0, 7, 10.0, 0.9) < CONFIDENCE  # -30 % on 17 samples: could be chance
    assert rate_regression(1000, 100.0, 500, 50.0, 0.9) < 0.05  # the same rate over half the span
    assert rate_regression(10, 0.0, 10, 10.0, 0.9) is None


# --- default lines and judging ----------------------------------------------------------------------------------------
def _metrics(seed: int, scale: float = 1.0, n: int = 3000, fast_ms: float = 0.0) -> dict[str, MetricData]:
    rnd = random.Random(seed)
    chat, redis = MetricData(), MetricData()
    for _ in range(n):
        chat.record(scale * rnd.lognormvariate(6.3, 0.2), False)
        redis.record(fast_ms + 0.5 + rnd.expovariate(2.0), False)
    return {"WS agent_completed": chat, "REDIS GET": redis}


def _thresholds():
    return [("WS agent_completed", parse_expression("p(95) < 2000")), ("WS agent_completed", parse_expression("rps >= 1")),
            ("REDIS GET", parse_expression("p(95) < 50")), ("WS connect", parse_expression("fail_ratio < 0.01"))]


def test_default_lines_cover_p95_p99_of_latency_metrics_and_the_throughput_of_rps_ones():
    lines = [(r.metric, str(r.regression)) for r in default_lines(_thresholds())]
    assert lines == [
        ("WS agent_completed", "p(95) <= baseline * 1.1 + 5ms"),
        ("WS agent_completed", "p(99) <= baseline * 1.1 + 5ms"),
        ("REDIS GET", "p(95) <= baseline * 1.1 + 5ms"),
        ("REDIS GET", "p(99) <= baseline * 1.1 + 5ms"),
        ("WS agent_completed", "rps >= baseline * 0.9"),
    ]


def _baseline(metrics, duration=100.0, **kw) -> Baseline:
    return Baseline(path="old.json", metrics=metrics, duration_s=duration, **kw)


def test_the_same_run_again_passes_and_a_slower_one_fails_naming_old_new_and_confidence():
    base = _baseline(_metrics(1), profile="ci")
    same = judge(base, [], _metrics(2), 100.0, thresholds=_thresholds(), profile="ci")
    assert same["defaults"] and same["failed"] == 0 and not same["warnings"]
    assert {r["status"] for r in same["lines"]} == {PASS}
    slow = judge(base, [], _metrics(3, scale=1.3), 130.0, thresholds=_thresholds(), profile="ci")
    failing = {(r["metric"], r["expression"]) for r in slow["lines"] if r["status"] == FAIL}
    assert failing == {("WS agent_completed", "p(95) <= baseline * 1.1 + 5ms"),
                       ("WS agent_completed", "p(99) <= baseline * 1.1 + 5ms"),
                       ("WS agent_completed", "rps >= baseline * 0.9")}  # 3000 in 130 s instead of 100 s
    verdict, reasons = regression_verdict(slow, PASS, [])
    assert verdict == FAIL
    p95 = next(r for r in slow["lines"] if r["expression"].startswith("p(95)") and r["metric"] == "WS agent_completed")
    assert p95["new"] > p95["limit"] > p95["old"] and p95["confidence"] >= CONFIDENCE
    line = next(x for x in reasons if "p(95)" in x)
    assert line.startswith("SLA REGRESSION: WS agent_completed p(95) <= baseline * 1.1 + 5ms: ")
    assert "->" in line and "confidence" in line


def test_a_regression_fails_an_inconclusive_verdict_and_keeps_a_failure_s_reasons():
    base = _baseline(_metrics(1))
    slow = judge(base, [], _metrics(3, scale=1.5), 100.0, thresholds=_thresholds())
    assert regression_verdict(slow, INCONCLUSIVE, ["SLA INCONCLUSIVE: x"])[0] == FAIL
    verdict, reasons = regression_verdict(slow, FAIL, ["SLA FAILED: y"])
    assert verdict == FAIL and reasons[0] == "SLA FAILED: y" and len(reasons) > 1
    assert regression_verdict(None, PASS, []) == (PASS, [])


def test_configured_lines_replace_the_defaults_and_globs_expand():
    base = _baseline(_metrics(1))
    section = judge(base, [RegressionSpec.of("REDIS *", "p(95) <= baseline * 1.5")], _metrics(2, fast_ms=3.0), 100.0,
                    thresholds=_thresholds())
    assert not section["defaults"]
    assert [(r["metric"], r["status"]) for r in section["lines"]] == [("REDIS GET", FAIL)]  # +3 ms on ~2 ms


def test_metrics_missing_from_either_run_are_no_baseline_or_no_data():
    old = _metrics(1)
    new = _metrics(2)
    new["WS connect"] = new.pop("REDIS GET")
    section = judge(_baseline(old), [RegressionSpec.of("WS connect", "p(95) <= baseline * 1.1"),
                                     RegressionSpec.of("REDIS GET", "p(95) <= baseline * 1.1")], new, 100.0)
    assert [(r["metric"], r["status"]) for r in section["lines"]] == [("WS connect", NO_BASELINE), ("REDIS GET", NO_DATA)]
    assert section["failed"] == 0


def test_another_profile_or_scenario_or_a_failed_baseline_is_flagged():
    base = _baseline(_metrics(1), profile="local", scenario="smoke", verdict=FAIL)
    warnings = judge(base, [], _metrics(2), 100.0, thresholds=_thresholds(), profile="ci", scenario=None)["warnings"]
    assert any("profile 'local'" in w and "'ci'" in w for w in warnings)
    assert any("scenario 'smoke'" in w and "no scenario" in w for w in warnings)
    assert any("failed its own SLA verdict" in w for w in warnings)


# --- the baseline file ------------------------------------------------------------------------------------------------
def test_a_missing_unreadable_or_percentile_only_baseline_is_a_usage_error(tmp_path: Path):
    for path, fragment in [
        (tmp_path / "nope.json", "no such file"),
        (tmp_path, "is a directory"),
    ]:
        with pytest.raises(BaselineError, match=fragment) as e:
            load_baseline(str(path))
        assert "\n" not in str(e.value) and e.value.exit_code == 2
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(BaselineError, match="not valid JSON"):
        load_baseline(str(bad))
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"schema": "ws-agent-loadtest/sla-report/1", "metrics": {}}), encoding="utf-8")
    with pytest.raises(BaselineError, match="no 'histograms'"):
        load_baseline(str(old))
    with pytest.raises(BaselineError, match="not an SLA JSON report"):
        baseline_from_report([1, 2], "x.json")


def _engine(seed: int, scale: float = 1.0, profile_name: str = "ci", seconds: int = 60) -> Engine:
    rnd = random.Random(seed)
    prof = load_profile(profile_name)
    eng = Engine(prof.thresholds, profile=prof.name, config_file=prof.path)
    eng.start(T0)
    for s in range(seconds):
        for _ in range(40):
            eng.collector.record("WS", "agent_completed", scale * rnd.lognormvariate(6.2, 0.2), False, T0 + s + 0.5)
        eng.collector.record("REDIS", "GET", 0.5 + rnd.random(), False, T0 + s + 0.5)
    eng.flush_local()
    eng.stop(T0 + seconds)
    return eng


def test_a_finished_report_carries_the_histograms_and_serves_as_the_next_run_s_baseline(tmp_path: Path):
    old_report = build_report(_engine(1), T0 + 60)
    assert old_report["histograms"]["WS agent_completed"]["h"]["n"] == 2400
    assert old_report["judged_duration_s"] == 60.0 and old_report["regression"] is None
    live = build_report(_engine(1), T0 + 60, final=False)
    assert live["state"] == "finished"  # a stopped engine's report is finished, live or not
    path = tmp_path / "old.json"
    path.write_text(json.dumps(old_report), encoding="utf-8")
    gate = Gate(load_baseline(str(path)), [])

    same = build_report(_engine(2), T0 + 60, gate=gate)
    assert same["verdict"] == PASS and same["exit_code"] == 0 and same["regression"]["failed"] == 0

    slow = build_report(_engine(3, scale=1.25), T0 + 60, gate=gate)
    assert slow["verdict"] == FAIL and slow["exit_code"] == 3
    assert not any(t["status"] == FAIL for t in slow["thresholds"])  # the absolute thresholds alone would pass
    assert any(r.startswith("SLA REGRESSION: WS agent_completed p(95)") for r in slow["verdict_reasons"])
    text = render_terminal(slow)
    assert "FAIL  WS agent_completed p(95) <= baseline * 1.1 + 5ms:" in text and "confidence" in text
    junit = ET.fromstring(render_junit(slow))
    failures = [f.get("message") for f in junit.iter("failure") if f.get("type") == "SLARegression"]
    assert any(m.startswith("SLA REGRESSION: WS agent_completed p(95)") and "confidence" in m for m in failures)
    json.dumps(slow, allow_nan=False)  # the report stays strict JSON


def test_a_profile_s_regression_lines_are_kept_apart_from_its_thresholds(tmp_path: Path):
    f = tmp_path / "gate.toml"
    f.write_text('[thresholds]\n"WS agent_completed" = ["p(95) < 2000", "p(95) <= baseline * 1.05"]\n'
                 '[[thresholds."REDIS *"]]\nexpression = "p(99) <= baseline * 2 + 3ms"\ndescription = "redis"\n',
                 encoding="utf-8")
    prof = load_profile(path=f)
    assert [str(s.expression) for s in prof.thresholds if s.metric == "WS agent_completed"] == ["p(95) < 2000"]
    assert [(r.metric, str(r.regression), r.description) for r in prof.regressions] == [
        ("WS agent_completed", "p(95) <= baseline * 1.05", ""), ("REDIS *", "p(99) <= baseline * 2 + 3ms", "redis")]
    assert all(isinstance(s, ThresholdSpec) for s in prof.thresholds)
    f.write_text('[thresholds]\n"WS agent_completed" = ["p(95) < 2000"]\n[[thresholds."WS connect"]]\n'
                 'expression = "p(95) <= baseline * 1.1"\nabort_on_fail = true\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="abort_on_fail does not apply to a regression line"):
        load_profile(path=f)
    f.write_text('[thresholds]\n"WS agent_completed" = ["p(95) < 2000", "avg <= baseline"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"thresholds.\"WS agent_completed\"\[1\].expression: bad regression line"):
        load_profile(path=f)


def test_a_scenario_s_regression_lines_join_the_composed_profile():
    scenario = Scenario(
        name="gate", summary="s", seed_tests=(), users=(UserMix("ChatUser", weight=1),), shape=Steady(duration_s=10.0, users=2),
        thresholds=(Threshold("WS agent_completed", "p(95) < 2000"),
                    Threshold("WS agent_completed", "p(95) <= baseline * 1.2")),
    )
    composed = compose(scenario, load_profile("ci")).profile
    assert [(r.metric, str(r.regression), r.source) for r in composed.regressions] == [
        ("WS agent_completed", "p(95) <= baseline * 1.2", "scenario gate")]
    assert all("baseline" not in str(s.expression) for s in composed.thresholds)


# --- compare ----------------------------------------------------------------------------------------------------------
def test_compare_prints_writes_json_and_html_and_exits_3_on_a_regression(tmp_path: Path, capsys):
    old, same, slow = (tmp_path / f"{n}.json" for n in ("old", "same", "slow"))
    old.write_text(json.dumps(build_report(_engine(1), T0 + 60)), encoding="utf-8")
    same.write_text(json.dumps(build_report(_engine(2), T0 + 60)), encoding="utf-8")
    slow.write_text(json.dumps(build_report(_engine(3, scale=1.25), T0 + 60)), encoding="utf-8")
    assert compare_main([str(old), str(same)]) == 0
    assert "regression gate: PASS (exit code 0)" in capsys.readouterr().out
    out_json, out_html = tmp_path / "cmp.json", tmp_path / "cmp.html"
    assert compare_main([str(old), str(slow), "--json", str(out_json), "--html", str(out_html)]) == 3
    text = capsys.readouterr().out
    assert "FAIL  WS agent_completed p(95) <= baseline * 1.1 + 5ms:" in text
    doc = json.loads(out_json.read_text(encoding="utf-8"))
    assert doc["verdict"] == FAIL and doc["exit_code"] == 3 and doc["regression"]["failed"] >= 1
    page = out_html.read_text(encoding="utf-8")
    assert "<script" not in page and "WS agent_completed" in page and "Content-Security-Policy" in page
    f = tmp_path / "lines.toml"
    f.write_text('[thresholds]\n"WS agent_completed" = ["p(95) < 2000", "p(95) <= baseline * 2"]\n', encoding="utf-8")
    assert compare_main([str(old), str(slow), "--sla-config", str(f)]) == 0  # a 2x line holds a 25 % rise


def test_compare_usage_errors_exit_2_with_one_line(tmp_path: Path, capsys):
    assert compare_main([str(tmp_path / "missing.json"), str(tmp_path / "new.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --sla-baseline") and "no such file" in err and "\n" not in err
