"""wss:// with a self-signed certificate: refused by default with a clear error, accepted with --ws-insecure."""

from __future__ import annotations

import shutil
import subprocess

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest
from locust.env import Environment

from tasks.timeline import OutcomeKind
from tests.integration.test_chat_bad_input import ScriptedServer, five
from users.chat import ChatUser
from users.ws_client import ChatClient
from users.ws_options import ChatSettings

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def self_signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed to make a self-signed certificate")
    d = tmp_path_factory.mktemp("tls")
    key, cert = d / "key.pem", d / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=30)
    return str(key), str(cert)


def _client(url: str, insecure: bool) -> tuple[ChatClient, list[dict]]:
    env = Environment(user_classes=[ChatUser])
    samples: list[dict] = []
    env.events.request.add_listener(lambda **kw: samples.append(kw))
    settings = ChatSettings(heartbeat_interval=0.0, connect_timeout=3.0, insecure=insecure)
    return ChatClient(env, settings, url, user_number=0), samples


def test_self_signed_certificate_is_refused_by_default(self_signed: tuple[str, str]) -> None:
    key, cert = self_signed
    server = ScriptedServer(five, keyfile=key, certfile=cert)
    client, samples = _client(server.url, insecure=False)
    try:
        assert server.url.startswith("wss://")
        assert not client.connect()
    finally:
        client.close()
        server.stop()
    (text,) = [str(s["exception"]) for s in samples if s["name"] == "connect"]
    assert text.startswith("TLS certificate of 127.0.0.1 not trusted") and "--ws-insecure" in text, text


def test_insecure_option_accepts_it_and_the_chat_works(self_signed: tuple[str, str]) -> None:
    key, cert = self_signed
    server = ScriptedServer(five, keyfile=key, certfile=cert)
    client, samples = _client(server.url, insecure=True)
    try:
        assert client.connect()
        (out,) = client.send_and_await(["over tls"])
    finally:
        client.close()
        server.stop()
    assert out.kind is OutcomeKind.COMPLETED and out.failure is None


def test_insecure_option_logs_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    from types import SimpleNamespace

    from users.ws_options import settings_from_options

    with caplog.at_level("WARNING"):
        settings_from_options(SimpleNamespace(ws_insecure=True, jwt_secret="s" * 40), "wss://staging.example.com")
    assert any("NOT verified" in r.getMessage() and "staging.example.com" in r.getMessage() for r in caplog.records)
