"""The secret scanner of the reliability suite finds what it must (counter-proof of test_secrets.py)."""

from __future__ import annotations

import base64
import json
import urllib.parse

import jwt
import pytest

from tests.reliability.helpers import scan_for_secrets

SECRET = "S3cret/with+odd=chars-0123"


@pytest.mark.parametrize("leak", [
    SECRET,
    urllib.parse.quote(SECRET, safe=""),
    urllib.parse.quote_plus(SECRET),
    json.dumps({"k": SECRET + '"'})[7:],
    base64.b64encode(SECRET.encode()).decode(),
    base64.b64encode(b"u:" + SECRET.encode()).decode(),  # HTTP basic auth
    base64.b64encode(b"xy:" + SECRET.encode()).decode(),
    base64.urlsafe_b64encode(b"p=" + SECRET.encode()).decode(),
])
def test_scanner_finds_each_form_of_a_secret(leak: str) -> None:
    assert scan_for_secrets({"log": f"before {leak} after"}, {"s": SECRET})


def test_scanner_finds_a_jwt_and_passes_clean_text() -> None:
    token = jwt.encode({"sub": "user-0001", "exp": 2_000_000_000}, "k" * 32, algorithm="HS256")
    assert scan_for_secrets({"log": f"Authorization: Bearer {token}"}, {})
    assert not scan_for_secrets({"log": "WS agent_completed 200 eyJ-not-a-token"}, {"s": SECRET})
