"""Sim benchmark: REST requests/s and hub events/s, beside bare aiohttp baselines.

    .venv/bin/python bench/sim.py [--seconds 4] [--concurrency 8] [--clients 4] [--speed 3600]
        [--market-start 2026-12-01T14:30:00Z]

Measured in the same run, on the same machine, with the same clients (httpx for REST, a raw
`websockets` client for the hubs), every server in its own process:
- REST: requests/s (aiohttp client) on Contract/searchById (auth, rate-limit and fault middleware, JSON body)
  and on History/retrieveBars (100 one-minute bars), `concurrency` clients in parallel;
  baseline: a bare aiohttp app answering a small JSON POST;
- hub: a sim at CLOCK_SPEED=`speed` (an hour of market per real second at 3600) with `clients`
  market-hub connections, each subscribed to quotes, trades and depth of every listed
  contract: records/s and trade prints/s received in total, the sim's market steps/s (10/s
  means it keeps up), its CPU use and how far its market is behind the clock at the end (a
  sim short of CPU falls behind rather than stop answering); baseline: a bare aiohttp WebSocket
  pushing pre-encoded records as fast as the same clients read them. `--market-start` picks the
  market time of that run (the tape's US cash hours, 14:30-21:00 UTC, are the heaviest).
Figures of recent runs are in docs/sim.md, "Performance".
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timezone

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

from chillly.clock import iso_to_ms  # noqa: E402
from tests.sim_client import anchor_for, free_port, login, sim_env, wait_ready  # noqa: E402

RS = "\x1e"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

BASELINE_APP = textwrap.dedent('''
    import asyncio, sys
    import uvloop
    from aiohttp import web
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())  # as every chillly process does
    RECORD = ('{"type":1,"target":"GatewayTrade","arguments":["CON.F.US.EP.Z26",[{"symbolId":'
              '"F.US.EP","price":6000.25,"timestamp":"2026-11-24T15:00:00.123Z","type":0,'
              '"volume":2}]]}\\x1e')
    FRAME = RECORD * 100
    async def hello(request):
        await request.read()
        return web.json_response({"ok": True, "success": True, "errorCode": 0})
    async def ws(request):
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        try:
            while not sock.closed:
                await sock.send_str(FRAME)
        except Exception:
            pass
        return sock
    app = web.Application()
    app.router.add_post("/hello", hello)
    app.router.add_get("/ws", ws)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
''')


def start_sim(tmp: str, **extra: str) -> tuple[subprocess.Popen[bytes], str]:
    env = {**os.environ, **sim_env(tmp, SIM_RATE_BARS="100000000", SIM_RATE_OTHER="100000000",
                                   LOG_LEVEL="WARNING", **extra)}
    proc = subprocess.Popen([sys.executable, "-m", "chillly.cli", "sim"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    wait_ready(base)
    return proc, base


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def rest_rate(url: str, body: dict, headers: dict, seconds: float, concurrency: int) -> float:
    """Requests/s with `concurrency` workers on one aiohttp client session (keep-alive)."""
    conn = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=conn, headers=headers) as client:
        for _ in range(5):
            async with client.post(url, json=body) as r:
                r.raise_for_status()
                await r.read()
        done = 0
        stop_at = time.perf_counter() + seconds

        async def worker() -> None:
            nonlocal done
            while time.perf_counter() < stop_at:
                async with client.post(url, json=body) as r:
                    await r.read()
                    if r.status != 200:
                        raise RuntimeError(f"{url}: HTTP {r.status}")
                done += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return done / (time.perf_counter() - started)


async def hub_rate(url: str, subscribe: list[str], seconds: float, clients: int
                   ) -> tuple[float, float]:
    """Records/s and trade prints/s received over `clients` connections."""
    records = prints = 0
    stop_at = 0.0
    ready = asyncio.Event()

    async def client() -> None:
        nonlocal records, prints
        async with connect(url, max_size=2**26) as ws:
            await ws.send('{"protocol":"json","version":1}' + RS)
            await ws.recv()
            for msg in subscribe:
                await ws.send(msg)
            await ready.wait()
            while True:
                left = stop_at - time.perf_counter()
                if left <= 0:
                    return
                try:
                    frame = await asyncio.wait_for(ws.recv(), left)
                except asyncio.TimeoutError:
                    return
                records += frame.count(RS)
                prints += frame.count('"symbolId"')

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(1.0)  # let subscriptions settle (snapshots are not counted)
    records = prints = 0
    started = time.perf_counter()
    stop_at = started + seconds
    ready.set()
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    return records / elapsed, prints / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--clients", type=int, default=4)
    ap.add_argument("--speed", type=float, default=3600.0)
    ap.add_argument("--market-start", default=None,
                    help="market time (ISO, UTC) the hub run starts at; default now. The "
                         "tape's volume follows the trading day: 14:30-21:00 UTC is the "
                         "busiest, so the heaviest run starts there")
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-sim-")

    port = free_port()
    base_proc = subprocess.Popen([sys.executable, "-c", BASELINE_APP, str(port)], cwd=ROOT)
    try:
        for _ in range(200):
            try:
                httpx.post(f"http://127.0.0.1:{port}/hello", json={})
                break
            except httpx.HTTPError:
                time.sleep(0.05)
        bare_rest = asyncio.run(rest_rate(f"http://127.0.0.1:{port}/hello", {"contractId": "x"},
                                          {}, args.seconds, args.concurrency))
        bare_hub, _ = asyncio.run(hub_rate(f"ws://127.0.0.1:{port}/ws", [], args.seconds,
                                           args.clients))
    finally:
        stop(base_proc)

    proc, base = start_sim(tmp)
    try:
        token = login(base)
        auth = {"Authorization": f"Bearer {token}"}
        contracts = httpx.post(f"{base}/api/Contract/available", json={"live": False},
                               headers=auth).json()["contracts"]
        es = next(c["id"] for c in contracts if c["symbolId"] == "F.US.EP")
        by_id = asyncio.run(rest_rate(f"{base}/api/Contract/searchById", {"contractId": es},
                                      auth, args.seconds, args.concurrency))
        now = datetime.now(timezone.utc)
        bars_body = {"contractId": es, "live": False, "startTime": "2020-01-01T00:00:00Z",
                     "endTime": now.isoformat(), "unit": 2, "unitNumber": 1, "limit": 100,
                     "includePartialBar": True}
        bars = asyncio.run(rest_rate(f"{base}/api/History/retrieveBars", bars_body, auth,
                                     args.seconds, args.concurrency))
    finally:
        stop(proc)

    anchor = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.market_start:
        anchor = anchor_for(iso_to_ms(args.market_start), args.speed)
    proc, base = start_sim(tmp, CLOCK_SPEED=str(args.speed), CLOCK_ANCHOR=anchor)
    try:
        token = login(base)
        contracts = httpx.post(f"{base}/api/Contract/available", json={"live": False},
                               headers={"Authorization": f"Bearer {token}"}).json()["contracts"]
        subs = [f'{{"type":1,"target":"{m}","arguments":["{c["id"]}"]}}' + RS
                for c in contracts for m in ("SubscribeContractQuotes", "SubscribeContractTrades",
                                             "SubscribeContractMarketDepth")]
        ticks0 = httpx.get(f"{base}/admin/counters").json()["counters"]["ticks"]
        cpu0, t0 = cpu_seconds(proc.pid), time.perf_counter()
        rec_rate, print_rate = asyncio.run(hub_rate(
            base.replace("http", "ws") + f"/hubs/market?access_token={token}", subs,
            args.seconds, args.clients))
        cpu = (cpu_seconds(proc.pid) - cpu0) / (time.perf_counter() - t0)
        final = httpx.get(f"{base}/admin/counters", timeout=30).json()["counters"]
        ticks = (final["ticks"] - ticks0) / (time.perf_counter() - t0)
        lag_s = final.get("market_lag_ms", 0) / 1000 / args.speed
        slow = final.get("market_slow_consumer_drops", 0)
    finally:
        stop(proc)

    print(f"sim bench ({os.cpu_count()} cpus, {args.seconds:g}s per figure)")
    print(f"REST  bare aiohttp JSON POST         {bare_rest:9.0f} req/s  (baseline)")
    print(f"REST  sim Contract/searchById        {by_id:9.0f} req/s  "
          f"({by_id / bare_rest:.2f} of baseline)")
    print(f"REST  sim History/retrieveBars x100  {bars:9.0f} req/s  "
          f"({bars / bare_rest:.2f} of baseline)")
    print(f"HUB   bare aiohttp push, {args.clients} clients   {bare_hub:9.0f} records/s (baseline)")
    print(f"HUB   sim market hub, {args.clients} clients      {rec_rate:9.0f} records/s, "
          f"{print_rate:.0f} trade prints/s, speed {args.speed:g}, {len(contracts)} contracts")
    print(f"      sim market steps {ticks:.1f}/s (10/s = keeping up), sim CPU {cpu * 100:.0f}%, "
          f"market behind the clock by {lag_s:.2f} real s at the end, {slow} slow clients "
          "dropped")


if __name__ == "__main__":
    main()
