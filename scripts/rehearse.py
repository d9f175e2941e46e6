"""Rehearse a staging run on this machine: a staging-like network path, then the soak scenario through it.

``scripts/rehearse [--length 3m] [--fault KIND] [--users-file FILE] [--out DIR] [-- LOCUST ARGS...]`` (root).

The path (docs/rehearse.md):

* a network namespace ``wsrehearse<i>`` joined to this one by a veth pair, 198.18.<i>.1 here and 198.18.<i>.2
  inside (RFC 2544's benchmarking range: addresses that exist only on this pair; load goes to 198.18.<i>.2 only).
  ``<i>`` is the first of 64 slots no other running rehearsal holds, so rehearsals side by side (a CI run beside a
  developer's) never tear down each other's path;
* latency on the veth: ``tc netem`` (default 10 ms ± 2 ms each way), or, on a kernel built without netem, the
  relay of ``scripts/netdelay.py`` inside the namespace with the same delay and jitter;
* HAProxy from Debian with its listeners inside the namespace: TLS on 443 with a certificate from a throw-away CA
  (openssl), ``/ws``, ``POST /auth/login`` and ``/health*`` proxied to the reference backend, which runs on this
  side on loopback; an idle timeout (``timeout client/server/tunnel``) and a maximum connection lifetime (HAProxy has
  no setting for it: this script cuts sessions older than the lifetime through HAProxy's runtime API, ``show sess``
  / ``shutdown session``, every 0.5 s);
* Redis 6379, PostgreSQL 5432 and ClickHouse 8123 forwarded by HAProxy ``mode tcp`` frontends at the namespace
  address to the services on loopback, so the ``staging`` profile's probes run unchanged against the namespace address.

Then ``locust --headless --scenario soak --scenario-duration LEN --sla-profile staging`` with users logging in from
``--users-file`` (default: the reference backend's seeded users), ``--fault KIND`` applied mid-run through the
backend's admin API (on loopback), the reports in the folder it prints; it exits with Locust's exit code (2 for a
bad option of its own, before anything is set up). Everything is torn down on exit, on SIGINT/SIGTERM, and leftovers
of a killed run are removed by the next rehearsal that takes its slot. The backend writes its ClickHouse rows
through ``scripts/rehearse_tap.py``, which keeps its own reply times for the summary.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "scripts"))

from rehearse_tap import ClickHouseTap  # noqa: E402

from config.durations import DURATION_FORMS, parse_duration  # noqa: E402
from contract.faults import FAULT_KINDS, FaultsClient  # noqa: E402
from contract.schema import CH_DATABASE, CH_TABLE  # noqa: E402
from sla_checks.histogram import Histogram  # noqa: E402

REHEARSE_NET_ENV = "REHEARSE_NET"
"""Set for the Locust run: the network the staging profile's "this is not staging" guard accepts."""
SLOTS = 64
"""Rehearsals that can run side by side on one machine (a CI run beside a developer's), each on a path of its own."""
TIERS = {"redis": 6379, "pg": 5432, "clickhouse": 8123}
SEED_PASSWORD = "loadtest-password"
SEED_USERS = 100
SLA_WINDOW_S = 300
"""The soak windows the rehearsal judges: the staging soak's own (the scenario's window scaled down to a 3-minute
run is 4 s, where a probe's one connect sample is a window's whole p95 — stricter than the staging run it
rehearses). ``-- --sla-window N`` after it wins."""
CUT_MARK = "DISCONNECTED"
"""The error code of a message the client ended because its connection closed under it."""


def say(text: str) -> None:
    print(f"[rehearse] {text}", flush=True)


@dataclass(frozen=True)
class Slot:
    """The names and addresses of one rehearsal's path (``index`` < SLOTS): namespace ``wsrehearse<i>``, veth pair
    ``wsrh<i>a`` / ``wsrh<i>b`` and the /30 ``198.18.<i>.0`` (RFC 2544's benchmarking range), 198.18.<i>.1 on this
    side and 198.18.<i>.2 inside; the processes it started are listed in ``/run/wsrehearse<i>.pids``, which the
    running rehearsal holds locked."""

    index: int

    @property
    def ns(self) -> str:
        return f"wsrehearse{self.index}"

    @property
    def host_if(self) -> str:
        return f"wsrh{self.index}a"

    @property
    def ns_if(self) -> str:
        return f"wsrh{self.index}b"

    @property
    def net(self) -> str:
        return f"198.18.{self.index}.0/30"

    @property
    def host_addr(self) -> str:
        return f"198.18.{self.index}.1"

    @property
    def ns_addr(self) -> str:
        return f"198.18.{self.index}.2"

    @property
    def state_file(self) -> Path:
        return Path(f"/run/wsrehearse{self.index}.pids")


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


