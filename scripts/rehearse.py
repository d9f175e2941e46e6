"""Rehearse a staging run on this machine: a staging-like network path, then the soak scenario through it.

``scripts/rehearse [--length 3m] [--fault KIND] [--users-file FILE] [--out DIR] [-- LOCUST ARGS...]`` (root).

The path (docs/rehearse.md):

* a network namespace ``wsrehearse`` joined to this one by a veth pair, 198.18.0.1 here and 198.18.0.2 inside
  (RFC 2544's benchmarking range: addresses that exist only on this pair; load goes to 198.18.0.2 only);
* latency on the veth: ``tc netem`` (default 10 ms ± 2 ms each way), or, on a kernel built without netem, the
  relay of ``scripts/netdelay.py`` inside the namespace with the same delay and jitter;
* HAProxy from Debian with its listeners inside the namespace: TLS on 443 with a certificate from a throw-away CA
  (openssl), ``/ws``, ``POST /auth/login`` and ``/health*`` proxied to the reference backend, which runs on this
  side on loopback; an idle timeout (``timeout client/server/tunnel``) and a maximum connection lifetime (HAProxy has
  no setting for it: this script cuts sessions older than the lifetime through HAProxy's runtime API, ``show sess``
  / ``shutdown session``, every 0.5 s);
* Redis 6379, PostgreSQL 5432 and ClickHouse 8123 forwarded by HAProxy ``mode tcp`` frontends at 198.18.0.2 to
  the services on loopback, so the ``staging`` profile's probes run unchanged against the namespace address.

Then ``locust --headless --scenario soak --scenario-duration LEN --sla-profile staging`` with users logging in from
``--users-file`` (default: the reference backend's seeded users), ``--fault KIND`` applied mid-run through the
backend's admin API (on loopback), the reports in the folder it prints; it exits with Locust's exit code (2 for a
bad option of its own, before anything is set up). Everything is torn down on exit, on SIGINT/SIGTERM, and leftovers
of a killed run are removed at the next start.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from config.durations import DURATION_FORMS, parse_duration  # noqa: E402
from contract.faults import FAULT_KINDS, FaultsClient  # noqa: E402

NS = "wsrehearse"
HOST_IF, NS_IF = "wsrh0", "wsrh1"
NET = "198.18.0.0/30"
HOST_ADDR, NS_ADDR = "198.18.0.1", "198.18.0.2"
REHEARSE_NET_ENV = "REHEARSE_NET"
"""Set for the Locust run: the network the staging profile's "this is not staging" guard accepts."""
STATE_FILE = Path("/run/wsrehearse.pids")
TIERS = {"redis": 6379, "pg": 5432, "clickhouse": 8123}
SEED_PASSWORD = "loadtest-password"
SEED_USERS = 100


def say(text: str) -> None:
    print(f"[rehearse] {text}", flush=True)


class UsageError(Exception):
    """A bad option: one line naming it, the value and the fix; exit 2 before anything is set up."""


# ---------------------------------------------------------------------------------------------------------------
# Options (pure)


@dataclass
class Options:
    length_s: float = 180.0
    latency_ms: float = 10.0
    jitter_ms: float = 2.0
    lifetime_s: float = 60.0
    idle_timeout_s: float = 60.0
    ws_max_age: str = "auto"
    fault: str = ""
    fault_at_s: float | None = None
    fault_for_s: float | None = None
    fault_ms: int | None = None
    users_file: str = ""
    backend_think_ms: float | None = None
    out: str = ""
    netem: str = "auto"
    locust_args: list[str] = field(default_factory=list)


def _duration(option: str, text: str, *, zero_ok: bool = False) -> float:
    try:
        value = parse_duration(text)
    except ValueError:
        raise UsageError(f"{option} {text!r} is not a duration: use {DURATION_FORMS}") from None
    if value <= 0 and not zero_ok:
        raise UsageError(f"{option} {text!r} must be more than 0")
    return value


