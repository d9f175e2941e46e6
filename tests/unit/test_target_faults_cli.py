"""The fault CLI's argument handling and the client's error texts (pure: no server involved)."""

from __future__ import annotations

import pytest

from reference_backend.faults import FAULT_KINDS, FaultsClient, FaultsError, main


def test_cli_requires_the_admin_token(monkeypatch, capsys):
    monkeypatch.delenv("TARGET_ADMIN_TOKEN", raising=False)
    assert main(["list"]) == 2
    assert "TARGET_ADMIN_TOKEN" in capsys.readouterr().err


def test_cli_refuses_an_unknown_kind(monkeypatch, capsys):
    monkeypatch.setenv("TARGET_ADMIN_TOKEN", "t0k3n-value")
    assert main(["apply", "redis-explode"]) == 2
    err = capsys.readouterr().err
    assert "redis-explode" in err and "redis-pause" in err and "t0k3n-value" not in err


def test_kinds_lists_every_fault(capsys):
    assert main(["kinds"]) == 0
    out = capsys.readouterr().out
    assert all(k in out for k in FAULT_KINDS)


def test_unreachable_backend_error_names_the_url_not_the_token():
    c = FaultsClient("http://127.0.0.1:9", "s3cr3t-admin", timeout=2)
    with pytest.raises(FaultsError) as e:
        c.list()
    assert "127.0.0.1:9" in str(e.value) and "s3cr3t-admin" not in str(e.value)
