from __future__ import annotations

from pathlib import Path

import pytest

from sla_checks.profiles import ConfigError, available_profiles, load_profile, parse_duration, validate_metric

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("name", ["local", "ci", "staging", "soak"])
def test_shipped_profiles_load(name):
    prof = load_profile(name)
    names = {s.name for s in prof.thresholds}
    assert "WS agent_completed p(95) < 2000" in names
    assert "WS agent_completed within(2000) >= 95%" in names
    assert "WS agent_completed rps >= 10" in names
    assert "PG * p(95) < 200" in names
    # staging judges a connect's 4 round trips across a network (config/staging.toml says why)
    assert ("REDIS connect p(95) < 250" if name == "staging" else "REDIS connect p(95) < 100") in names
    assert all(s.description for s in prof.thresholds)


def test_profiles_encode_ci_hard_line_staging_required_and_soak_window():
    assert "WS agent_completed max < 3000" in {s.name for s in load_profile("ci").thresholds}
    assert "WS agent_completed max < 3000" not in {s.name for s in load_profile("local").thresholds}
    staging = {s.name: s for s in load_profile("staging").thresholds}
    assert staging["PG * p(95) < 200"].required and staging["REDIS * p(95) < 50"].required
    assert not any(s.required for s in load_profile("local").thresholds)
    assert load_profile("soak").window_s == 300
    assert {"local", "ci", "staging", "soak"} <= set(available_profiles())


def write(tmp_path: Path, text: str, name: str = "p.toml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            '[thresholds]\n"WS agent_completed" = ["p95 < 2000"]',
            ['thresholds."WS agent_completed"[0].expression', "p95 < 2000"],
        ),
        (
            '[thresholds]\n"WS agent_complete" = ["p(95) < 2000"]',
            ["unknown metric 'WS agent_complete'", "did you mean WS agent_completed?"],
        ),
        (
            '[thresholds]\n"agent_completed" = ["p(95) < 2000"]',
            ["unknown metric 'agent_completed'", "a metric 'TYPE name'", "'GET /api/items'"],
        ),
        ('[thresholds]\n"ws agent_completed" = ["p(95) < 2000"]', ["request type in upper case: 'WS'"]),
        ('[thresholds]\n"get /api/x" = ["p(95) < 2000"]', ["HTTP method in upper case: 'GET'"]),
        ('[thresholds]\n"PG zz*" = ["p(95) < 2000"]', ["glob matching at least one PG metric"]),
        ('[thresholds]\n"HTTP health" = ["p(95) < 2000"]', ["HTTP path starting with '/'"]),
        (
            '[[thresholds."WS agent_completed"]]\nexpresion = "p(95) < 1"',
            ["unknown key(s) expresion", "expression"],
        ),
        (
            '[[thresholds."WS agent_completed"]]\nexpression = "p(95) < 1"\nabort_on_fail = "yes"',
            ["abort_on_fail = 'yes'", "true or false"],
        ),
        (
            '[[thresholds."WS agent_completed"]]\nexpression = "p(95) < 1"\ndelay_abort_eval = "soon"',
            ["delay_abort_eval = 'soon'", "'10s'"],
        ),
        ('treshold = 1\n[thresholds]\n"WS agent_completed" = "p(95) < 1"', ["unknown key(s) treshold"]),
        (
            'window_s = "5 minutes"\n[thresholds]\n"WS agent_completed" = "p(95) < 1"',
            ["window_s = '5 minutes'"],
        ),
        ('description = "x"', ["no thresholds"]),
        ("[thresholds\n", ["not valid TOML"]),
        (
            'extends = "nope"\n[thresholds]\n"WS agent_completed" = "p(95) < 1"',
            ["does not exist", "nope.toml"],
        ),
    ],
)
def test_bad_config_error_names_file_key_and_expectation(tmp_path, text, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_profile(path=path)
    msg = str(err.value)
    assert str(path) in msg or "nope.toml" in msg
    for w in expected:
        assert w in msg


def test_unknown_profile_lists_available_ones():
    with pytest.raises(ConfigError) as err:
        load_profile("prod")
    assert "prod" in str(err.value) and "ci" in str(err.value) and "--sla-config" in str(err.value)


def test_extends_inherits_and_overrides_per_metric(tmp_path):
    write(
        tmp_path,
        'window_s = 60\n[thresholds]\n"WS agent_completed" = ["p(95) < 2000", "rps >= 10"]\n"PG *" = "p(95) < 200"',
        "base.toml",
    )
    child = write(
        tmp_path, 'extends = "base"\n[thresholds]\n"WS agent_completed" = ["p(99) < 3000"]', "child.toml"
    )
    prof = load_profile(path=child)
    assert prof.window_s == 60
    assert sorted(s.name for s in prof.thresholds) == ["PG * p(95) < 200", "WS agent_completed p(99) < 3000"]


def test_circular_extends_is_refused(tmp_path):
    write(tmp_path, 'extends = "b"\n[thresholds]\n"WS connect" = "p(95) < 1"', "a.toml")
    write(tmp_path, 'extends = "a"\n[thresholds]\n"WS connect" = "p(95) < 1"', "b.toml")
    with pytest.raises(ConfigError, match="circular"):
        load_profile("a", config_dir=tmp_path)


@pytest.mark.parametrize(
    ("metric", "ok"),
    [
        ("WS agent_completed", True),
        ("WS *", True),
        ("FLOW login→send→receive", True),
        ("PG thread history", True),
        ("REDIS GET", True),
        ("REDIS connect", True),
        ("HTTP /health/ready", True),
        ("HTTP ready:redis", True),
        ("CH agent stage summary", True),
        ("WS", False),
        ("ws connect", False),
        ("REDIS get", False),
        ("REDIS SET large", True),
        ("REDIS pool acquire", True),
        ("PG lock stats", True),
        ("CH query agent stage summary", True),
        ("WS agent_completed (intended)", True),
        ("WS generator lag", True),
        ("HTTP /auth/login", True),
        ("PG lock", False),
        # any other request type a run emits: Locust's HttpUser (method + path or name=), custom events
        ("GET /api/x", True),
        ("POST /api/items/[id]", True),
        ("GET /api/*", True),
        ("MyType my_name", True),
        ("SQL query", True),
        ("* /health", True),
        # malformed, or a typo of the suite's own types
        ("", False),
        ("GET", False),
        ("GET ", False),
        (" GET /x", False),
        ("GET\t/x", False),
        ("get /x", False),
        ("Ws agent_completed", False),
    ],
)
def test_validate_metric(metric, ok):
    assert (validate_metric(metric) is None) is ok


@pytest.mark.parametrize(
    ("value", "seconds"), [(10, 10.0), ("10s", 10.0), ("500ms", 0.5), ("2m", 120.0), ("1h", 3600.0)]
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("profile", ["staging", "soak"])
def test_staging_and_soak_judge_open_model_latency_and_generator_lag_when_present(profile: str) -> None:
    specs = {t.metric: t for t in load_profile(profile).thresholds}
    intended, lag = specs["WS agent_completed (intended)"], specs["WS generator lag"]
    assert (intended.expression.text, lag.expression.text) == ("p(95) < 2000", "p(99) < 100")
    assert not intended.required and not lag.required, "closed-model runs have no such samples: must be no data"
