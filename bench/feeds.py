"""Feed benchmark: market hub -> feed-market -> broker -> subscriber, against a bare pysignalr
client reading the same hub stream with no bus (the baseline), measured in the same run.

    .venv/bin/python bench/feeds.py [--seconds 8] [--speed 60]

A real broker, sim, subscriptions and feed-market run as child processes on free loopback ports
(every sim root subscribed, sim always open). Two measuring processes run side by side:
- `bus`: a Bus subscriber to quote./trade./depth. (what any CHILLLY consumer sees);
- `raw`: a pysignalr client on the sim's market hub with the same subscriptions (the baseline).
Printed: messages/s each side received (hub messages: one per quote, one per trade print, one
per depth batch, the same unit as bus messages) and the latency from a trade print at the sim
(its timestamp, mapped from market time back to real time) to its arrival on each side,
p50 and p99, over the prints both sides saw.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from chillly.clock import iso_to_ms  # noqa: E402
from tests.sim_client import free_port  # noqa: E402

SYMBOLS = "ES,NQ,MES,MNQ,RTY,YM,CL,GC,6E"


def real_of(market_ms: int, anchor_ms: int, speed: float) -> float:
    return anchor_ms + (market_ms - anchor_ms) / speed


def bus_side(env: dict[str, str], seconds: float, start_at: float, out: mp.Queue) -> None:  # type: ignore[type-arg]
    os.environ.update(env)
    from chillly.bus import Bus
    from chillly.messages import Trade

    async def main() -> None:
        bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "bench-bus")
        counts = {"n": 0}
        trades: dict[tuple, float] = {}
        measuring = {"on": False}

        def on_msg(e) -> None:  # type: ignore[no-untyped-def]
            if not measuring["on"]:
                return
            counts["n"] += 1
            if e.topic.startswith("trade."):
                m = e.message()
                assert isinstance(m, Trade)
                trades.setdefault((m.contract, m.t, m.price, m.size, m.aggressor),
                                  time.time() * 1000)

        for prefix in ("quote.", "trade.", "depth."):
            bus.on(prefix, on_msg)
        hb: dict = {}
        bus.on("hb.feed-market.", lambda e: hb.update(e.payload.get("counters", {})))
        await bus.ready(timeout=15)
        await asyncio.sleep(max(0.0, start_at - time.time()))
        measuring["on"] = True
        await asyncio.sleep(seconds)
        measuring["on"] = False
        extra = {"bus_lost": bus.counters["lost"], "hub_drops": hb.get("hub_drops", 0),
                 "hub_connects": hb.get("hub_connects", 0)}
        await bus.close()
        out.put(("bus", counts["n"], {"trades": trades, **extra}))

    asyncio.run(main())


def raw_side(base: str, contracts: list[str], seconds: float, start_at: float,
             out: mp.Queue) -> None:  # type: ignore[type-arg]
    from pysignalr.client import SignalRClient

    async def main() -> None:
        token = httpx.post(f"{base}/api/Auth/loginKey",
                           json={"userName": "bench", "apiKey": "k"}).json()["token"]
        client = SignalRClient(f"{base}/hubs/market?access_token={token}",
                               access_token_factory=lambda: token, max_size=4 * 2**20)
        counts = {"n": 0}
        trades: dict[tuple, float] = {}
        measuring = {"on": False}

        async def on_quote(args) -> None:  # type: ignore[no-untyped-def]
            if measuring["on"]:
                counts["n"] += 1

        async def on_depth(args) -> None:  # type: ignore[no-untyped-def]
            if measuring["on"]:
                counts["n"] += 1

        async def on_trade(args) -> None:  # type: ignore[no-untyped-def]
            if not measuring["on"]:
                return
            now = time.time() * 1000
            prints = args[1] if isinstance(args[1], list) else [args[1]]
            for p in prints:
                counts["n"] += 1
                trades.setdefault((args[0], iso_to_ms(p["timestamp"]), float(p["price"]),
                                   int(p["volume"]), p["type"]), now)

        async def on_open() -> None:
            for cid in contracts:
                for m in ("SubscribeContractQuotes", "SubscribeContractTrades",
                          "SubscribeContractMarketDepth"):
                    await client.send(m, [cid])

        client.on("GatewayQuote", on_quote)
        client.on("GatewayTrade", on_trade)
        client.on("GatewayDepth", on_depth)
        client.on_open(on_open)
        task = asyncio.ensure_future(client.run())
        await asyncio.sleep(max(0.0, start_at - time.time()))
        measuring["on"] = True
        await asyncio.sleep(seconds)
        measuring["on"] = False
        out.put(("raw", counts["n"], trades))
        task.cancel()
        try:
            await task
        except BaseException:
            pass

    asyncio.run(main())


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--logs", default="", help="keep the processes' logs in this directory")
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-feeds-")
    anchor = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    anchor_ms = iso_to_ms(anchor)
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}", "SIM_PORT": str(free_port()),
           "RUN_DIR": f"{tmp}/run", "CLOCK_SPEED": str(a.speed), "CLOCK_ANCHOR": anchor,
           "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1", "SIM_TICK_INTERVAL_S": "0.02",
           "DEFAULT_CONTRACTS": SYMBOLS, "LOG_LEVEL": "INFO" if a.logs else "WARNING",
           "FEED_SET_INTERVAL": "0.5"}
    full = {**os.environ, **env}
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    children = []
    py = sys.executable
    try:
        for args in (["broker"], ["sim"], ["subscriptions", "serve"], ["feed-market"]):
            log = (open(os.path.join(a.logs, f"{args[0]}.log"), "wb") if a.logs
                   else subprocess.DEVNULL)
            children.append(subprocess.Popen([py, "-m", "chillly.cli", *args], cwd=ROOT, env=full,
                                             stdout=log, stderr=subprocess.STDOUT))
            if args == ["sim"]:
                deadline = time.time() + 30
                while time.time() < deadline:
                    try:
                        if httpx.get(f"{base}/api/Status/ping", timeout=1).status_code == 200:
                            break
                    except httpx.HTTPError:
                        time.sleep(0.05)
        token = httpx.post(f"{base}/api/Auth/loginKey",
                           json={"userName": "b", "apiKey": "k"}).json()["token"]
        contracts = []
        for sym in SYMBOLS.split(","):
            r = httpx.post(f"{base}/api/Contract/search", json={"searchText": sym, "live": False},
                           headers={"Authorization": f"Bearer {token}"}).json()
            from topstepx.contracts import pick
            from topstepx.models import Contract
            found = pick(sym, [Contract.model_validate(c) for c in r["contracts"]])
            contracts.append(found.id)
        start_at = time.time() + 4.0  # both sides connected and subscribed by then
        q: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        ctx = mp.get_context("spawn")
        procs = [ctx.Process(target=bus_side, args=(env, a.seconds, start_at, q)),
                 ctx.Process(target=raw_side, args=(base, contracts, a.seconds, start_at, q))]
        for p in procs:
            p.start()
        results = {}
        for _ in procs:
            side, n, trades = q.get(timeout=a.seconds + 60)
            results[side] = (n, trades)
        for p in procs:
            p.join(5)
    finally:
        for c in reversed(children):
            c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(5)
            except subprocess.TimeoutExpired:
                c.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    (bus_n, extra), (raw_n, raw_tr) = results["bus"], results["raw"]
    bus_tr = extra["trades"]
    common = [k for k in raw_tr if k in bus_tr]
    lat_raw = [raw_tr[k] - real_of(k[1], anchor_ms, a.speed) for k in common]
    lat_bus = [bus_tr[k] - real_of(k[1], anchor_ms, a.speed) for k in common]
    added = [bus_tr[k] - raw_tr[k] for k in common]
    print(f"feeds bench: {len(contracts)} contracts, CLOCK_SPEED {a.speed:g}, "
          f"{a.seconds:g} s measured")
    print(f"  baseline (bare pysignalr, no bus): {raw_n / a.seconds:9.0f} hub msgs/s, "
          f"{len(raw_tr) / a.seconds:7.0f} prints/s")
    print(f"  feed-market -> broker -> Bus     : {bus_n / a.seconds:9.0f} bus msgs/s, "
          f"{len(bus_tr) / a.seconds:7.0f} trades/s  (ratio {bus_n / max(1, raw_n):.3f})")
    print(f"  lost on the bus (seq gaps at the subscriber): {extra['bus_lost']}; "
          f"feed-market hub connects {extra['hub_connects']}, drops {extra['hub_drops']}")
    if common:
        print(f"  print -> arrival latency over {len(common)} prints seen by both (ms):")
        print(f"    baseline: p50 {pct(lat_raw, 0.5):7.2f}  p99 {pct(lat_raw, 0.99):7.2f}")
        print(f"    bus     : p50 {pct(lat_bus, 0.5):7.2f}  p99 {pct(lat_bus, 0.99):7.2f}")
        print(f"    added by feed-market + broker: p50 {pct(added, 0.5):6.2f}  "
              f"p99 {pct(added, 0.99):6.2f}  mean {statistics.fmean(added):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
