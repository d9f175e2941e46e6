"""The chat client on real network paths, each against a real server started here on loopback:

* TLS: Debian's HAProxy terminating wss:// and https:// (the login) in front of the reference backend, with a
  certificate from a throw-away CA made by ``openssl``: a wrong CA fails with a clear message, ``--ws-ca-file`` with
  the right CA passes; a frontend that requires a client certificate refuses a client without one (the message says
  so) and takes one with ``--ws-client-cert`` / ``--ws-client-key``;
* proxy: Debian's tinyproxy (HTTP CONNECT) in front of the reference backend, by ``--ws-proxy`` and by
  ``HTTPS_PROXY`` (``NO_PROXY`` honoured), also in front of the HAProxy TLS frontend; a proxy that refuses the port
  is a connect failure naming the proxy;
* permessage-deflate: a ``websockets`` server (in a thread) that negotiates it and sends the five events compressed,
  ``--ws-compression on``; a server that requires an extension the client did not offer gets an error that says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import locust  # noqa: F401  (first: locust monkey-patches gevent)
import pytest

from tasks.timeline import OutcomeKind
from tests.helpers import free_port, wait_until
from tests.integration.test_chat_backend import Recorder, settings_for
from users.auth import LoginTokens, seeded_users
from users.ws_client import ChatClient
from users.ws_codec import Deflate
from users.ws_options import ChatConfigError, ChatSettings, settings_from_options

pytestmark = pytest.mark.timeout(90)

FIVE = ["agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed"]


# --- a throw-away CA --------------------------------------------------------------------------------------------
def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def _make_ca(d: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.pem", "-days", "1", "-subj", f"/CN={name}",
             "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
             cwd=d)


def _issue(d: Path, ca: str, name: str, cn: str, ext: str) -> None:
    (d / f"{name}.ext").write_text(ext + "\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n")
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             f"{name}.key", "-out", f"{name}.csr", "-subj", f"/CN={cn}", cwd=d)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key", "-CAcreateserial",
             "-out", f"{name}.pem", "-days", "1", "-extfile", f"{name}.ext", cwd=d)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is needed for the throw-away CA")
    d = tmp_path_factory.mktemp("pki")
    _make_ca(d, "ca")
    _make_ca(d, "other-ca")
    _issue(d, "ca", "server", "127.0.0.1",
           "subjectAltName=IP:127.0.0.1\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth")
    _issue(d, "ca", "client", "loadtest-client", "keyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth")
    (d / "server-bundle.pem").write_text((d / "server.pem").read_text() + (d / "server.key").read_text())
    return d


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def _start(args: list[str], ports: list[int], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    if not wait_until(lambda: proc.poll() is not None or all(_listening(p) for p in ports), 10):
        proc.kill()
        proc.wait(5)
        pytest.fail(f"{args[0]} did not listen within 10 s: {log.read_text(errors='replace')[-2000:]}")
    if proc.poll() is not None:
        pytest.fail(f"{args[0]} exited {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


# --- HAProxy: TLS termination ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def haproxy(pki: Path, backend: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    exe = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists() else None)
    if exe is None:
        pytest.skip("Debian's haproxy is needed (scripts/setup installs it as root: apt-get install haproxy)")
    d = tmp_path_factory.mktemp("haproxy")
    tls, mtls = free_port(), free_port()
    cfg = d / "haproxy.cfg"
    cfg.write_text(f"""
global
    maxconn 500
defaults
    mode http
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout tunnel 60s
frontend tls
    bind 127.0.0.1:{tls} ssl crt {pki}/server-bundle.pem
    default_backend reference
frontend mtls
    bind 127.0.0.1:{mtls} ssl crt {pki}/server-bundle.pem ca-file {pki}/ca.pem verify required
    default_backend reference
backend reference
    server ref {backend.host}:{backend.port}
