"""Polling 10,000 feeds: one round of the real Poller against a local server, and a baseline.

A server in another process (so that its CPU is not counted as ours) serves 10,000 RSS feeds
of ten entries each from 20 loopback addresses (20 hosts, 500 feeds each), with ETags. The
Poller (default settings: 16 polls at once, 2 per host, SQLite state) polls them all once to
prime its validators; then 5% of the feeds change (three new entries each) and the measured
round polls them all again: 95% answer 304 Not Modified, 5% send the new version, which is
parsed. Printed (absolute times drift on shared machines; the ratio is measured in this run):

  * the measured round's wall time                          (target < 60 s)
  * CPU time per poll, in this process (parsing threads included)
  * the event loop's worst lag during each round, by a 5 ms ticker task   (target < 100 ms)
  * the baseline: a plain sequential fetch-and-parse of the same feeds with the same validators
    (one request at a time, the same parse_feed on the event loop's thread), and how much
    slower it is than the Poller
  * the longest pause of Python's garbage collector in a round: once the Poller is made, the
    bench does what both runtimes do when they start (intake.freeze_startup: gc.freeze() and a
    larger young generation); without it (--no-gc-freeze) a full collection walks every feed's
    metric series and state, about a million objects at 10,000 feeds (0.2-0.3 s here)

The Poller is built as the runtimes build it (monitor.feeds.intake.Intake: the settings'
limits and schedule, fetching through the address guard).

The measured round and the baseline alternate --repeats times; the best of each is compared.

Run: .venv/bin/python bench/poller.py [--feeds N]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import formatdate
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiohttp import web  # noqa: E402

from monitor.feeds.intake import Intake, freeze_startup  # noqa: E402
from monitor.feeds.parse import parse_feed  # noqa: E402
from monitor.feeds.poller import FeedState  # noqa: E402
from monitor.feeds.sources import FeedSource  # noqa: E402
from monitor.logs import configure  # noqa: E402
from monitor.metrics import Metrics  # noqa: E402
from monitor.settings import Settings  # noqa: E402
from monitor.state.sqlite import Store  # noqa: E402

HOSTS = [f"127.0.0.{i}" for i in range(1, 21)]
CHANGED_EVERY = 20  # 5%
ENTRIES = 10
TICK = 0.005

# --- the server (its own process) -------------------------------------------------------------


def feed_document(feed: int, version: int, now: float) -> bytes:
    """Ten entries half an hour apart; each version adds three newer ones on top."""
    newest = ENTRIES + 3 * version
    items = []
    for n in range(newest, newest - ENTRIES, -1):
        age = (newest - n) * 1800 + 300
        items.append(
            f"<item><title>Feed {feed} story {n}: talks resume as markets steady</title>"
            f"<link>https://news{feed % 97}.example/{feed}/{n}</link>"
            f"<guid>https://news{feed % 97}.example/{feed}/{n}</guid>"
            f"<pubDate>{formatdate(now - age, usegmt=True)}</pubDate>"
            f"<description>{'Officials said the talks would resume on Monday. ' * 6}"
            f"</description></item>"
        )
    return (
        '<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel>'
        f"<title>Feed {feed}</title><link>https://news{feed % 97}.example/</link>"
        f"{''.join(items)}</channel></rss>"
    ).encode()


def serve(feeds: int, conn: Connection) -> None:
    asyncio.run(_serve(feeds, conn))


async def _serve(feeds: int, conn: Connection) -> None:
    now = time.time()
    versions = [0] * feeds
    bodies: dict[tuple[int, int], bytes] = {}

    async def feed(request: web.Request) -> web.StreamResponse:
        i = int(request.match_info["n"])
        version = versions[i]
        etag = f'"{i}-{version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        body = bodies.get((i, version))
        if body is None:
            body = bodies[(i, version)] = feed_document(i, version, now)
        return web.Response(
            body=body, headers={"ETag": etag, "Content-Type": "application/rss+xml"}
        )

    app = web.Application()
    app.router.add_get("/feeds/{n}.xml", feed)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    sites = [web.TCPSite(runner, host, 0, backlog=1024) for host in HOSTS]
    for site in sites:
        await site.start()
    conn.send([a[:2] for a in runner.addresses])
    loop = asyncio.get_running_loop()
    while True:
        command = await loop.run_in_executor(None, conn.recv)
        if command == "change":
            for i in range(0, feeds, CHANGED_EVERY):
                versions[i] += 1
            conn.send("changed")
        elif command == "cpu":
            conn.send(time.process_time())
        else:
            break
    await runner.cleanup()


# --- measuring --------------------------------------------------------------------------------


class Ticker:
    """The event loop's lag: how late a 5 ms sleep wakes up."""

    def __init__(self) -> None:
        self.lags: list[float] = []
        self.at: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await asyncio.sleep(TICK)
            self.lags.append(loop.time() - started - TICK)
            self.at.append(started)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def summary(self) -> str:
        if not self.lags:
            return "no ticks"
        p99 = statistics.quantiles(self.lags, n=100)[98] if len(self.lags) > 100 else 0.0
        worst = max(range(len(self.lags)), key=self.lags.__getitem__)
        when = self.at[worst] - self.at[0]
        return f"worst {self.lags[worst] * 1000:6.1f} ms (at {when:.2f}s), p99 {p99 * 1000:5.1f} ms"


class GcPauses:
    """The longest garbage-collector pause since the last reset (it stops the event loop too)."""

    def __init__(self) -> None:
        self.worst = 0.0
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.worst = max(self.worst, time.perf_counter() - self._started)