def haproxy_config(*, slot: Slot, backend_port: int, crt: Path, stats_sock: Path, idle_s: float,
                   relay: bool) -> str:
    """HAProxy's configuration: listeners in the slot's namespace (on its loopback behind the delay relay, else on
    its address), servers on this side's loopback."""

    def bind(port: int) -> str:
        addr = f"127.0.0.1:{10000 + port}" if relay else f"{slot.ns_addr}:{port}"
        return f"bind {addr} namespace {slot.ns}"

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


def run(*argv: str, check: bool = True, ns: str = "", timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """``argv`` (inside the namespace ``ns`` when given)."""
    cmd = (["ip", "netns", "exec", ns] if ns else []) + list(argv)
    return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=timeout)


def claim_slot() -> tuple[Slot, int]:
    """The first slot no running rehearsal holds: its state file locked (the lock ends with this process, also on
    SIGKILL) and whatever a killed rehearsal left in it removed. Returns the slot and the locked file's descriptor
    (kept open for the run). RuntimeError when every slot is taken."""
    import fcntl

    for i in range(SLOTS):
        slot = Slot(i)
        fd = os.open(slot.state_file, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        teardown_path(slot)  # leftovers of a killed run in this slot
        return slot, fd
    raise RuntimeError(f"all {SLOTS} rehearsal slots are taken by running rehearsals (/run/wsrehearse*.pids)")


def kill_recorded(slot: Slot) -> None:
    """Stop the processes recorded in the slot's state file (its rehearsal ended or was killed), then empty it."""
    try:
        pids = [int(x) for x in slot.state_file.read_text().split()]
    except (OSError, ValueError):
        pids = []
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGTERM)
    with contextlib.suppress(OSError):
        os.truncate(slot.state_file, 0)


def record_pid(slot: Slot, pid: int) -> None:
    with slot.state_file.open("a") as f:
        f.write(f"{pid}\n")


def teardown_path(slot: Slot) -> None:
    """Idempotent: the slot's processes, its namespace (and with it its veth end and addresses) and the host's veth
    end. Only for a slot this process holds."""
    kill_recorded(slot)
    if run("ip", "netns", "pids", slot.ns, check=False).returncode == 0:
        for pid in run("ip", "netns", "pids", slot.ns, check=False).stdout.split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(pid), signal.SIGKILL)
        run("ip", "netns", "del", slot.ns, check=False)
    if run("ip", "link", "show", slot.host_if, check=False).returncode == 0:
        run("ip", "link", "del", slot.host_if, check=False)


def netem(dev: str, o: Options, ns: str = "") -> subprocess.CompletedProcess[str]:
    return run("tc", "qdisc", "replace", "dev", dev, "root", "netem", "delay", f"{o.latency_ms:g}ms",
               f"{o.jitter_ms:g}ms", check=False, ns=ns)


def setup_path(slot: Slot, o: Options) -> bool:
    """The namespace, the veth pair and the latency; True when netem delays the veth, False for the relay."""
    ns = slot.ns
    run("ip", "netns", "add", ns)
    run("ip", "link", "add", slot.host_if, "type", "veth", "peer", "name", slot.ns_if, "netns", ns)
    run("ip", "addr", "add", f"{slot.host_addr}/30", "dev", slot.host_if)
    run("ip", "link", "set", slot.host_if, "up")
    run("ip", "addr", "add", f"{slot.ns_addr}/30", "dev", slot.ns_if, ns=ns)
    run("ip", "link", "set", slot.ns_if, "up", ns=ns)
    run("ip", "link", "set", "lo", "up", ns=ns)
    if o.netem == "off" or o.latency_ms == 0:
        return False
    r = netem(slot.host_if, o)
    if r.returncode != 0:
        if o.netem == "on":
            raise RuntimeError(f"tc netem failed: {r.stderr.strip()} (the kernel needs sch_netem; try --netem off)")
        say(f"tc netem is not available ({r.stderr.strip()}): latency by the scripts/netdelay.py relay instead")
        return False
    r = netem(slot.ns_if, o, ns=ns)
    if r.returncode != 0:
        raise RuntimeError(f"tc netem in the namespace failed: {r.stderr.strip()}")
    return True