def _ms(option: str, text: str) -> float:
    return _duration(option, text if re.search(r"[a-z]", text) else f"{text}ms", zero_ok=True) * 1000.0


def parse_options(argv: list[str]) -> Options:
    """The options (``--`` ends them: the rest goes to Locust); :class:`UsageError` for a bad one."""
    locust_args: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, locust_args = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="scripts/rehearse", description=__doc__.split("\n\n")[0])
    p.add_argument("--length", default="3m", help="scenario duration (default 3m)")
    p.add_argument("--latency", default="10ms", help="one-way latency of the path (default 10ms)")
    p.add_argument("--jitter", default="2ms", help="jitter of each one-way latency (default 2ms)")
    p.add_argument("--lifetime", default="60s", help="the balancer's maximum connection lifetime (default 60s)")
    p.add_argument("--idle-timeout", default="60s", help="the balancer's idle timeout (default 60s)")
    p.add_argument("--ws-max-age", default="auto",
                   help="passed to locust when it has the option: auto = lifetime - 10 s (or 3/4 of it), "
                        "off = not passed (the balancer's cuts then show in the report), or a duration")
    p.add_argument("--fault", default="", help="reference-backend fault applied mid-run: " + ", ".join(FAULT_KINDS))
    p.add_argument("--fault-at", default="", help="when the fault starts (default: at 40 %% of --length)")
    p.add_argument("--fault-for", default="", help="how long it lasts (default: 20 %% of --length, at most 30s)")
    p.add_argument("--fault-ms", default="", help="the fault's strength in ms (default: the backend's default)")
    p.add_argument("--users-file", default="", help="email,password lines (default: the backend's seeded users)")
    p.add_argument("--backend-think", default="",
                   help="fixed agent think time of the reference backend per message, e.g. 200ms (default: its "
                        "300-600 ms random): reply minus think is then the path plus the tiers")
    p.add_argument("--out", default="", help="report folder (default artifacts/rehearse-<time>)")
    p.add_argument("--netem", default="auto", choices=("auto", "on", "off"),
                   help="latency by tc netem (on), by the scripts/netdelay.py relay (off), or netem when the "
                        "kernel has it (auto, default)")
    try:
        a = p.parse_args(argv)
    except SystemExit as e:
        raise UsageError("see the usage above") from e if e.code else e
    o = Options(locust_args=locust_args, users_file=a.users_file, out=a.out, netem=a.netem)
    o.length_s = _duration("--length", a.length)
    o.latency_ms = _ms("--latency", a.latency)
    o.jitter_ms = _ms("--jitter", a.jitter)
    if o.jitter_ms > o.latency_ms:
        raise UsageError(f"--jitter {a.jitter!r} is larger than --latency {a.latency!r}: keep it at most the latency")
    o.lifetime_s = _duration("--lifetime", a.lifetime)
    o.idle_timeout_s = _duration("--idle-timeout", a.idle_timeout)
    if a.ws_max_age not in ("auto", "off"):
        _duration("--ws-max-age", a.ws_max_age)
    o.ws_max_age = a.ws_max_age
    if a.fault and a.fault not in FAULT_KINDS:
        raise UsageError(f"--fault {a.fault!r} is not a fault kind: use one of {', '.join(FAULT_KINDS)}")
    o.fault = a.fault
    if a.fault_at:
        o.fault_at_s = _duration("--fault-at", a.fault_at, zero_ok=True)
        if o.fault_at_s >= o.length_s:
            raise UsageError(f"--fault-at {a.fault_at!r} is not inside --length {a.length!r}: start it earlier")
    if a.fault_for:
        o.fault_for_s = _duration("--fault-for", a.fault_for)
    if a.fault_ms:
        if not a.fault_ms.isdigit():
            raise UsageError(f"--fault-ms {a.fault_ms!r} is not a whole number of milliseconds, e.g. 3000")
        o.fault_ms = int(a.fault_ms)
    if a.backend_think:
        o.backend_think_ms = _ms("--backend-think", a.backend_think)
    if o.users_file and not Path(o.users_file).is_file():
        raise UsageError(f"--users-file {o.users_file!r} does not exist: give a CSV of email,password lines")
    return o


