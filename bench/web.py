"""The trader's page: a fill event on the bus to the page's DOM showing it (p50/p99) with 1 and
10 pages open, beside the bus's own delivery of the same event to a plain subscriber (the
baseline, same run); and `chillly web`'s RSS and CPU with 10 pages open while quotes run at
the sim's full rate, beside the same process with no page open.

    .venv/bin/python bench/web.py [--fills 60] [--seconds 20] [--speed 60]

Real broker, sim, subscriptions, feed-market, gateway and `chillly web` run as child processes
on free loopback ports; Debian's chromium (Playwright) opens the pages. The bench publishes
FillEvents itself (owner `bench`), stamping the wall clock just before each publish; a plain
bus subscriber stamps its arrival; each page stamps, with a MutationObserver, the moment its
fills table holds the fill's row (performance.timeOrigin + now: the same wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.feeds import free_port, pct  # noqa: E402
from chillly import topics  # noqa: E402
from chillly.bus import Bus  # noqa: E402
from chillly.codec import Envelope  # noqa: E402
from chillly.messages import FillEvent  # noqa: E402
from chillly.clock import ms_to_iso  # noqa: E402
from tests.sim_client import wait_ready  # noqa: E402

OBSERVE = """
window.__seen = {};
new MutationObserver(() => {
  const now = performance.timeOrigin + performance.now();
  for (const tr of document.querySelectorAll('#fills tr[data-trade]')) {
    if (!(tr.dataset.trade in window.__seen)) window.__seen[tr.dataset.trade] = now;
  }
}).observe(document.querySelector('#fills tbody'), {childList: true});
"""
ACCOUNT = 777


def chillly(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "chillly.cli", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=open(log, "wb"),
                            stderr=subprocess.STDOUT)


def cpu_rss(pid: int) -> tuple[float, int]:
    """(user+system CPU seconds, its finished children's included, RSS in KiB) of a process,
    from /proc: the page runs `chillly strategies --json` as a child while a page is open."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = sum(int(x) for x in fields[11:15]) / ticks
    rss = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text()
               .splitlines() if line.startswith("VmRSS:"))
    return cpu, rss


def plain_subscriber(env: dict[str, str], ready: Any, out: Any) -> None:
    """The baseline, in a process of its own (as any subscriber is): stamps each bench fill's
    arrival on the bus until trade id -1 comes, then hands the stamps back; and, beside it, a
    bare WebSocket client of the page's push channel (what `chillly web` adds, no browser)."""
    import aiohttp
    import orjson

    async def main() -> None:
        bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "bench-plain")
        heard: dict[int, float] = {}
        pushed: dict[int, float] = {}
        done = asyncio.Event()

        def on_fill(e: Envelope) -> None:
            heard[e.payload["trade_id"]] = time.time() * 1000
            if e.payload["trade_id"] == -1:
                done.set()

        async def channel(ws: Any) -> None:
            async for msg in ws:
                now = time.time() * 1000
                for m in orjson.loads(msg.data):
                    if m["k"] == "fill":
                        pushed.setdefault(m["d"]["trade_id"], now)
        bus.on(topics.fill_event(ACCOUNT, "bench"), on_fill)
        await bus.ready(timeout=30)
        async with aiohttp.ClientSession() as http:
            async with http.ws_connect(f"http://127.0.0.1:{env['WEB_PORT']}/ws") as ws:
                reader = asyncio.ensure_future(channel(ws))
                await asyncio.sleep(0.5)     # its snapshot first
                ready.put(True)
                await done.wait()
                await asyncio.sleep(0.5)
                reader.cancel()
        out.put((heard, pushed))
        await bus.close()
    asyncio.run(main())


async def fills_to_pages(bus: Bus, env: dict[str, str], pages: list[Any], n: int,
                         first_id: int) -> tuple[list[float], list[float], list[float]]:
    """Publish n fills; latencies in ms: (pages' DOM, plain bus subscriber, bare WebSocket)."""
    sent: dict[int, float] = {}
    ready: Any = mp.Queue()
    out: Any = mp.Queue()
    child = mp.Process(target=plain_subscriber, args=(env, ready, out), daemon=True)
    child.start()
    ready.get(timeout=60)
    for i in range(n):     # one fill every 100 ms; the pages stamp them by themselves
        tid = first_id + i
        msg = FillEvent(account=ACCOUNT, trade_id=tid, order_id=tid, contract="CON.F.US.EP.Z26",
                        side=i % 2, size=1, price=6000.25, owner="bench")
        sent[tid] = time.time() * 1000
        bus.publish(topics.fill_event(ACCOUNT, "bench"), msg)
        await asyncio.sleep(0.1)
    deadline = time.monotonic() + 30
    while True:
        seen = await asyncio.gather(*(p.evaluate("() => window.__seen") for p in pages))
        if all(str(t) in s for s in seen for t in sent):
            break
        if time.monotonic() > deadline:
            raise SystemExit("some fills never showed on every page")
        await asyncio.sleep(0.5)
    page_ms = [s[str(t)] - sent[t] for s in seen for t in sent]
    end = FillEvent(account=ACCOUNT, trade_id=-1, order_id=-1, contract="CON.F.US.EP.Z26",
                    side=0, size=1, price=6000.25, owner="bench")
    heard: dict[int, float] = {}
    pushed: dict[int, float] = {}
    for _ in range(50):
        bus.publish(topics.fill_event(ACCOUNT, "bench"), end)
        try:
            heard, pushed = await asyncio.to_thread(out.get, True, 1.0)
            break
        except Exception:
            continue
    child.join(5)
    return (page_ms, [heard[t] - sent[t] for t in sent if t in heard],
            [pushed[t] - sent[t] for t in sent if t in pushed])


