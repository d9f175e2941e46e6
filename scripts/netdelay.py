"""A TCP relay that adds one-way latency and jitter in both directions: the stand-in for ``tc netem`` on kernels
built without ``sch_netem`` (``tc qdisc add ... netem`` then fails with "Specified qdisc kind is unknown").

``python scripts/netdelay.py --delay-ms 10 --jitter-ms 2 LISTEN_HOST:PORT=TARGET_HOST:PORT ...``

Every chunk read from one side is written to the other ``delay ± jitter`` ms (uniform) after it arrived, never
before the chunk ahead of it (bytes stay in order, as TCP keeps them; netem's jitter reorders packets and lets TCP
restore the order). A half-close travels with the same delay.

The TCP handshake: the client's ``connect()`` to the relay returns at once, where over a real path it returns one
round trip later (SYN, SYN-ACK) and its first bytes then take one more way. So the first chunk the client sends is
held for one extra round trip (two more jittered one-way delays): for every protocol where the client speaks first
(TLS, HTTP, Redis, PostgreSQL) a connect then pays exactly the round trips it pays over netem. A server that speaks
first (SMTP, MySQL) would see its greeting one round trip early. Not modelled: loss and bandwidth. Stdlib only;
runs until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import signal
import sys
import time

__all__ = ["main"]

CHUNK = 65536


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected HOST:PORT")
    return host.strip("[]"), int(port)


def _pair(text: str) -> tuple[tuple[str, int], tuple[str, int]]:
    listen, sep, target = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"{text!r}: expected LISTEN_HOST:PORT=TARGET_HOST:PORT")
    return _addr(listen), _addr(target)


class Delay:
    """Due times of the chunks of one direction: ``delay ± jitter`` after arrival, in arrival order; with
    ``handshake``, the first chunk also waits the round trip of the TCP handshake the relay's connect skipped."""

    def __init__(self, delay_s: float, jitter_s: float, rng: random.Random, *, handshake: bool = False) -> None:
        self.delay_s, self.jitter_s, self.rng = delay_s, jitter_s, rng
        self.last_due = 0.0
        self.handshake = handshake

    def one_way(self) -> float:
        return max(0.0, self.delay_s + self.rng.uniform(-self.jitter_s, self.jitter_s))

    def due(self, arrived: float) -> float:
        wait = self.one_way()
        if self.handshake:
            self.handshake = False
            wait += self.one_way() + self.one_way()
        self.last_due = max(self.last_due, arrived + wait)
        return self.last_due


async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, delay: Delay) -> None:
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def read() -> None:
        try:
            while data := await reader.read(CHUNK):
                queue.put_nowait((delay.due(time.monotonic()), data))
        except (ConnectionError, OSError):
            pass
        queue.put_nowait((delay.due(time.monotonic()), b""))

    async def write() -> None:
        while True:
            due, data = await queue.get()
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    if writer.can_write_eof():
                        writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    reading = asyncio.ensure_future(read())
    try:
        await write()
    finally:
        reading.cancel()


async def _serve_one(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter, target: tuple[str, int],
                     delay_s: float, jitter_s: float, rng: random.Random) -> None:
    try:
        up_r, up_w = await asyncio.wait_for(asyncio.open_connection(*target), 10)
    except (OSError, TimeoutError):
        client_w.close()
        return
    try:
        await asyncio.gather(_pump(client_r, up_w, Delay(delay_s, jitter_s, rng, handshake=True)),
                             _pump(up_r, client_w, Delay(delay_s, jitter_s, rng)))
    except (ConnectionError, OSError):
        pass
    finally:
        for w in (client_w, up_w):
            w.close()


async def _main(args: argparse.Namespace) -> None:
    rng = random.Random()
    delay_s, jitter_s = args.delay_ms / 1000.0, args.jitter_ms / 1000.0
    servers = []
    for listen, target in args.pairs:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter, target: tuple[str, int] = target) -> None:
            await _serve_one(r, w, target, delay_s, jitter_s, rng)

        servers.append(await asyncio.start_server(handle, *listen, reuse_address=True, backlog=1024))
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("netdelay: listening", flush=True)
    await stop.wait()
    for s in servers:
        s.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="netdelay", description="TCP relay adding latency and jitter both ways")
    p.add_argument("--delay-ms", type=float, default=10.0, help="one-way delay in ms (default 10)")
    p.add_argument("--jitter-ms", type=float, default=2.0, help="± uniform jitter in ms (default 2)")
    p.add_argument("pairs", nargs="+", type=_pair, help="LISTEN_HOST:PORT=TARGET_HOST:PORT")
    args = p.parse_args(argv)
    asyncio.run(_main(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
