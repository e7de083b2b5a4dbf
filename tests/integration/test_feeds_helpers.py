"""Shared helpers of the feeds integration tests (no tests here): a real broker, a real sim
and the real feed processes, all on one accelerated clock."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from typing import Any

import httpx

from chillly.clock import MINUTE_MS, iso_to_ms, ms_to_iso
from chillly.messages import Bar
from tests import sim_client as testing
from tests.support import START_TIMEOUT, Procs, aeventually


def anchor_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def stack_env(speed: float = 60, **extra: str) -> dict[str, str]:
    """Environment for every process of one test: one accelerated clock, an always-open sim and
    feeds that know it (tests may run on a weekend), a short history, fast set broadcasts."""
    return {"CLOCK_SPEED": str(speed), "CLOCK_ANCHOR": anchor_now(), "SIM_ALWAYS_OPEN": "1",
            "FEED_MARKET_HOURS": "always", "SIM_HISTORY_DAYS": "1",
            "DEFAULT_CONTRACTS": "ES,NQ", "FEED_SET_INTERVAL": "0.5",
            "FEED_HUB_BACKOFF_MIN": "0.05", "FEED_HUB_BACKOFF_MAX": "1", **extra}


class Stack:
    """The processes of one test. `procs.env` must already hold the stack environment."""

    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.base = f"http://127.0.0.1:{procs.env['SIM_PORT']}"
        self.children: dict[str, Any] = {}

    async def start_sim(self) -> None:
        self.children["sim"] = self.procs.chillly("sim")
        await asyncio.to_thread(testing.wait_ready, self.base, START_TIMEOUT)

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> Any:
        cmd = ("subscriptions", "serve") if name == "subscriptions" else (name, *args)
        proc = self.procs.chillly(*cmd, name=name, env=env)
        self.children[name] = proc
        return proc

    def faults(self, **changes: Any) -> dict[str, Any]:
        return testing.set_faults(self.base, **changes)

    def counters(self) -> dict[str, Any]:
        return testing.counters(self.base)["counters"]

    def market_now(self) -> int:
        r = httpx.get(f"{self.base}/admin/state", verify=False)  # http: no CAs (sim_client)
        r.raise_for_status()
        state = r.json()
        t = state.get("market_time") or state.get("now")
        return iso_to_ms(t) if isinstance(t, str) else int(t)

    def venue_bars(self, contract: str, start: int, end: int) -> list[list[Any]]:
        """The sim's own final 1m bars for start <= t < end, oldest first, as [t,o,h,l,c,v]."""
        token = testing.login(self.base)
        r = httpx.post(f"{self.base}/api/History/retrieveBars", headers={
            "Authorization": f"Bearer {token}"}, json={
            "contractId": contract, "live": False, "startTime": ms_to_iso(start),
            "endTime": ms_to_iso(end), "unit": 2, "unitNumber": 1, "limit": 20000,
            "includePartialBar": False}, verify=False)
        r.raise_for_status()
        body = r.json()
        assert body["success"], body
        return sorted([[iso_to_ms(b["t"]), b["o"], b["h"], b["l"], b["c"], b["v"]]
                       for b in body["bars"]])


class Collect:
    """Every message under a topic prefix, in arrival order."""

    def __init__(self, bus: Any, prefix: str) -> None:
        self.items: list[Any] = []
        bus.on(prefix, lambda env: self.items.append(env.message()))

    def finals(self, contract: str) -> list[Bar]:
        return [b for b in self.items if isinstance(b, Bar) and b.final and b.contract == contract
                and b.origin == "poll"]


async def wait_finals(col: Collect, contract: str, n: int, timeout: float = 30.0,
                      after: int | None = None) -> list[Bar]:
    def enough() -> bool:
        got = [b for b in col.finals(contract) if after is None or b.t > after]
        return len(got) >= n
    await aeventually(enough, timeout=timeout, what=f"{n} final bars of {contract}")
    return col.finals(contract)


def assert_finals_match_venue(stack: Stack, finals: list[Bar]) -> None:
    """One final per venue bar over the window, none twice, equal field by field."""
    assert finals, "no final bars"
    contract = finals[0].contract
    ts = [b.t for b in finals]
    assert len(ts) == len(set(ts)), f"duplicate finals: {sorted(t for t in ts if ts.count(t) > 1)}"
    assert ts == sorted(ts), "finals out of time order"
    venue = stack.venue_bars(contract, ts[0], ts[-1] + MINUTE_MS)
    ours = [[b.t, b.o, b.h, b.l, b.c, b.volume] for b in finals]
    missing = sorted({v[0] for v in venue} - set(ts))
    assert not missing, f"holes at {[ms_to_iso(t) for t in missing]}"
    assert ours == venue


def sleep_market(stack_speed: float, market_seconds: float) -> float:
    """Real seconds for a span of market time (to size an outage, not to wait for a result)."""
    return market_seconds / stack_speed


def real_now_ms() -> int:
    return int(time.time() * 1000)
