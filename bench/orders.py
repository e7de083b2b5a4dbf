"""Order path benchmark: submit-to-accepted latency through the bus and the gateway, beside a
direct httpx Order/place to the same sim in the same run; orders/s with the journal on.

    .venv/bin/python bench/orders.py [--n 300] [--concurrency 16] [--seconds 5]

Processes (each its own OS process, as deployed): broker, sim (always open, no rate limit, no
Topstep referee), gateway (journal in a temp dir, `synchronous=FULL`: one fsync per intent and
one per venue event; the risk gate on with its per-minute and daily caps lifted).
- latency: `n` market orders of 1 MES, sides alternating, one at a time, sent as a strategy
  host's trusted parent sends them (bus sender `strategy-bench`); the direct baseline is
  the same order as one httpx POST /api/Order/place with its own customTag (what the gateway
  does for each after its checks and its journal commit);
- throughput: `concurrency` senders for `seconds`, counting accepted orders per second, the
  direct baseline with as many concurrent httpx senders.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx  # noqa: E402

from chillly.bus import Bus  # noqa: E402
from tests.sim_client import free_port, login, wait_ready  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ACCOUNT = 1001


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def spawn(args: list[str], env: dict[str, str], log: str) -> subprocess.Popen[bytes]:
    out = open(log, "wb")
    return subprocess.Popen([sys.executable, "-m", "chillly.cli", *args], cwd=ROOT,
                            env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT)


async def direct(base: str, token: str, contract: str, n: int, tags: itertools.count) -> list[float]:
    lat = []
    async with httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
        for i in range(n):
            body = {"accountId": ACCOUNT, "contractId": contract, "type": 2, "side": i % 2,
                    "size": 1, "customTag": f"direct-{next(tags)}"}
            t0 = time.perf_counter()
            r = await c.post("/api/Order/place", json=body)
            lat.append(time.perf_counter() - t0)
            assert r.json()["success"], r.text
    return lat


async def via_gateway(bus: Bus, n: int, cids: itertools.count) -> list[float]:
    lat = []
    for i in range(n):
        args = {"client_id": f"bench-{next(cids)}", "contract": "MES",
                "side": "buy" if i % 2 == 0 else "sell", "size": 1, "type": "market"}
        t0 = time.perf_counter()
        reply = await bus.request("gateway", "submit", args, timeout=10, attempts=1)
        lat.append(time.perf_counter() - t0)
        assert reply.ok and reply.result["status"] == "accepted", reply
    return lat


async def rate(send, concurrency: int, seconds: float) -> float:  # type: ignore[no-untyped-def]
    done = 0
    stop = time.perf_counter() + seconds

    async def worker(w: int) -> None:
        nonlocal done
        i = 0
        while time.perf_counter() < stop:
            await send(w, i)
            i += 1
            done += 1

    t0 = time.perf_counter()
    await asyncio.gather(*(worker(w) for w in range(concurrency)))
    return done / (time.perf_counter() - t0)


async def main_async(args: argparse.Namespace) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-orders-")
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "SIM_PORT": str(free_port()), "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1",
           "SIM_RATE_OTHER": "10000000", "SIM_ENFORCE": "", "RUN_DIR": f"{tmp}/run",
           "GATEWAY_DATABASE_PATH": f"{tmp}/orders.db", "GATEWAY_REST_BUDGET": "10000000/60",
           "GATEWAY_RECONCILE_INTERVAL": "3600", "RISK_ACCOUNT_ORDERS_PER_MINUTE": "10000000",
           "RISK_STRATEGY_ORDERS_PER_MINUTE": "10000000", "RISK_DAILY_CONTRACTS": "10000000",
           "RISK_MLL_ALLOWANCE": "10000000", "RISK_MAX_LOTS": "100000",
           "TOPSTEP_ACCOUNT_ID": str(ACCOUNT),
           "LOG_LEVEL": "WARNING"}
    procs = [spawn(["broker"], env, f"{tmp}/broker.log"), spawn(["sim"], env, f"{tmp}/sim.log")]
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "strategy-bench")
    try:
        wait_ready(base)
        procs.append(spawn(["gateway"], env, f"{tmp}/gateway.log"))
        await bus.ready(timeout=20)
        deadline = time.monotonic() + 30
        while True:
            try:
                r = await bus.request("gateway", "account", {}, timeout=1, attempts=1)
                if r.ok and r.result.get("ready"):
                    break
            except Exception:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"gateway not ready; see {tmp}/gateway.log")
        token = login(base)
        with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {token}"}) as c:
            cs = c.post("/api/Contract/available", json={"live": False}).json()["contracts"]
        mes = next(x["id"] for x in cs if x["id"].startswith("CON.F.US.MES.") and x["activeContract"])
        tags, cids = itertools.count(1), itertools.count(1)
        await direct(base, token, mes, 20, tags)          # warm-up both paths
        await via_gateway(bus, 20, cids)
        d = await direct(base, token, mes, args.n, tags)
        g = await via_gateway(bus, args.n, cids)
        ms = lambda x: x * 1000  # noqa: E731
        print(f"submit -> accepted, {args.n} sequential market orders (1 MES):")
        print(f"  direct httpx Order/place : p50 {ms(statistics.median(d)):6.2f} ms   "
              f"p99 {ms(pct(d, 99)):6.2f} ms")
        print(f"  bus + gateway + journal  : p50 {ms(statistics.median(g)):6.2f} ms   "
              f"p99 {ms(pct(g, 99)):6.2f} ms   "
              f"(+{ms(statistics.median(g) - statistics.median(d)):.2f} ms at p50)")

        clients = [httpx.AsyncClient(base_url=base, headers={"Authorization": f"Bearer {token}"})
                   for _ in range(args.concurrency)]

        async def send_direct(w: int, i: int) -> None:
            r = await clients[w].post("/api/Order/place", json={
                "accountId": ACCOUNT, "contractId": mes, "type": 2, "side": i % 2, "size": 1,
                "customTag": f"direct-{next(tags)}"})
            assert r.json()["success"]

        async def send_gateway(w: int, i: int) -> None:
            reply = await bus.request("gateway", "submit", {
                "client_id": f"bench-{next(cids)}", "contract": "MES",
                "side": "buy" if i % 2 == 0 else "sell", "size": 1, "type": "market"},
                timeout=20, attempts=1)
            assert reply.ok and reply.result["status"] == "accepted", reply

        rd = await rate(send_direct, args.concurrency, args.seconds)
        rg = await rate(send_gateway, args.concurrency, args.seconds)
        for c in clients:
            await c.aclose()
        print(f"orders/s with {args.concurrency} concurrent senders for {args.seconds:.0f} s:")
        print(f"  direct httpx Order/place : {rd:7.1f} orders/s")
        print(f"  bus + gateway + journal  : {rg:7.1f} orders/s (journal synchronous=FULL, WAL)")
    finally:
        await bus.close()
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main_async(ap.parse_args()))


if __name__ == "__main__":
    main()
