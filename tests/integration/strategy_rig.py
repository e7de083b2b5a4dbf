"""Helpers for the strategy host tests: the whole system on this test's ports, heartbeats.

Market time starts on a Tuesday evening (CME session open, far from the 15:10 CT flat-by time
and the 16:00 CT halt), so at 60x an accelerated run trades for minutes of real time.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from chillly.bus import Bus
from chillly.codec import Envelope
from chillly import topics
from tests.sim_client import anchor_for, wait_ready
from tests.support import Procs, aeventually

SPEED = 60
MARKET_START = int(datetime(2026, 1, 13, 23, 30, tzinfo=timezone.utc).timestamp() * 1000)


def system_env(tmp: Path, toml: str, speed: float = SPEED, **extra: str) -> dict[str, str]:
    (tmp / "strategies.toml").write_text(toml)
    return {"CLOCK_SPEED": str(speed), "CLOCK_ANCHOR": anchor_for(MARKET_START, speed),
            "DEFAULT_CONTRACTS": "ES,NQ", "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1",
            "FEED_INITIAL_LOOKBACK_MIN": "120", "STRATEGIES_FILE": str(tmp / "strategies.toml"),
            "GATEWAY_DATABASE_PATH": str(tmp / "orders.db"),
            # The gate's marks: 120 market s (2 real s at 60x) rather than the default 15 (a
            # quarter of a real second), so a loaded machine's pause in the quotes while a venue
            # poll is on its way never makes the gate blind and refuse an entry these tests
            # expect (test_strategy_events' manual buy; a live run vs its backtest). Blindness
            # itself is judged by test_risk_blind and test_silent_stream on their own rigs.
            "RISK_MARK_MAX_AGE": "120", **extra}


# The shipped examples as the trading tests run them: 1 lot, 4-tick brackets, fast signals.
EMA = """
[strategies.ema]
class = "strategy_host.examples.ema_cross:EmaCross"
contracts = ["ES"]
timeframes = ["1m"]
[strategies.ema.params]
fast = 2
slow = 4
sl_ticks = 4
tp_ticks = 4
[strategies.ema.limits]
max_lots = 1
"""
ORB = """
[strategies.orb]
class = "strategy_host.examples.orb:OpeningRange"
contracts = ["NQ"]
timeframes = ["1m"]
[strategies.orb.params]
range_bars = 2
sl_ticks = 4
tp_ticks = 4
[strategies.orb.limits]
max_lots = 1
"""
MR = """
[strategies.mr]
class = "strategy_host.examples.mean_reversion:MeanReversion"
contracts = ["ES"]
[strategies.mr.params]
window = 5
band = 1
stale_s = 20
[strategies.mr.limits]
max_lots = 1
"""


ALL = ("store", "series", "aggregator", "feed-bars", "feed-market")


def start_system(procs: Procs, bus_env: dict[str, str], env: dict[str, str],
                 gateway: bool = True, only: tuple[str, ...] = ALL) -> dict[str, Any]:
    """broker, sim, subscriptions, `only` of the data processes (and the gateway): by name."""
    started = {"broker": procs.spawn(["-m", "broker"], name="broker", env=env)}
    started["sim"] = procs.chillly("sim", env=env)
    wait_ready(f"http://127.0.0.1:{bus_env['SIM_PORT']}")
    for name in only:
        started[name] = procs.chillly(name, env=env)
    started["subscriptions"] = procs.chillly("subscriptions", "serve", env=env)
    if gateway:
        started["gateway"] = procs.chillly("gateway", env=env)
    return started


class Watcher:
    """A bus client in the test: heartbeats by process, and any other topics asked for."""

    def __init__(self, bus_env: dict[str, str]) -> None:
        self.bus = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "test")
        self.beats: dict[str, dict[str, Any]] = {}
        self.pids: dict[str, set[int]] = {}
        self.bus.on(topics.HEARTBEATS, self._hb)

    def _hb(self, env: Envelope) -> None:
        p = env.payload
        self.beats[p["name"]] = p
        self.pids.setdefault(p["name"], set()).add(p["pid"])

    async def start(self) -> None:
        await self.bus.ready(timeout=120)   # a loaded 2-core machine starts slowly

    def counter(self, name: str, key: str) -> Any:
        return self.beats.get(name, {}).get("counters", {}).get(key)

    def live(self, name: str) -> bool:
        b = self.beats.get(name)
        return bool(b and b["state"] == "RUNNING" and b["counters"].get("live"))

    async def wait_live(self, *names: str, timeout: float = 90) -> None:
        await aeventually(lambda: all(self.live(n) for n in names), timeout, interval=0.1,
                          what=f"{names} live")

    async def ask(self, service: str, name: str, args: dict[str, Any]) -> Any:
        reply = await self.bus.request(service, name, args, timeout=3, attempts=3)
        assert reply.ok, reply.error
        return reply.result

    async def close(self) -> None:
        await self.bus.close()


async def sleep_market(seconds: float, speed: float = SPEED) -> None:
    await asyncio.sleep(seconds / speed)
