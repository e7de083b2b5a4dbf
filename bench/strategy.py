"""Strategy host benchmark: a sim print to the strategy's `on_trade`, beside a bare pysignalr
client on the same market hub (the baseline), measured in the same run; the host's RSS; and
the time from starting a host again (a restart) to its first live event; and the submit latency
through the host (a market order every 25th print, one at a time: `buy()` to the first answer
in `on_order`).

    .venv/bin/python bench/strategy.py [--seconds 10] [--speed 60]

Real broker, sim, subscriptions, feed-market, feed-bars, store, series and gateway run as child
processes on free loopback ports, then one sandboxed host (`chillly strategy-host bench`) whose
strategy stamps the wall-clock arrival of every print in `on_trade` and hands the stamps back
through its saved state (its only writable place). The baseline process stamps the same prints
as they come off the hub. Added latency = host stamp - baseline stamp, per print both saw.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import httpx  # noqa: E402

from bench.feeds import bus_side, free_port, pct, raw_side  # noqa: E402

STRATEGY = '''
import time
from strategy_host.api import Strategy

class Stamp(Strategy):
    def on_start(self):
        self.stamps = []
        self.first = None
        self.sent = {}       # client id -> wall ms when buy/sell returned it
        self.submits = []    # ms from buy/sell to the first answer in on_order
        self.n = 0

    def on_trade(self, t):
        now = time.time() * 1000
        if self.first is None:
            self.first = now
        self.stamps.append([t.contract, t.t, t.price, t.size, t.aggressor, now])
        self.n += 1
        # Every 25th print, one market order at a time, flat and long 1 in turn.
        if self.n % 25 == 0 and not self.sent:
            side = self.sell if self.position().size > 0 else self.buy
            self.sent[side(1)] = time.time() * 1000

    def on_order(self, o):
        t0 = self.sent.pop(o.client_id, None)
        if t0 is not None and o.state != "pending":
            self.submits.append(time.time() * 1000 - t0)

    def on_save(self):
        return {"stamps": self.stamps, "first": self.first, "submits": self.submits}
'''

TOML = '''
[strategies.bench]
class = "stamp.py:Stamp"
contracts = ["ES"]
warmup = 0
'''


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--speed", type=float, default=60.0)
    ap.add_argument("--logs", default="", help="keep the processes' logs in this directory")
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-strategy-"))
    os.chmod(tmp, 0o755)
    (tmp / "stamp.py").write_text(STRATEGY)
    (tmp / "strategies.toml").write_text(TOML)
    anchor = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}", "SIM_PORT": str(free_port()),
           "RUN_DIR": f"{tmp}/run", "DATABASE_PATH": f"{tmp}/market.db",
           "GATEWAY_DATABASE_PATH": f"{tmp}/orders.db", "CLOCK_SPEED": str(a.speed),
           "CLOCK_ANCHOR": anchor, "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1",
           "DEFAULT_CONTRACTS": "ES", "LOG_LEVEL": "INFO" if a.logs else "WARNING", "FEED_INITIAL_LOOKBACK_MIN": "30",
           "STRATEGIES_FILE": str(tmp / "strategies.toml"), "HEARTBEAT_INTERVAL": "0.5",
           "STRATEGY_SAVE_INTERVAL": "3600", "METRICS_PORT": str(free_port())}
    full = {**os.environ, **env}
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    py = sys.executable
    children: list[subprocess.Popen[bytes]] = []

    def spawn(*args: str) -> subprocess.Popen[bytes]:
        out = (open(os.path.join(a.logs, f"{len(children):02d}-{args[0]}.log"), "wb") if a.logs
               else subprocess.DEVNULL)
        p = subprocess.Popen([py, "-m", "chillly.cli", *args], cwd=ROOT, env=full,
                             stdout=out, stderr=subprocess.STDOUT)
        children.append(p)
        return p

    state = tmp / "run" / "sim" / "strategies" / "bench" / "state.json"   # RUN_DIR/<venue>/
    try:
        spawn("broker")
        spawn("sim")
        from tests.sim_client import wait_ready
        wait_ready(base)
        for name in ("store", "series", "feed-bars", "feed-market", "gateway"):
            spawn(name)
        spawn("subscriptions", "serve")
        token = httpx.post(f"{base}/api/Auth/loginKey",
                           json={"userName": "b", "apiKey": "k"}).json()["token"]
        r = httpx.post(f"{base}/api/Contract/search", json={"searchText": "ES", "live": False},
                       headers={"Authorization": f"Bearer {token}"}).json()
        from topstepx.contracts import pick
        from topstepx.models import Contract
        contract = pick("ES", [Contract.model_validate(c) for c in r["contracts"]]).id

        host = spawn("strategy-host", "bench")
        rss, _ = hb_wait(env, 60)
        start_at = time.time() + 3.0
        q: mp.Queue = mp.get_context("spawn").Queue()  # type: ignore[type-arg]
        ctx = mp.get_context("spawn")
        sides = [ctx.Process(target=raw_side, args=(base, [contract], a.seconds, start_at, q)),
                 ctx.Process(target=bus_side, args=(env, a.seconds, start_at, q))]
        for p in sides:
            p.start()
        got = {}
        for _ in sides:
            side, _, trades = q.get(timeout=a.seconds + 60)
            got[side] = trades if side == "raw" else trades["trades"]
        for p in sides:
            p.join(5)
        raw_tr, bus_tr = got["raw"], got["bus"]
        host.send_signal(signal.SIGTERM)
        host.wait(10)
        saved = json.loads(state.read_text())["strategy"]
        stamps, submits = saved["stamps"], saved.get("submits", [])
        host_tr = {(c, t, float(p), int(s), int(ag)): now for c, t, p, s, ag, now in stamps}
        # Restart: from starting the host again to its first live print.
        t0 = time.time() * 1000
        host = spawn("strategy-host", "bench")
        _, inner = hb_wait(env, 60)
        time.sleep(1.0)
        host.send_signal(signal.SIGTERM)
        host.wait(10)
        first = json.loads(state.read_text())["strategy"]["first"]
    finally:
        for c in reversed(children):
            if c.poll() is None:
                c.send_signal(signal.SIGTERM)
        for c in children:
            try:
                c.wait(5)
            except subprocess.TimeoutExpired:
                c.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    common = [k for k in raw_tr if k in host_tr and k in bus_tr]
    added = [host_tr[k] - raw_tr[k] for k in common]
    feed = [bus_tr[k] - raw_tr[k] for k in common]
    hosted = [host_tr[k] - bus_tr[k] for k in common]
    print(f"strategy bench: ES, CLOCK_SPEED {a.speed:g}, {a.seconds:g} s measured, "
          f"{len(raw_tr)} prints at the baseline, {len(host_tr)} at the host, "
          f"{len(common)} in both")
    if common:
        print(f"  added by feed-market + broker + host (print -> on_trade vs bare pysignalr), "
              f"ms: p50 {pct(added, 0.5):6.2f}  p99 {pct(added, 0.99):6.2f}  (target p50 <= 1.5)")
        print(f"    of which feed-market + broker (a bare Bus subscriber, same run): "
              f"p50 {pct(feed, 0.5):6.2f}  p99 {pct(feed, 0.99):6.2f}")
        print(f"    and the host (decode, dispatch, on_trade) beyond that subscriber: "
              f"p50 {pct(hosted, 0.5):6.2f}  p99 {pct(hosted, 0.99):6.2f}")
    if submits:
        print(f"  submit through the host (buy() -> the first answer in on_order: host, bus, "
              f"gateway, journal, venue and back), {len(submits)} market orders, ms: "
              f"p50 {pct(submits, 0.5):6.2f}  p99 {pct(submits, 0.99):6.2f}")
    print(f"  host RSS: {rss / 1024:.1f} MB (target <= 60)")
    if first:
        print(f"  restart to first live event: {(first - t0) / 1000:.2f} s from exec "
              "(two interpreter starts and imports, sandbox, bus, gateway sync included); "
              f"{inner / 1000:.3f} s of it from the host's lifecycle start (bus ready, series, "
              "gateway sync, on_start)")
    return 0


def hb_wait(env: dict[str, str], timeout: float) -> tuple[int, int]:
    """Wait for a live heartbeat after the first live event: (RSS kB, first_live_ms)."""
    import asyncio

    from chillly.bus import Bus

    async def run() -> tuple[int, int]:
        bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], "bench-strategy")
        got: dict[str, int] = {}

        def on_hb(e) -> None:  # type: ignore[no-untyped-def]
            c = e.payload["counters"]
            if c.get("live") and c.get("first_live_ms"):
                got["rss"] = c.get("rss_kb", 0)
                got["first"] = c["first_live_ms"]

        bus.on("hb.strategy-bench.", on_hb)
        await bus.ready(timeout=15)
        deadline = time.monotonic() + timeout
        while "rss" not in got and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await bus.close()
        return got.get("rss", 0), got.get("first", 0)

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
