"""Pure parts of users/probe_base.py: redaction and the timed-call helper (fake clock-free: only event plumbing)."""

from __future__ import annotations

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment
from locust.exception import RescheduleTask, StopUser

from users.probe_base import ProbeFailure, TypedRequestEvent, redact_url, timed

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        ("redis://user:s3cret@h:6379/0", "redis://user:***@h:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        ("postgresql://postgres@127.0.0.1:5432/test", "postgresql://postgres@127.0.0.1:5432/test"),
        ("postgresql://u:p%40ss@h/db?sslmode=require", "postgresql://u:***@h/db?sslmode=require"),
        ("postgresql://u@h/db?password=s3cret&sslmode=x", "postgresql://u@h/db?password=***&sslmode=x"),
        ("host=h user=u password=s3cret dbname=d", "host=h user=u password=*** dbname=d"),
        ("host=h password='with space' dbname=d", "host=h password=*** dbname=d"),
        ("http://default:s3cret@127.0.0.1:8123", "http://default:***@127.0.0.1:8123"),
        ("redis://:s3cret@h:notaport/0", "redis://:***@h:notaport/0"),
        ("", ""),
    ],
)
def test_redact_url_hides_password(url: str, expected: str) -> None:
    assert redact_url(url) == expected
    assert "s3cret" not in redact_url(url)


def _env_with_samples() -> tuple[Environment, list[dict]]:
    env = Environment()
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    return env, samples


def test_timed_success_fires_one_sample_with_length() -> None:
    env, samples = _env_with_samples()
    with timed(env, "REDIS", "GET") as meta:
        meta["response_length"] = 7
    assert len(samples) == 1
    s = samples[0]
    assert (s["request_type"], s["name"], s["response_length"], s["exception"]) == ("REDIS", "GET", 7, None)
    assert s["response_time"] >= 0


def test_timed_exception_becomes_failed_sample_and_is_swallowed() -> None:
    env, samples = _env_with_samples()
    with timed(env, "PG", "thread history"):
        raise ConnectionError("boom")
    assert len(samples) == 1 and isinstance(samples[0]["exception"], ConnectionError)


def test_timed_reraise_true_fires_then_raises() -> None:
    env, samples = _env_with_samples()
    with pytest.raises(ConnectionError), timed(env, "PG", "x", reraise=True):
        raise ConnectionError("boom")
    assert len(samples) == 1


def test_timed_meta_exception_marks_failure_without_raise() -> None:
    env, samples = _env_with_samples()
    with timed(env, "CH", "insert") as meta:
        meta["exception"] = ProbeFailure("bad answer")
    assert str(samples[0]["exception"]) == "bad answer"


@pytest.mark.parametrize("exc", [StopUser(), RescheduleTask()])
def test_timed_control_flow_exceptions_pass_unreported(exc: Exception) -> None:
    env, samples = _env_with_samples()
    with pytest.raises(type(exc)), timed(env, "REDIS", "GET"):
        raise exc
    assert samples == []


def test_typed_request_event_rewrites_type_and_drops_response() -> None:
    env, samples = _env_with_samples()
    TypedRequestEvent(env.events.request, "CH").fire(
        request_type="POST", name="insert", response_time=1.0, response_length=0, exception=None, context={},
        response=object(), url="http://h/?query=x",
    )
    assert samples[0]["request_type"] == "CH" and "response" not in samples[0] and "url" not in samples[0]