def make_certs(d: Path, addr: str) -> tuple[Path, Path]:
    """A throw-away CA and a server certificate for ``addr`` signed by it: (ca.pem, server.pem with its key)."""
    ca_key, ca, key, csr, crt = (d / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.crt"))
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run("openssl", "req", "-x509", *ec, "-keyout", str(ca_key), "-out", str(ca), "-days", "2",
        "-subj", "/CN=ws-agent-loadtest rehearsal CA")
    run("openssl", "req", *ec, "-keyout", str(key), "-out", str(csr), "-subj", f"/CN={addr}")
    ext = d / "san.cnf"
    ext.write_text(f"subjectAltName=IP:{addr},DNS:staging.rehearsal.test\nextendedKeyUsage=serverAuth\n")
    run("openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "2", "-extfile", str(ext))
    pem = d / "server.pem"
    pem.write_text(crt.read_text() + key.read_text())
    os.chmod(pem, 0o600)
    return ca, pem


def wait_tls(ca: Path, addr: str, deadline_s: float = 15.0) -> None:
    ctx = ssl.create_default_context(cafile=str(ca))
    end = time.monotonic() + deadline_s
    while True:
        try:
            with socket.create_connection((addr, 443), timeout=2) as s, ctx.wrap_socket(s, server_hostname=addr):
                return
        except OSError as e:
            if time.monotonic() > end:
                raise RuntimeError(f"HAProxy did not answer TLS on {addr}:443 within {deadline_s:g} s: {e}") from None
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
        self.cut_at: list[float] = []
        """Epoch seconds of each cut."""

    def run(self) -> None:
        while not self.stopped.wait(0.5):
            try:
                for sid in old_sessions(haproxy_cmd(self.sock, "show sess"), "wss", self.lifetime_s):
                    haproxy_cmd(self.sock, f"shutdown session {sid}")
                    self.cut += 1
                    self.cut_at.append(time.time())
            except OSError:
                continue


def locust_has_option(name: str) -> bool:
    """Whether this tree's locustfile declares ``name`` (read from the generated options reference)."""
    try:
        return f"`{name}`" in (REPO / "docs" / "options.md").read_text()
    except OSError:
        return False


def iso_epoch(text: str) -> float:
    """An ISO 8601 time of the report (``2026-01-02T03:04:05.678Z``) in epoch seconds."""
    from datetime import datetime

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def p50(values: list[float]) -> float | None:
    """The p50 the SLA report gives for these samples (its histogram: nearest rank, exact to 1 ms)."""
    h = Histogram()
    for v in values:
        h.record(v)
    return h.percentile(50)


def cut_messages(failures_csv: Path) -> list[dict[str, Any]]:
    """Failures of Locust's ``--csv`` table that are messages ended by a close under them (their error carries the
    close code and reason), and the disconnects: ``[{"name", "error", "count"}]``, most frequent first."""
    try:
        with failures_csv.open(newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError:
        return []
    out = [{"name": f"{r.get('Method', '')} {r.get('Name', '')}".strip(), "error": r.get("Error", ""),
            "count": int(r.get("Occurrences") or 0), "first_seen": r.get("First Seen"), "last_seen": r.get("Last Seen")}
           for r in rows if CUT_MARK in (r.get("Error") or "") or r.get("Name") == "disconnect"]
    return sorted(out, key=lambda r: -r["count"])


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
    slot: Slot
    work: Path
    out: Path
    procs: list[subprocess.Popen[Any]] = field(default_factory=list)
    backend: Any = None
    reaper: LifetimeReaper | None = None
    tap: ClickHouseTap | None = None

    def start(self, argv: list[str], *, ns: bool = False, log: Path) -> subprocess.Popen[Any]:
        cmd = (["ip", "netns", "exec", self.slot.ns] if ns else []) + argv
        with log.open("ab") as f:
            p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        record_pid(self.slot, p.pid)
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
        if self.tap is not None:
            self.tap.stop()
        teardown_path(self.slot)

    def bring_up(self) -> Path:
        """The path; returns the CA file."""
        from reference_backend.process import BackendProcess

        o, addr = self.o, self.slot.ns_addr
        netem_on = setup_path(self.slot, o)
        ca, pem = make_certs(self.work, addr)
        think = {} if o.backend_think_ms is None else {"think_min_ms": o.backend_think_ms,
                                                        "think_max_ms": o.backend_think_ms}
        # the backend writes its agent events through the tap: its own reply times, whoever else shares ClickHouse
        self.tap = ClickHouseTap("127.0.0.1:8123", f"{CH_DATABASE}.{CH_TABLE}").start()
        self.backend = BackendProcess.start(self.work, seed_users=SEED_USERS, seed_password=SEED_PASSWORD,
                                            clickhouse_url=self.tap.url, **think)
        record_pid(self.slot, self.backend.pid)
        sock = self.work / "haproxy.sock"
        cfg = self.work / "haproxy.cfg"
        relay = not netem_on and o.latency_ms > 0
        cfg.write_text(haproxy_config(slot=self.slot, backend_port=self.backend.port, crt=pem, stats_sock=sock,
                                      idle_s=o.idle_timeout_s, relay=relay))
        check = run("haproxy", "-c", "-f", str(cfg), check=False)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c {cfg}: {check.stdout.strip()} {check.stderr.strip()}")
        self.start(["haproxy", "-db", "-f", str(cfg)], log=self.out / "haproxy.log")
        if relay:
            pairs = [f"{addr}:{port}=127.0.0.1:{10000 + port}" for port in (443, *TIERS.values())]
            self.start([sys.executable, str(REPO / "scripts" / "netdelay.py"), "--delay-ms", f"{o.latency_ms:g}",
                        "--jitter-ms", f"{o.jitter_ms:g}", *pairs], ns=True, log=self.out / "netdelay.log")
        wait_tls(ca, addr)
        self.reaper = LifetimeReaper(sock, o.lifetime_s)
        self.reaper.start()
        how = "tc netem on the veth" if netem_on else ("the netdelay relay" if relay else "none")
        say(f"path up ({self.slot.ns}): wss://{addr}/ws → HAProxy (TLS, idle {o.idle_timeout_s:g} s, lifetime "
            f"{o.lifetime_s:g} s) → reference backend 127.0.0.1:{self.backend.port}; latency "
            f"{o.latency_ms:g} ms ± {o.jitter_ms:g} ms each way ({how}); redis/pg/clickhouse at {addr}")
        (self.out / "path.json").write_text(json.dumps({
            "ws_url": f"wss://{addr}/ws", "namespace": self.slot.ns, "veth": self.slot.host_if, "latency_ms": o.latency_ms, "jitter_ms": o.jitter_ms,
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
        o, addr = self.o, self.slot.ns_addr
        argv = [str(REPO / ".venv" / "bin" / "locust"), "-f", str(REPO / "locustfile.py"), "--headless",
                "--only-summary", "--host", f"wss://{addr}/ws", "--users-file", str(self.users_file()),
                "--redis-url", f"redis://{addr}:{TIERS['redis']}/0",
                "--pg-dsn", f"postgresql://postgres@{addr}:{TIERS['pg']}/test",
                "--clickhouse-url", f"http://{addr}:{TIERS['clickhouse']}",
                "--scenario", "soak", "--scenario-duration", f"{o.length_s:g}s", "--sla-profile", "staging",
                "--sla-report-json", str(self.out / "sla.json"), "--sla-report-html", str(self.out / "sla.html"),
                "--sla-report-junit", str(self.out / "sla.xml"), "--sla-window", str(SLA_WINDOW_S),
                "--csv", str(self.out / "locust")]
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
        env.update(SSL_CERT_FILE=str(ca), **{REHEARSE_NET_ENV: self.slot.net}, PYTHONUNBUFFERED="1")
        argv = self.locust_argv()
        say("running: " + " ".join(argv[argv.index("--headless"):]))
        with (self.out / "locust.log").open("ab") as log:
            locust = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        record_pid(self.slot, locust.pid)
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
        o = self.o
        try:
            report = json.loads((self.out / "sla.json").read_text())
        except (OSError, ValueError):
            report = {}
        metrics = report.get("metrics") or {}
        reply = metrics.get("WS agent_completed") or {}
        self.backend.stop()  # it flushes its last ClickHouse rows (through the tap) and logs its message count
        completed = backend_completed(self.backend.log_path)
        rtt = 2 * o.latency_ms
        path = json.loads((self.out / "path.json").read_text())
        cuts = self.reaper.cut_at if self.reaper else []
        t0 = iso_epoch(report["started_at"]) if report.get("started_at") else None
        path.update(exit_code=code, verdict=report.get("verdict"), client_reply_p50_ms=reply.get("p50"),
                    backend_completed=completed, backend_rows=len(self.tap.rows) if self.tap else 0,
                    load_average=[round(x, 2) for x in os.getloadavg()],
                    reconnects=report.get("reconnects") or {}, messages=report.get("messages") or {},
                    lifetime_cuts=len(cuts),
                    heartbeat_p50_ms=(metrics.get("WS heartbeat") or {}).get("p50"),
                    lifetime_cuts_at_s=[round(t - t0, 1) for t in cuts] if t0 is not None else [],
                    cut_messages=cut_messages(self.out / "locust_failures.csv"),
                    connect_ms={m: {k: (metrics.get(m) or {}).get(k) for k in ("count", "p50", "p95", "max")}
                                for m in ("WS connect", "REDIS connect", "PG connect")})
        if self.tap is not None and t0 is not None and report.get("ended_at"):
            # the client's p50 is over the judged samples: the backend's over the same span
            own = self.tap.between(t0 + float(report.get("warmup_s") or 0), iso_epoch(report["ended_at"]))
            server = p50(own)
            path.update(server_rows_judged=len(own), server_reply_p50_ms=server)
            if server is not None and reply.get("p50") is not None:
                path["path_overhead_p50_ms"] = round(reply["p50"] - server, 2)
                path["overhead_minus_rtt_ms"] = round(reply["p50"] - server - rtt, 2)
        if o.backend_think_ms is not None and reply.get("p50") is not None:
            path["reply_minus_think_p50_ms"] = round(reply["p50"] - o.backend_think_ms, 2)
        (self.out / "path.json").write_text(json.dumps(path, indent=2))
        for line in report.get("verdict_reasons", [])[:8]:
            say(line)
        for a in report.get("attribution", [])[:3]:
            say(f"attribution: {a.get('summary')}")
        failed = path["messages"].get("failed") or 0
        if "path_overhead_p50_ms" in path and failed:
            say(f"{failed} message(s) failed: the client's reply p50 counts them, the backend's completed rows do not, "
                f"so reply minus backend ({path['path_overhead_p50_ms']:.1f} ms) is not the path's cost")
        elif "path_overhead_p50_ms" in path:
            say(f"reply p50 {reply['p50']:.1f} ms = backend's own p50 {path['server_reply_p50_ms']:.1f} ms "
                f"({path['server_rows_judged']} replies) + {path['path_overhead_p50_ms']:.1f} ms over the path "
                f"(round trip {rtt:g} ms: {path['overhead_minus_rtt_ms']:+.1f} ms; the client's heartbeat p50 "
                f"over the same path {path['heartbeat_p50_ms']} ms)")
        if "reply_minus_think_p50_ms" in path:
            say(f"reply p50 {reply['p50']:.1f} ms = fixed think {o.backend_think_ms:g} ms + "
                f"{path['reply_minus_think_p50_ms']:.1f} ms of tiers and path (round trip {rtt:g} ms)")
        connects = ", ".join(f"{m} p50 {v['p50']:.0f} / p95 {v['p95']:.0f} ms" for m, v in path["connect_ms"].items()
                             if v.get("p50") is not None)
        if connects:
            say(f"connects over the path: {connects}")
        planned = ", ".join(f"{n} {cause}" for cause, n in sorted(path["reconnects"].items())) or "none"
        say(f"balancer lifetime cuts: {len(cuts)}"
            + (f" (at +{', +'.join(f'{t:g}' for t in path['lifetime_cuts_at_s'][:12])} s)" if cuts else "")
            + f"; planned reconnects: {planned}; messages failed: {path['messages'].get('failed', '?')}")
        for c in path["cut_messages"][:6]:
            seen = f" ({c['first_seen']} .. {c['last_seen']})" if c.get("first_seen") else ""
            say(f"cut by a close: {c['count']} × {c['name']}: {c['error']}{seen}")
        say(f"verdict {report.get('verdict')}, exit code {code}")
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
    try:
        slot, _lock = claim_slot()  # the lock is held until this process ends
    except (RuntimeError, OSError) as e:
        say(f"ERROR: {e}")
        return 1
    rehearsal = Rehearsal(o, slot, work, out)

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