def line(label: str, values: list[float]) -> str:
    return (f"  {label:<58} p50 {pct(values, 0.5):7.1f} ms   p99 {pct(values, 0.99):7.1f} ms"
            f"   (n={len(values)})")


async def run(a: argparse.Namespace) -> int:
    from playwright.async_api import async_playwright

    chromium = shutil.which("chromium")
    if chromium is None:
        print("bench/web.py: Debian's chromium is needed (apt-get install chromium)")
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="bench-web-"))
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "SIM_PORT": str(free_port()), "WEB_PORT": str(free_port()),
           "RUN_DIR": str(tmp / "run"), "DATABASE_PATH": str(tmp / "market.db"),
           "SIM_ALWAYS_OPEN": "1", "FEED_MARKET_HOURS": "always", "SIM_HISTORY_DAYS": "1",
           "GATEWAY_DATABASE_PATH": str(tmp / "orders.db"), "LOG_LEVEL": "WARNING",
           "CLOCK_SPEED": str(a.speed), "CLOCK_ANCHOR": ms_to_iso(int(time.time() * 1000)),
           "STRATEGIES_FILE": str(Path(ROOT) / "strategies.toml")}
    procs = [chillly(["broker"], env, tmp / "broker.log"), chillly(["sim"], env, tmp / "sim.log")]
    try:
        wait_ready(f"http://127.0.0.1:{env['SIM_PORT']}")
        for args in (["subscriptions", "serve"], ["feed-market"], ["gateway"], ["web"]):
            procs.append(chillly(args, env, tmp / f"{args[0]}.log"))
        web = procs[-1]
        bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "bench-fills")
        base = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "bench-plain")
        quotes = {"n": 0}
        base.on(topics.QUOTES, lambda env: quotes.__setitem__("n", quotes["n"] + 1))
        await bus.ready(timeout=30)
        url = f"http://127.0.0.1:{env['WEB_PORT']}/"
        profile = tempfile.mkdtemp(prefix="bench-web-profile-")
        async with async_playwright() as p:
            ctx = await p.chromium.launch_persistent_context(
                profile, executable_path=chromium, headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                      "--disable-background-networking", "--disable-component-update",
                      "--disable-sync"])
            pages: list[Any] = []

            async def open_pages(k: int) -> None:
                while len(pages) < k:
                    page = await ctx.new_page()
                    for _ in range(120):
                        try:
                            await page.goto(url)
                            break
                        except Exception:
                            await asyncio.sleep(0.5)
                    await page.wait_for_function("() => window.chillly && window.chillly.linked")
                    await page.evaluate(OBSERVE)
                    pages.append(page)

            # Idle baseline first: quotes flowing, no page open.
            await base.ready(timeout=10)
            await asyncio.sleep(3)
            q0, c0 = quotes["n"], cpu_rss(web.pid)
            await asyncio.sleep(a.seconds)
            q1, c1 = quotes["n"], cpu_rss(web.pid)
            idle = ((c1[0] - c0[0]) / a.seconds * 100, c1[1], (q1 - q0) / a.seconds)

            results = {}
            for k in (1, 10):
                await open_pages(k)
                await asyncio.sleep(2)
                results[k] = await fills_to_pages(bus, env, pages, a.fills, 1_000_000 * k)

            q0, c0 = quotes["n"], cpu_rss(web.pid)
            await asyncio.sleep(a.seconds)
            q1, c1 = quotes["n"], cpu_rss(web.pid)
            busy = ((c1[0] - c0[0]) / a.seconds * 100, c1[1], (q1 - q0) / a.seconds)
            frames = await asyncio.gather(*(pg.evaluate("() => window.chillly.frames")
                                            for pg in pages))
            await ctx.close()
        shutil.rmtree(profile, ignore_errors=True)
        await bus.close()
        await base.close()
    finally:
        for pr in reversed(procs):
            pr.terminate()
        for pr in procs:
            try:
                pr.wait(5)
            except subprocess.TimeoutExpired:
                pr.kill()
        if not a.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    load = os.getloadavg()
    print(f"fill event on the bus -> shown (load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
          f" on {os.cpu_count()} cores: the pages' figures include chromium's own scheduling)",
          flush=True)
    for k, (page_ms, plain_ms, ws_ms) in results.items():
        pages_ = f"{k} page{'s' if k > 1 else ''}"
        print(line(f"baseline: plain bus subscriber ({pages_} open)", plain_ms))
        print(line(f"the push channel, a bare WebSocket client ({pages_} open)", ws_ms))
        print(line(f"the page's DOM, {pages_} (every page)", page_ms))
    print(f"chillly web with quotes at the sim's full rate (CLOCK_SPEED {a.speed:g}: "
          f"{busy[2]:.0f} quotes/s on the bus)")
    for label, (cpu, rss, qps), note in (
            ("baseline: no page open", idle, f"{idle[2]:.0f} quotes/s"),
            ("10 pages open", busy, f"frames per page in the run: {min(frames)}..{max(frames)}")):
        print(f"  {label:<24} CPU {cpu:5.1f}% of a core (children included)   "
              f"RSS {rss / 1024:6.1f} MiB   ({note})")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fills", type=int, default=60, help="fills per page count")
    ap.add_argument("--seconds", type=float, default=20.0, help="CPU/RSS window")
    ap.add_argument("--speed", type=float, default=60.0,
                    help="CLOCK_SPEED of the run: the sim's quote rate grows with it")
    ap.add_argument("--keep", action="store_true", help="keep the processes' logs")
    return asyncio.run(run(ap.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