def ws_max_age_arg(choice: str, lifetime_s: float, supported: bool) -> str | None:
    """The ``--ws-max-age`` value to pass to Locust, in seconds (None: do not pass it)."""
    if choice == "off" or not supported:
        return None
    if choice != "auto":
        return f"{parse_duration(choice):g}"
    age = lifetime_s - 10 if lifetime_s > 40 else lifetime_s * 0.75
    return f"{age:g}"


def fault_plan(o: Options) -> tuple[float, float]:
    """(start, duration) of the mid-run fault in seconds from the start of the run."""
    at = o.fault_at_s if o.fault_at_s is not None else o.length_s * 0.4
    for_s = o.fault_for_s if o.fault_for_s is not None else min(30.0, max(5.0, o.length_s * 0.2))
    return at, for_s


_AGE = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def session_age_s(text: str) -> float | None:
    """HAProxy's ``age=`` of ``show sess`` (``45s``, ``1m12s``, ``2h3m``, ``1d2h``) in seconds."""
    m = _AGE.match(text)
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s


def old_sessions(show_sess: str, frontend: str, max_age_s: float) -> list[str]:
    """Session ids of ``frontend`` at least ``max_age_s`` old in a ``show sess`` output."""
    ids = []
    for line in show_sess.splitlines():
        m = re.match(r"(0x[0-9a-f]+): .*\bfe=(\S+) .*\bage=(\S+)", line)
        if m and m.group(2) == frontend:
            age = session_age_s(m.group(3))
            if age is not None and age >= max_age_s:
                ids.append(m.group(1))
    return ids


def haproxy_config(*, backend_port: int, crt: Path, stats_sock: Path, idle_s: float, relay: bool) -> str:
    """HAProxy's configuration: listeners in the namespace (on its loopback behind the delay relay, else on
    NS_ADDR), servers on this side's loopback."""

    def bind(port: int) -> str:
        addr = f"127.0.0.1:{10000 + port}" if relay else f"{NS_ADDR}:{port}"
        return f"bind {addr} namespace {NS}"

    idle = f"{idle_s:g}s"
    tiers = "".join(
        f"""
frontend {name}
    mode tcp
    {bind(port)}
    timeout client 1h
    default_backend {name}_svc

backend {name}_svc
    mode tcp
    timeout server 1h
    server {name} 127.0.0.1:{port}
"""
        for name, port in TIERS.items()
    )
    return f"""# generated by scripts/rehearse
global
    maxconn 5000
    stats socket {stats_sock} mode 600 level admin
    tune.ssl.default-dh-param 2048

defaults
    mode http
    timeout connect 5s
    timeout http-request 10s
    # the idle timeout: a connection (and a WebSocket tunnel) without traffic this long is closed
    timeout client {idle}
    timeout server {idle}
    timeout tunnel {idle}
    timeout client-fin 1s

frontend wss
    {bind(443)} ssl crt {crt} alpn http/1.1
    http-request deny status 403 if {{ path_beg /admin }}
    default_backend app

backend app
    server app 127.0.0.1:{backend_port}
{tiers}"""


# ---------------------------------------------------------------------------------------------------------------
# The path (I/O)