""")
    proc = _start([exe, "-db", "-f", str(cfg)], [tls, mtls], d / "haproxy.log")
    try:
        yield SimpleNamespace(tls=tls, mtls=mtls, log=d / "haproxy.log")
    finally:
        _stop(proc)


def _chat(backend: Any, url: str, **settings: Any) -> tuple[Recorder, bool, list[Any]]:
    """One connect and one message over ``url``; (samples, connected, outcomes)."""
    rec = Recorder()
    client = ChatClient(rec.env, settings_for(backend, connect_timeout=5.0, **settings), url, user_number=1)
    try:
        ok = client.connect()
        outcomes = client.send_and_await(["over the network"]) if ok else []
    finally:
        client.close()
    return rec, ok, outcomes


def _connect_failure(rec: Recorder) -> str:
    (text,) = rec.failures("connect")
    return text


def test_a_certificate_from_a_private_ca_is_refused_without_the_ca(pki, haproxy, backend):
    rec, ok, _ = _chat(backend, f"wss://127.0.0.1:{haproxy.tls}/ws", ca_file=str(pki / "other-ca.pem"))
    assert not ok
    text = _connect_failure(rec)
    assert text.startswith("TLS certificate of 127.0.0.1 not trusted") and "--ws-ca-file" in text, text


def test_ws_ca_file_trusts_the_private_ca_for_the_websocket_and_the_login(pki, haproxy, backend):
    ca = str(pki / "ca.pem")
    rec, ok, outcomes = _chat(backend, f"wss://127.0.0.1:{haproxy.tls}/ws", ca_file=ca)
    assert ok, rec.samples
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED], [o.failure for o in outcomes]
    # the login client takes the same CA option (https:// through the same balancer)
    options = SimpleNamespace(ws_ca_file=ca, users_file="", jwt_secret=backend.jwt_secret,
                              ws_login_url=f"https://127.0.0.1:{haproxy.tls}")
    s = settings_from_options(options, f"wss://127.0.0.1:{haproxy.tls}")
    tokens = LoginTokens(s.login_url or "", seeded_users(1, backend.seed_password), ssl_context=s.login_ssl())
    assert tokens.token(0).value
    wrong = settings_from_options(SimpleNamespace(**{**vars(options), "ws_ca_file": str(pki / "other-ca.pem")}),
                                  f"wss://127.0.0.1:{haproxy.tls}")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        LoginTokens(wrong.login_url or "", seeded_users(1, backend.seed_password),
                    ssl_context=wrong.login_ssl()).token(0)


def test_mutual_tls_refuses_a_client_without_a_certificate_and_takes_one_with_it(pki, haproxy, backend):
    url = f"wss://127.0.0.1:{haproxy.mtls}/ws"
    rec, ok, _ = _chat(backend, url, ca_file=str(pki / "ca.pem"))
    assert not ok
    text = _connect_failure(rec)
    assert "requires a client certificate" in text and "--ws-client-cert" in text, text
    rec, ok, outcomes = _chat(backend, url, ca_file=str(pki / "ca.pem"), client_cert=str(pki / "client.pem"),
                              client_key=str(pki / "client.key"))
    assert ok, rec.samples
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED], [o.failure for o in outcomes]


@pytest.mark.parametrize(("option", "make", "fragment"), [
    ("ws_ca_file", lambda d: d / "server.key", "--ws-ca-file"),
    ("ws_ca_file", lambda d: d / "missing.pem", "--ws-ca-file"),
    ("ws_client_cert", lambda d: d / "ca.key", "--ws-client-cert"),
])
def test_a_tls_file_that_cannot_be_loaded_is_a_usage_error_naming_the_option(pki, option, make, fragment):
    options = SimpleNamespace(jwt_secret="s" * 40, **{option: str(make(pki))})
    with pytest.raises(ChatConfigError) as err:
        settings_from_options(options, "wss://staging.example.com")
    assert str(err.value).startswith(fragment), str(err.value)


# --- tinyproxy: HTTP CONNECT ---------------------------------------------------------------------------------------
def _tinyproxy(d: Path, connect_ports: list[int] | None = None) -> tuple[subprocess.Popen[bytes], int, Path]:
    exe = shutil.which("tinyproxy")
    if exe is None:
        pytest.skip("Debian's tinyproxy is needed (scripts/setup installs it as root: apt-get install tinyproxy)")
    port = free_port()
    conf = d / f"tinyproxy-{port}.conf"
    lines = [f"Port {port}", "Listen 127.0.0.1", "Timeout 30", "Allow 127.0.0.1", "MaxClients 50",
             "LogLevel Connect"]
    lines += [f"ConnectPort {p}" for p in connect_ports or []]
    conf.write_text("\n".join(lines) + "\n")
    log = d / f"tinyproxy-{port}.log"
    return _start([exe, "-d", "-c", str(conf)], [port], log), port, log


@pytest.fixture
def tinyproxy(tmp_path: Path) -> Iterator[SimpleNamespace]:
    proc, port, log = _tinyproxy(tmp_path)
    try:
        yield SimpleNamespace(url=f"http://127.0.0.1:{port}", port=port, log=log)
    finally:
        _stop(proc)


def _tunnels(log: Path, port: int) -> int:
    return log.read_text(errors="replace").count(f"CONNECT 127.0.0.1:{port}")


def test_ws_proxy_tunnels_the_websocket_through_tinyproxy(tinyproxy, backend):
    rec, ok, outcomes = _chat(backend, backend.ws_url, proxy=tinyproxy.url)
    assert ok, rec.samples
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED], [o.failure for o in outcomes]
    assert wait_until(lambda: _tunnels(tinyproxy.log, backend.port) >= 1, 5), tinyproxy.log.read_text()


def test_https_proxy_env_tunnels_wss_through_the_balancer_and_no_proxy_bypasses_it(tinyproxy, haproxy, pki,
                                                                                 backend, monkeypatch):
    url = f"wss://127.0.0.1:{haproxy.tls}/ws"
    monkeypatch.setenv("HTTPS_PROXY", tinyproxy.url)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("https_proxy", raising=False)
    rec, ok, outcomes = _chat(backend, url, ca_file=str(pki / "ca.pem"))
    assert ok and outcomes[0].failure is None, rec.samples
    assert wait_until(lambda: _tunnels(tinyproxy.log, haproxy.tls) == 1, 5), tinyproxy.log.read_text()
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    rec, ok, outcomes = _chat(backend, url, ca_file=str(pki / "ca.pem"))
    assert ok and outcomes[0].failure is None, rec.samples
    time.sleep(0.3)
    assert _tunnels(tinyproxy.log, haproxy.tls) == 1  # direct this time


def test_a_proxy_that_refuses_the_port_or_is_down_is_a_connect_failure_naming_it(tmp_path, backend):
    proc, port, _log = _tinyproxy(tmp_path, connect_ports=[443])
    try:
        rec, ok, _ = _chat(backend, backend.ws_url, proxy=f"http://user:hunter2@127.0.0.1:{port}")
    finally:
        _stop(proc)
    assert not ok
    text = _connect_failure(rec)
    assert f"proxy http://***@127.0.0.1:{port} refused CONNECT 127.0.0.1:{backend.port}: HTTP 403" in text, text
    assert "hunter2" not in text
    rec, ok, _ = _chat(backend, backend.ws_url, proxy=f"http://127.0.0.1:{free_port()}")
    assert not ok and _connect_failure(rec).startswith("TCP connect to proxy http://127.0.0.1:"), rec.samples


# --- permessage-deflate against the websockets library ------------------------------------------------------------
class DeflateServer:
    """A ``websockets`` (asyncio) server in a thread speaking just enough of the chat protocol: welcome, then the five
    events per ``user_message``, every frame compressed when the client negotiated permessage-deflate.
    ``require_deflate``: refuse (HTTP 400) a client that does not offer it; ``force_header``: answer a client that
    did not offer it with ``Sec-WebSocket-Extensions: permessage-deflate`` anyway."""

    def __init__(self, *, require_deflate: bool = False, force_header: bool = False) -> None:
        self.require_deflate = require_deflate
        self.force_header = force_header
        self.port = free_port()
        self.extensions: list[str] = []
        self.compressed_in = 0
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def __enter__(self) -> DeflateServer:
        self._thread.start()
        assert self._ready.wait(10), "websockets server did not start"
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    async def _serve(self) -> None:
        from websockets.asyncio.server import serve
        from websockets.datastructures import Headers
        from websockets.http11 import Response

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()

        def process_request(connection: Any, request: Any) -> Any:
            if self.require_deflate and "permessage-deflate" not in request.headers.get("Sec-WebSocket-Extensions",
                                                                                          ""):
                return Response(400, "Bad Request", Headers([("Content-Length", "0")]), b"")
            return None

        def process_response(connection: Any, request: Any, response: Any) -> Any:
            if self.force_header and "Sec-WebSocket-Extensions" not in response.headers:
                response.headers["Sec-WebSocket-Extensions"] = "permessage-deflate"
            return response

        async def handler(ws: Any) -> None:
            self.extensions.extend(type(e).__name__ for e in ws.protocol.extensions)
            await ws.send(json.dumps({"type": "connection_established", "data": {}}))
            async for text in ws:
                frame = json.loads(text)
                if frame.get("type") != "user_message":
                    continue
                ids = {k: frame["payload"][k] for k in ("thread_id", "correlation_id")}
                for kind in FIVE:
                    # padded like a real agent event, so compression has something to do
                    await ws.send(json.dumps({"type": kind, "run_id": "r", **ids,
                                              "data": {"status": kind, "text": "thinking about it " * 20}}))

        subprotocols = None  # any offered jwt subprotocol is fine: select the first

        def select(connection: Any, offered: Any) -> Any:
            return offered[0] if offered else None

        async with serve(handler, "127.0.0.1", self.port, process_request=process_request,
                         process_response=process_response, select_subprotocol=select,
                         subprotocols=subprotocols):
            self._ready.set()
            await self._stop.wait()


def _deflate_chat(url: str, compression: bool) -> tuple[Recorder, bool, list[Any], Any]:
    rec = Recorder()
    settings = ChatSettings(heartbeat_interval=0.0, connect_timeout=3.0, compression=compression)
    client = ChatClient(rec.env, settings, url, user_number=0)
    deflate = None
    try:
        ok = client.connect()
        if ok and client.session is not None:
            deflate = client.session.deflate
        outcomes = client.send_and_await(["compress me " * 10, "and me"]) if ok else []
    finally:
        client.close()
    return rec, ok, outcomes, deflate


def test_permessage_deflate_against_the_websockets_library(monkeypatch):
    inflated: list[int] = []
    real = Deflate.inflate

    def counting(self: Deflate, payload: bytes, max_size: int) -> bytes | None:
        data = real(self, payload, max_size)
        inflated.append(len(data or b"") - len(payload))
        return data

    monkeypatch.setattr(Deflate, "inflate", counting)
    sent: list[int] = []
    real_deflate = Deflate.deflate

    def counting_deflate(self: Deflate, payload: bytes) -> bytes:
        sent.append(len(payload))
        return real_deflate(self, payload)

    monkeypatch.setattr(Deflate, "deflate", counting_deflate)
    with DeflateServer() as server:
        rec, ok, outcomes, deflate = _deflate_chat(server.url, compression=True)
    assert ok, rec.samples
    # the welcome and 2 x 5 events came compressed, each smaller on the wire than inflated
    assert len(inflated) == 11 and all(n > 0 for n in inflated[1:]), inflated
    assert len(sent) == 2  # both user messages went out compressed, and the server read them
    assert server.extensions == ["PerMessageDeflate"] and deflate is not None
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED] * 2, [o.failure for o in outcomes]
    assert not rec.failures("protocol anomaly")


def test_compression_is_off_by_default_and_nothing_is_negotiated():
    with DeflateServer() as server:
        rec, ok, outcomes, deflate = _deflate_chat(server.url, compression=False)
    assert ok and deflate is None and server.extensions == []
    assert [o.kind for o in outcomes] == [OutcomeKind.COMPLETED] * 2


def test_a_server_that_requires_deflate_says_so():
    with DeflateServer(require_deflate=True) as server:
        rec, ok, _, _ = _deflate_chat(server.url, compression=False)
        assert not ok
        text = _connect_failure(rec)
        assert text.startswith("upgrade refused: HTTP 400") and "--ws-compression on" in text, text
        rec, ok, outcomes, _ = _deflate_chat(server.url, compression=True)
    assert ok and outcomes[0].failure is None


def test_a_server_that_answers_with_an_extension_not_offered_says_so():
    with DeflateServer(force_header=True) as server:
        rec, ok, _, _ = _deflate_chat(server.url, compression=False)
    assert not ok
    text = _connect_failure(rec)
    assert "server requires the WebSocket extension permessage-deflate, which the client did not offer" in text, text
    assert "--ws-compression on" in text


def test_proxy_environment_is_read_per_connection() -> None:
    """``proxy_for`` reads the environment each time (a test or a long run may change it)."""
    from users.ws_session import proxy_for

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.lower() in ("https_proxy", "http_proxy", "no_proxy")}
    try:
        assert proxy_for("wss://h.example:443/ws") is None
        os.environ["HTTPS_PROXY"] = "http://p:3128"
        assert proxy_for("wss://h.example/ws") == "http://p:3128"
        assert proxy_for("ws://h.example/ws") == "http://p:3128"  # ws:// falls back to HTTPS_PROXY
        os.environ["NO_PROXY"] = ".example"
        assert proxy_for("wss://h.example/ws") is None
        assert proxy_for("wss://h.example/ws", "http://explicit:1") is None  # NO_PROXY wins over --ws-proxy too
        assert proxy_for("wss://other.test/ws", "http://explicit:1") == "http://explicit:1"
    finally:
        for k in ("HTTPS_PROXY", "NO_PROXY"):
            os.environ.pop(k, None)
        os.environ.update(saved)


def test_the_probes_take_the_ca_file_for_their_tls(pki, haproxy, monkeypatch):
    """An https:// health URL behind the balancer: refused without the private CA, reached with --ws-ca-file."""
    from users.probe_options import ProbeConfig, apply_ca_file, check_health

    for name in ("SSL_CERT_FILE", "PGSSLROOTCERT"):
        monkeypatch.delenv(name, raising=False)
    cfg = ProbeConfig(health_url=f"https://127.0.0.1:{haproxy.tls}")
    with pytest.raises(Exception, match="CERTIFICATE_VERIFY_FAILED"):
        check_health(cfg)
    assert apply_ca_file(SimpleNamespace(ws_ca_file=str(pki / "ca.pem"))) == str(pki / "ca.pem")
    assert os.environ["SSL_CERT_FILE"] == os.environ["PGSSLROOTCERT"] == str(pki / "ca.pem")
    check_health(cfg)