@dataclass
class Run:
    wall: float
    cpu: float
    served: float  # the server process's CPU
    lag: float  # the event loop's worst lag
    gc: float  # the longest GC pause


def server_cpu(conn: Connection) -> float:
    conn.send("cpu")
    return float(conn.recv())


async def measured(
    label: str, work: Callable[[], Awaitable[Any]], polls: int, server: Connection, gcs: GcPauses
) -> tuple[Any, Run]:
    served = server_cpu(server)
    gcs.worst = 0.0
    cpu, wall = time.process_time(), time.perf_counter()
    with Ticker() as ticker:
        result = await work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    run = Run(wall, cpu, server_cpu(server) - served, max(ticker.lags, default=0.0), gcs.worst)
    print(
        f"{label:<26} {wall:6.2f} s  CPU {cpu / polls * 1e6:5.0f} us/poll "
        f"(server {run.served / polls * 1e6:3.0f})  loop lag {ticker.summary()}, "
        f"GC pause {run.gc * 1000:.0f} ms"
    )
    return result, run


async def main_async(feeds: int, repeats: int, freeze: bool) -> None:
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=serve, args=(feeds, child), daemon=True)
    server.start()
    addresses = parent.recv()
    sources = [
        FeedSource(
            name=f"feed-{i:05d}",
            url=f"http://{addresses[i % len(addresses)][0]}:{addresses[i % len(addresses)][1]}"
            f"/feeds/{i}.xml",
            interval=900,
        )
        for i in range(feeds)
    ]
    changed = len(range(0, feeds, CHANGED_EVERY))
    print(f"feeds: {feeds} on {len(addresses)} hosts, {changed} changed in each measured round")
    print(f"load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    gcs = GcPauses()
    polls: list[Run] = []
    baselines: list[Run] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "state.db")
        table = store.models("feeds", FeedState)
        # as both runtimes build it: guarded sessions, the settings' limits and schedule
        intake = Intake(Settings(state=Path(tmp) / "state.db"), sources, store, Metrics())
        poller = intake.poller
        if freeze:
            freeze_startup()  # as Intake.run does once the runtime has started
        async with intake.sessions:
            session = intake.sessions.get(True)  # the feeds' 127.0.0.x URLs allow it

            async def round_() -> list[Any]:
                return await poller.poll_many(intake.sessions.get, sources)

            primed, _ = await measured("priming (all 200, parsed)", round_, feeds, parent, gcs)
            assert all(r.outcome == "ok" for r in primed), {r.outcome for r in primed}
            started = time.perf_counter()
            poller.settle(primed)
            store.commit()
            print(f"{'  settle + commit':<26} {time.perf_counter() - started:6.2f} s")
            del primed
            print(f"{'  objects the GC tracks':<26} {len(gc.get_objects()):>9,}")

            for _ in range(repeats):
                parent.send("change")
                parent.recv()
                etags = {name: table[name].etag for name in table}
                results, run = await measured("round (95% 304)", round_, feeds, parent, gcs)
                polls.append(run)
                outcomes = {o: sum(r.outcome == o for r in results) for o in ("ok", "not_modified")}
                assert outcomes == {"ok": changed, "not_modified": feeds - changed}, outcomes
                started = time.perf_counter()
                poller.settle(results)
                store.commit()
                print(f"{'  settle + commit':<26} {time.perf_counter() - started:6.2f} s")
                del results

                async def baseline(etags: dict[str, str] = etags) -> int:
                    entries = 0
                    for s in sources:
                        headers = {"If-None-Match": etags[s.name]}
                        async with session.get(s.url, headers=headers) as r:
                            body = await r.read()
                            if r.status == 200:
                                when = datetime.now(UTC)
                                entries += len(parse_feed(body, s, when, str(r.url)))
                    return entries

                entries, run = await measured("baseline (sequential)", baseline, feeds, parent, gcs)
                baselines.append(run)
                assert entries == changed * ENTRIES, entries
            started = time.perf_counter()
            poller.due(time.time())
            print(f"{'due() over every feed':<26} {(time.perf_counter() - started) * 1e3:6.1f} ms")
        store.close()
    parent.send("stop")
    server.join(5)
    best = min(polls, key=lambda r: r.wall)
    base = min(baselines, key=lambda r: r.wall)
    lags = sorted(r.lag for r in polls)
    print()
    print(f"load average after:  {os.getloadavg()[0]:.1f}")
    print(f"cycle time:          {best.wall:6.2f} s  best of {repeats} (target < 60 s)")
    per_poll, base_per_poll = best.cpu / feeds * 1e6, base.cpu / feeds * 1e6
    print(f"CPU per poll:        {per_poll:6.0f} us (baseline {base_per_poll:.0f})")
    print(
        f"worst loop lag:      {lags[len(lags) // 2] * 1000:6.1f} ms median of the rounds' worst, "
        f"{lags[-1] * 1000:.1f} ms worst of all (target < 100 ms); "
        f"longest GC pause {max(r.gc for r in polls) * 1000:.0f} ms"
    )
    print(f"baseline / poller:   {base.wall / best.wall:6.1f}x  (sequential {base.wall:.2f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--no-gc-freeze",
        action="store_true",
        help="leave the objects of start-up and priming to the collector's full passes",
    )
    args = parser.parse_args()
    configure("console", "warning")
    asyncio.run(main_async(args.feeds, args.repeats, not args.no_gc_freeze))


if __name__ == "__main__":
    main()