def run(*argv: str, check: bool = True, ns: bool = False, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    cmd = (["ip", "netns", "exec", NS] if ns else []) + list(argv)
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def kill_recorded() -> None:
    """Stop the processes a previous (killed) run recorded, if they still run."""
    try:
        pids = [int(x) for x in STATE_FILE.read_text().split()]
    except (OSError, ValueError):
        pids = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    STATE_FILE.unlink(missing_ok=True)


def record_pid(pid: int) -> None:
    with STATE_FILE.open("a") as f:
        f.write(f"{pid}\n")


def teardown_path() -> None:
    """Idempotent: the namespace (and with it its veth end and addresses), the host's veth end, the processes."""
    kill_recorded()
    if run("ip", "netns", "pids", NS, check=False).returncode == 0:
        for pid in run("ip", "netns", "pids", NS, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "del", NS, check=False)
    run("ip", "link", "del", HOST_IF, check=False)


def netem(dev: str, o: Options, ns: bool) -> subprocess.CompletedProcess[str]:
    return run("tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", f"{o.latency_ms:g}ms",
               f"{o.jitter_ms:g}ms", check=False, ns=ns)


def setup_path(o: Options) -> bool:
    """The namespace, the veth pair and the latency; True when netem delays the veth, False for the relay."""
    run("ip", "netns", "add", NS)
    run("ip", "link", "add", HOST_IF, "type", "veth", "peer", "name", NS_IF, "netns", NS)
    run("ip", "addr", "add", f"{HOST_ADDR}/30", "dev", HOST_IF)
    run("ip", "link", "set", HOST_IF, "up")
    run("ip", "addr", "add", f"{NS_ADDR}/30", "dev", NS_IF, ns=True)
    run("ip", "link", "set", NS_IF, "up", ns=True)
    run("ip", "link", "set", "lo", "up", ns=True)
    if o.netem == "off" or o.latency_ms == 0:
        return False
    r = netem(HOST_IF, o, ns=False)
    if r.returncode != 0:
        if o.netem == "on":
            raise RuntimeError(f"tc netem failed: {r.stderr.strip()} (the kernel needs sch_netem; try --netem off)")
        say(f"tc netem is not available ({r.stderr.strip()}): latency by the scripts/netdelay.py relay instead")
        return False
    r = netem(NS_IF, o, ns=True)
    if r.returncode != 0:
        raise RuntimeError(f"tc netem in the namespace failed: {r.stderr.strip()}")
    return True


def make_certs(d: Path) -> tuple[Path, Path]:
    """A throw-away CA and a server certificate for NS_ADDR signed by it: (ca.pem, server.pem with its key)."""
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=ws-agent-loadtest rehearsal CA")
    run("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={NS_ADDR}")
    ext = d / "san.cnf"
    ext.write_text(f"subjectAltName=IP:{NS_ADDR},DNS:staging.rehearsal.test\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "2", "-extfile", str(ext))
    pem = d / "server.pem"
    pem.write_text(crt.read_text() + key.read_text())
    os.chmod(pem, 0o600)
    return ca, pem


def wait_tls(ca: Path, deadline_s: float = 15.0) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    end = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection((NS_ADDR, 443), timeout=2) as s, ctx.wrap_socket(s, server_hostname=NS_ADDR):
                return
        except OSError as e:
            if time.monotonic() > end:
                raise RuntimeError(f"HAProxy did not answer TLS on {NS_ADDR}:443 within {deadline_s:g} s: {e}") from None
            time.sleep(0.2)


def haproxy_cmd(sock: Path, command: str) -> str:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(2)
        s.connect(str(sock))
        s.sendall(command.encode() + b"\n")
        chunks = []
        while data := s.recv(65536):
            chunks.append(data)
    return b"".join(chunks).decode(errors="replace")


class LifetimeReaper(threading.Thread):
    """Cuts the balancer's client sessions older than the lifetime (HAProxy has no setting for it)."""

    def __init__(self, sock: Path, lifetime_s: float) -> None:
        super().__init__(daemon=True, name="lifetime-reaper")
        self.sock, self.lifetime_s = sock, lifetime_s
        self.stopped = threading.Event()
        self.cut = 0

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                for sid in old_sessions(haproxy_cmd(self.sock, "show sess"), "wss", self.lifetime_s):
                    haproxy_cmd(self.sock, f"shutdown session {sid}")
                    self.cut += 1
            except OSError:
                continue


def locust_has_option(name: str) -> bool:
    """Whether this tree's locustfile declares ``name`` (read from the generated options reference)."""
    try:
        return f"`{name}`" in (REPO / "docs" / "options.md").read_text()
    except OSError:
        return False


def server_side_p50(start: str, end: str, users: int) -> tuple[int, float | None]:
    """(rows, p50) of the backends' own agent_completed times (``duration_ms``, in ClickHouse) between two ISO
    times. Every reference backend on this machine writes there: rows of other runs make it unusable."""
    ids = ",".join(f"'user-{i:04d}'" for i in range(users))
    query = ("SELECT count(), quantileExact(0.5)(duration_ms) FROM agentchat.agent_state_history "
             f"WHERE event_type = 'agent_completed' AND user_id IN ({ids}) "
             f"AND ts >= parseDateTimeBestEffort('{start}') AND ts <= parseDateTimeBestEffort('{end}') "
             "FORMAT JSONCompact")
    req = urllib.request.Request("http://127.0.0.1:8123/", data=query.encode())
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback)
            rows, value = json.loads(r.read())["data"][0]
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return 0, None
    return int(rows), (float(value) if rows else None)


def backend_completed(log: Path) -> int | None:
    """Messages the backend completed, from its last log line ("backend stopped: N messages completed")."""
    try:
        found = re.findall(r"backend stopped: (\d+) messages completed", log.read_text(errors="replace"))
    except OSError:
        return None
    return int(found[-1]) if found else None


# ---------------------------------------------------------------------------------------------------------------


@dataclass
class Rehearsal:
    o: Options
    work: Path
    out: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    backend: Any = None
    reaper: LifetimeReaper | None = None

    def start(self, argv: list[str], *, ns: bool = False, log: Path) -> subprocess.Popen[Any]:
        cmd = (["ip", "netns", "exec", NS] if ns else []) + argv
        with log.open("ab") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        record_pid(p.pid)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        if self.reaper is not None:
            self.reaper.stopped.set()
        for p in reversed(self.procs):
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    p.wait(5)
        if self.backend is not None:
            self.backend.stop()
        teardown_path()

    def bring_up(self) -> Path:
        """The path; returns the CA file."""
        from reference_backend.process import BackendProcess

        o = self.o
        netem_on = setup_path(o)
        ca, pem = make_certs(self.work)
        think = {} if o.backend_think_ms is None else {"think_min_ms": o.backend_think_ms,
                                                        "think_max_ms": o.backend_think_ms}
        self.backend = BackendProcess.start(self.work, seed_users=SEED_USERS, seed_password=SEED_PASSWORD, **think)
        record_pid(self.backend.pid)
        sock = self.work / "haproxy.sock"
        cfg = self.work / "haproxy.cfg"
        relay = not netem_on and o.latency_ms > 0
        cfg.write_text(haproxy_config(backend_port=self.backend.port, crt=pem, stats_sock=sock,
                                      idle_s=o.idle_timeout_s, relay=relay))
        check = run("haproxy", "-c", "-f", str(cfg), check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c {cfg}: {check.stdout.strip()} {check.stderr.strip()}")
        self.start(["haproxy", "-db", "-f", str(cfg)], log=self.out / "haproxy.log")
        if relay:
            pairs = [f"{NS_ADDR}:{port}=127.0.0.1:{10000 + port}" for port in (443, *TIERS.values())]
            self.start([sys.executable, str(REPO / "scripts" / "netdelay.py"), "--delay-ms", f"{o.latency_ms:g}",
                        "--jitter-ms", f"{o.jitter_ms:g}", *pairs], ns=True, log=self.out / "netdelay.log")
        wait_tls(ca)
        self.reaper = LifetimeReaper(sock, o.lifetime_s)
        self.reaper.start()
        how = "tc netem on the veth" if netem_on else ("the netdelay relay" if relay else "none")
        say(f"path up: wss://{NS_ADDR}/ws → HAProxy (TLS, idle {o.idle_timeout_s:g} s, lifetime "
            f"{o.lifetime_s:g} s) → reference backend 127.0.0.1:{self.backend.port}; latency "
            f"{o.latency_ms:g} ms ± {o.jitter_ms:g} ms each way ({how}); redis/pg/clickhouse at {NS_ADDR}")
        (self.out / "path.json").write_text(json.dumps({
            "ws_url": f"wss://{NS_ADDR}/ws", "latency_ms": o.latency_ms, "jitter_ms": o.jitter_ms,
            "latency_by": how, "backend_think_ms": o.backend_think_ms, "idle_timeout_s": o.idle_timeout_s, "lifetime_s": o.lifetime_s,
            "backend": f"127.0.0.1:{self.backend.port}"}, indent=2))
        return ca

    def users_file(self) -> Path:
        if self.o.users_file:
            return Path(self.o.users_file).resolve()
        f = self.work / "users.csv"
        f.write_text("".join(f"loadtest{i}@example.com,{SEED_PASSWORD}\n" for i in range(SEED_USERS)))
        return f

    def locust_argv(self) -> list[str]:
        o = self.o
        argv = [str(REPO / ".venv" / "bin" / "locust"), "-f", str(REPO / "locustfile.py"), "--headless",
                "--only-summary", "--host", f"wss://{NS_ADDR}/ws", "--users-file", str(self.users_file()),
                "--redis-url", f"redis://{NS_ADDR}:{TIERS['redis']}/0",
                "--pg-dsn", f"postgresql://postgres@{NS_ADDR}:{TIERS['pg']}/test",
                "--clickhouse-url", f"http://{NS_ADDR}:{TIERS['clickhouse']}",
                "--scenario", "soak", "--scenario-duration", f"{o.length_s:g}s", "--sla-profile", "staging",
                "--sla-report-json", str(self.out / "sla.json"), "--sla-report-html", str(self.out / "sla.html"),
                "--sla-report-junit", str(self.out / "sla.xml")]
        max_age = ws_max_age_arg(o.ws_max_age, o.lifetime_s, locust_has_option("--ws-max-age"))
        if max_age:
            argv += ["--ws-max-age", max_age]
        elif o.ws_max_age != "off":
            say("this tree's locustfile has no --ws-max-age: the balancer's lifetime cuts will show as disconnects")
        if locust_has_option("--ws-ca-file"):
            argv += ["--ws-ca-file", str(self.work / "ca.pem")]
        return argv + o.locust_args

    def rehearse(self) -> int:
        o = self.o
        ca = self.bring_up()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOCUST_", "JWT_", "TARGET_"))}
        env.update(SSL_CERT_FILE=str(ca), **{REHEARSE_NET_ENV: NET}, PYTHONUNBUFFERED="1")
        argv = self.locust_argv()
        say("running: " + " ".join(argv[argv.index("--headless"):]))
        with (self.out / "locust.log").open("ab") as log:
            locust = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        record_pid(locust.pid)
        self.procs.append(locust)
        fault_timer = self._schedule_fault() if o.fault else None
        try:
            code = locust.wait(o.length_s + 180)
        except subprocess.TimeoutExpired:
            say(f"locust did not end within {o.length_s + 180:g} s: stopping it")
            os.killpg(locust.pid, signal.SIGTERM)
            code = locust.wait(30)
        finally:
            if fault_timer is not None:
                fault_timer.cancel()
        self._summary(code)
        return code

    def _schedule_fault(self) -> threading.Timer:
        o = self.o
        at, for_s = fault_plan(o)
        client = FaultsClient(self.backend.http_url, self.backend.admin_token, timeout=15)

        def apply() -> None:
            try:
                client.apply(o.fault, ms=o.fault_ms, for_s=for_s)
                say(f"fault {o.fault} applied at +{at:g} s for {for_s:g} s")
            except Exception as e:  # noqa: BLE001 - reported, the run goes on
                say(f"fault {o.fault} could not be applied: {e}")

        timer = threading.Timer(at, apply)
        timer.daemon = True
        timer.start()
        return timer

    def _summary(self, code: int) -> None:
        try:
            report = json.loads((self.out / "sla.json").read_text())
        except (OSError, ValueError):
            report = {}
        reply = (report.get("metrics") or {}).get("WS agent_completed") or {}
        self.backend.stop()  # its last log line counts the messages it completed; it flushes ClickHouse first
        completed = backend_completed(self.backend.log_path)
        rows, server = (server_side_p50(report["started_at"], report["ended_at"], SEED_USERS)
                        if report.get("started_at") and report.get("ended_at") else (0, None))
        path = json.loads((self.out / "path.json").read_text())
        path.update(client_reply_p50_ms=reply.get("p50"), backend_completed=completed, server_rows=rows,
                    lifetime_cuts=self.reaper.cut if self.reaper else 0, exit_code=code,
                    verdict=report.get("verdict"))
        if server is not None and completed is not None and abs(rows - completed) <= max(2, completed // 100):
            path["server_reply_p50_ms"] = server
            if reply.get("p50") is not None:
                path["path_overhead_p50_ms"] = round(reply["p50"] - server, 2)
        elif rows:
            say(f"ClickHouse holds {rows} agent_completed rows of the run's span but this backend completed "
                f"{completed}: another backend shares it, so no server-side p50 is given")
        if self.o.backend_think_ms is not None and reply.get("p50") is not None:
            path["reply_minus_think_p50_ms"] = round(reply["p50"] - self.o.backend_think_ms, 2)
        (self.out / "path.json").write_text(json.dumps(path, indent=2))
        for line in report.get("verdict_reasons", [])[:8]:
            say(line)
        for a in report.get("attribution", [])[:3]:
            say(f"attribution: {a.get('summary')}")
        if "path_overhead_p50_ms" in path:
            say(f"reply p50 {reply['p50']:.1f} ms = backend's own p50 {path['server_reply_p50_ms']:.1f} ms + "
                f"{path['path_overhead_p50_ms']:.1f} ms over the path (round trip {2 * self.o.latency_ms:g} ms)")
        if "reply_minus_think_p50_ms" in path:
            say(f"reply p50 {reply['p50']:.1f} ms = fixed think {self.o.backend_think_ms:g} ms + "
                f"{path['reply_minus_think_p50_ms']:.1f} ms of tiers and path (round trip {2 * self.o.latency_ms:g} ms)")
        say(f"balancer lifetime cuts: {path['lifetime_cuts']}; verdict {report.get('verdict')}, exit code {code}")
        say(f"reports: {self.out}")


def main(argv: list[str] | None = None) -> int:
    try:
        o = parse_options(sys.argv[1:] if argv is None else argv)
    except UsageError as e:
        print(f"scripts/rehearse: error: {e}", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("scripts/rehearse: error: needs root (network namespaces, veth, tc): run it as root", file=sys.stderr)
        return 2
    for tool in ("ip", "tc", "haproxy", "openssl"):
        if not shutil.which(tool):
            print(f"scripts/rehearse: error: {tool} is missing: run scripts/setup as root (it installs HAProxy)",
                  file=sys.stderr)
            return 2
    out = Path(o.out or REPO / "artifacts" / f"rehearse-{time.strftime('%Y%m%d-%H%M%S')}").resolve()
    out.mkdir(parents=True, exist_ok=True)
    work = out / "path"
    work.mkdir(exist_ok=True)
    os.chmod(work, 0o700)
    teardown_path()  # leftovers of a killed run
    rehearsal = Rehearsal(o, work, out)

    def interrupted(signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt(signal.Signals(signum).name)

    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)
    try:
        return rehearsal.rehearse()
    except KeyboardInterrupt as e:
        say(f"interrupted ({e or 'SIGINT'}): tearing the path down")
        return 130
    except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
        detail = getattr(e, "stderr", "") or ""
        say(f"ERROR: {e} {detail.strip()}".strip())
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        rehearsal.stop()
        say("path torn down")


if __name__ == "__main__":
    random.seed()
    sys.exit(main())
