"""The chaos run: the whole system under supervisord (the real supervisord.conf, two example
strategies trading through the gateway on the sim at an accelerated clock); each program in turn
is SIGKILLed at whatever moment it is in, and once everything has settled the run compares:

- orders: the venue's order list with the gateway journal (none lost, none doubled, no intent
  left `sending`), the venue's trades with the journal's fills, the venue's positions with the
  gateway's, each strategy's own position with the gateway's view of its owner;
- bars: every final 1m bar of the window in the database once and equal to the venue's, the 5m
  bars equal to the venue's minutes aggregated, no final published twice on the live stream;
- the risk state (trading state, floor, start-of-day balance, high water, manual halt) unchanged
  by the restarts, and the gateway's balance equal to the venue's (day P&L accounted for).

Used by tests/system/test_chaos.py (each program once) and bench/chaos.py (rounds, figures).
The sim is the judge and is never killed.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from chillly.clock import MINUTE_MS
from chillly.codec import Envelope
from chillly.health import HealthView
from chillly.messages import Alarm, Bar, Heartbeat
from tests.integration.test_gateway_support import Venue
from tests.integration.strategy_rig import EMA, ORB, system_env
from tests.support import PYTHON, ROOT, Procs, aeventually
from tests.system.deploy import Deployment, ctl, write_conf

SPEED = 60
TOML = EMA + "\n" + ORB
STRATEGIES = ("ema", "orb")


@dataclass
class Kill:
    """One SIGKILL and what it cost."""

    program: str
    signal: str
    seconds_to_healthy: float | None = None
    strategy_events_missed: int = 0       # its owner's order/fill events while it was down
    strategy_recovered: bool | None = None  # its own position equals the gateway's afterwards


@dataclass
class Verdict:
    """What the comparison found; every list should be empty."""

    orders_lost: list[str] = field(default_factory=list)      # journaled as placed, not at venue
    orders_doubled: list[str] = field(default_factory=list)   # one tag, several venue orders
    orders_unjournaled: list[str] = field(default_factory=list)  # ours at the venue, no intent
    intents_unresolved: list[str] = field(default_factory=list)
    fills_missing: list[int] = field(default_factory=list)    # venue trade, no journal fill
    fills_extra: list[int] = field(default_factory=list)
    positions_differ: list[str] = field(default_factory=list)
    strategies_differ: list[str] = field(default_factory=list)
    bars_lost: list[str] = field(default_factory=list)
    bars_wrong: list[str] = field(default_factory=list)
    bars_doubled: list[str] = field(default_factory=list)
    htf_wrong: list[str] = field(default_factory=list)
    risk_changed: list[str] = field(default_factory=list)
    venue_orders: int = 0
    venue_fills: int = 0
    bars_checked: int = 0

    def problems(self) -> dict[str, list[Any]]:
        return {k: v for k, v in self.__dict__.items() if isinstance(v, list) and v}


class Chaos:
    def __init__(self, procs: Procs, tmp: Path, bus_env: dict[str, str],
                 speed: float = SPEED, **extra: str) -> None:
        self.env = {**bus_env, **system_env(tmp, TOML, speed), "HEARTBEAT_INTERVAL": "0.2",
                    "FEED_SET_INTERVAL": "0.5", "FEED_MARKET_HOURS": "always", **extra}
        procs.env.update(self.env)
        self.tmp = tmp
        self.speed = speed
        conf = write_conf(tmp)
        self.sync(conf)
        self.dep = Deployment(procs, conf, self.env)
        self.view = HealthView(float(self.env["HEARTBEAT_INTERVAL"]), self.dep.names)
        self.dep.bus.on("hb.", self._hb)
        self.dep.bus.on("alarm.", self._alarm)
        self.finals: Counter[tuple[str, str, int, int]] = Counter()
        self.dep.bus.on("bar.", self._bar)
        self.owner_events: list[tuple[float, str]] = []
        for kind in ("order.", "fill."):
            self.dep.bus.on(kind, self._owner_event)
        self.venue: Venue | None = None
        self.account = 0
        self.kills: list[Kill] = []
        self.started_ms = 0

    # ------------------------------------------------------------------ plumbing

    def sync(self, conf: Path) -> None:
        """`chillly strategies sync`: the strategy programs into run/supervisor.d."""
        out = subprocess.run([PYTHON, "-m", "chillly.cli", "strategies", "sync", "--conf",
                              str(conf)], cwd=str(ROOT), env={**os.environ, **self.env},
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr

    def _hb(self, env: Envelope) -> None:
        if env.cls is Heartbeat:
            self.view.on_heartbeat(env.payload, time.monotonic())

    def _alarm(self, env: Envelope) -> None:
        if env.cls is Alarm:
            self.view.on_alarm(env.payload, time.monotonic())

    def _bar(self, env: Envelope) -> None:
        p = env.payload
        if env.cls is Bar and p["final"]:
            self.finals[(p["contract"], p["tf"], p["t"], p.get("rev", 0))] += 1

    def _owner_event(self, env: Envelope) -> None:
        owner = env.payload.get("owner")
        if isinstance(owner, str):
            self.owner_events.append((time.monotonic(), owner))

    def healthy(self) -> bool:
        rows = self.view.rows(time.monotonic())
        if not rows or not all(r.healthy for r in rows):
            return False
        return all(self.live(s) for s in STRATEGIES)

    async def wait_healthy(self, timeout: float, why: str) -> None:
        try:
            await aeventually(self.healthy, timeout, interval=0.1, what=why)
        except AssertionError:
            raise AssertionError(f"not healthy {why} within {timeout}s: {self.unhealthy()}, "
                                 f"live: { {s: self.live(s) for s in STRATEGIES} }") from None

    def unhealthy(self) -> dict[str, list[str]]:
        return {r.name: r.problems for r in self.view.rows(time.monotonic()) if not r.healthy}

    def live(self, strategy: str) -> bool:
        b = self.dep.beats.get(f"strategy-{strategy}")
        return bool(b and b["state"] == "RUNNING" and b["counters"].get("live"))

    async def ask(self, service: str, name: str, args: dict[str, Any] | None = None) -> Any:
        reply = await self.dep.bus.request(service, name, args or {}, timeout=3, attempts=5)
        assert reply.ok, reply.error
        return reply.result

    # ------------------------------------------------------------------ the run

    async def start(self, timeout: float = 180) -> None:
        await self.dep.start(timeout)
        await self.wait_healthy(timeout, "at start")
        self.venue = Venue(f"http://127.0.0.1:{self.env['SIM_PORT']}")
        acct = await self.ask("gateway", "account")
        self.account = int(acct["account_id"])
        self.risk_before = await self.risk_state()
        self.started_ms = int(time.time() * 1000)

    async def risk_state(self) -> dict[str, Any]:
        """What restarts must not move: the trading state, and the risk gate's floor, start-of-
        day balance, high-water mark and manual halt (none of these moves within the run:
        the floor trails only at 17:00 CT, hours of market time away)."""
        acct = await self.ask("gateway", "account")
        risk = await self.ask("gateway", "risk")
        keep = ("floor", "sod_balance", "high_water", "manual_halt", "starting_balance")
        return {"trading_state": acct.get("trading_state"),
                **{k: risk.get(k) for k in keep if isinstance(risk, dict)}}

    def victims(self) -> list[str]:
        return [n for n in self.dep.names if n != "sim"]

    async def kill(self, program: str, sig: int = signal.SIGKILL,
                   timeout: float = 90) -> Kill:
        """Kill `program` now (SIGTERM: `supervisorctl restart`, the clean baseline), then wait
        until the whole system is healthy again."""
        await self.wait_healthy(timeout, f"before killing {program}")
        pid = int(self.dep.beats[program]["pid"])
        t0 = time.monotonic()
        if sig == signal.SIGTERM:   # the operator's way: supervisorctl restart (stop, start)
            k = Kill(program, "restart")
            restart = asyncio.ensure_future(asyncio.to_thread(ctl, self.dep.conf, "restart",
                                                              program))
        else:
            os.kill(pid, sig)
            k = Kill(program, signal.Signals(sig).name)
            restart = None

        def back() -> bool:
            b = self.dep.beats.get(program)
            return bool(b and b["pid"] != pid and self.healthy())

        try:
            await aeventually(back, timeout, interval=0.05, what=f"{program} back")
        except AssertionError:
            raise AssertionError(f"{program} not back and all healthy after {timeout}s: "
                                 f"{self.unhealthy()}, live: "
                                 f"{ {s: self.live(s) for s in STRATEGIES} }") from None
        k.seconds_to_healthy = time.monotonic() - t0
        if restart is not None:
            await restart
        if program.startswith("strategy-"):
            owner = program[len("strategy-"):]
            k.strategy_events_missed = sum(1 for t, o in self.owner_events
                                           if o == owner and t0 <= t)
            k.strategy_recovered = await self.strategy_matches(owner)
        self.kills.append(k)
        return k

    async def strategy_matches(self, owner: str) -> bool:
        """The strategy's own net position (its heartbeat) equals the gateway's for its owner."""
        def signed(p: dict[str, Any]) -> int:
            return int(p["size"]) * (1 if p["side"] == 1 else -1 if p["side"] == 2 else 0)

        async def equal() -> bool:
            pos = await self.ask("gateway", "positions", {"owner": owner})
            theirs = sum(signed(p) for p in pos["positions"])
            mine = self.dep.beats.get(f"strategy-{owner}", {}).get("counters", {}).get("position")
            return mine is not None and int(mine) == theirs

        try:
            await aeventually(equal, 15, interval=0.2, what=f"{owner}'s position")
            return True
        except AssertionError:
            return False

    async def settle(self, market_minutes: int = 3, timeout: float = 90) -> None:
        """Let bars and orders come to rest: healthy, then `market_minutes` more of market time,
        then the database holding every final minute the venue has up to now."""
        await self.wait_healthy(timeout, "to settle")
        await asyncio.sleep(market_minutes * 60 / self.speed)
        try:
            await aeventually(lambda: not self.bar_problems(Verdict()), timeout, interval=1.0,
                              what="database bars equal to the venue's")
        except AssertionError:
            v = Verdict()
            self.bar_problems(v)
            raise AssertionError(f"bars differ after {timeout}s: "
                                 f"{ {k: x[:5] for k, x in v.problems().items()} }") from None

    # ------------------------------------------------------------------ the comparison

    def db(self, path: str) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        conn.row_factory = sqlite3.Row
        return conn

    def contracts(self) -> list[str]:
        with self.db(self.env["DATABASE_PATH"]) as c:
            return [r[0] for r in c.execute("SELECT DISTINCT contract FROM bars WHERE tf='1m'")]

    def bar_problems(self, v: Verdict) -> bool:
        assert self.venue is not None
        for contract in self.contracts():
            with self.db(self.env["DATABASE_PATH"]) as c:
                ours = {r["t"]: [r["t"], r["o"], r["h"], r["l"], r["c"], r["volume"]]
                        for r in c.execute("SELECT * FROM bars WHERE tf='1m' AND contract=? "
                                           "ORDER BY t", (contract,))}
                fives = {r["t"]: [r["t"], r["o"], r["h"], r["l"], r["c"], r["volume"]]
                         for r in c.execute("SELECT * FROM bars WHERE tf='5m' AND contract=? "
                                            "ORDER BY t", (contract,))}
            if not ours:
                continue
            first = min(ours)
            newest_complete = (int(time.time() * 1000) // 1000) * 1000   # refined by the venue
            venue = self.venue_bars(contract, first, newest_complete)
            if not venue:
                continue
            last = venue[-1][0]
            v.bars_checked += len(venue)
            for row in venue:
                got = ours.get(row[0])
                if got is None:
                    v.bars_lost.append(f"{contract} 1m {row[0]}")
                elif got != row:
                    v.bars_wrong.append(f"{contract} 1m {row[0]}: {got} != {row}")
            # 5m: the venue's minutes aggregated, for buckets wholly inside the window.
            by_bucket: dict[int, list[list[Any]]] = {}
            for row in venue:
                by_bucket.setdefault(row[0] - row[0] % (5 * MINUTE_MS), []).append(row)
            for t, rows in by_bucket.items():
                if t < first or t + 5 * MINUTE_MS > last:
                    continue
                want = [t, rows[0][1], max(r[2] for r in rows), min(r[3] for r in rows),
                        rows[-1][4], sum(r[5] for r in rows)]
                got = fives.get(t)
                if got != want:
                    v.htf_wrong.append(f"{contract} 5m {t}: {got} != {want}")
        return bool(v.bars_lost or v.bars_wrong or v.htf_wrong)

    def venue_bars(self, contract: str, start: int, end_real_ms: int) -> list[list[Any]]:
        """The venue's final 1m bars from `start` to the last closed minute (market time)."""
        assert self.venue is not None
        from chillly.clock import iso_to_ms, ms_to_iso
        body = self.venue.post("/api/History/retrieveBars", {
            "contractId": contract, "live": False, "startTime": ms_to_iso(start),
            "endTime": ms_to_iso(start + 10 * 24 * 3600 * 1000), "unit": 2, "unitNumber": 1,
            "limit": 20000, "includePartialBar": False})
        rows = sorted([iso_to_ms(b["t"]), b["o"], b["h"], b["l"], b["c"], b["v"]]
                      for b in body["bars"])
        # The newest minute may be closing right now: leave it to the next look.
        return rows[:-1]

    async def compare(self, within: float = 20.0) -> Verdict:
        """The comparison, taken again until it finds nothing or `within` seconds pass.

        The strategies keep trading while it looks, so one snapshot can catch an order between
        the venue and the journal (its intent still `sending`, its fill at the venue and not yet
        journaled): that is in flight, not lost. A real loss or doubling stays in every look."""
        deadline = time.monotonic() + within
        while True:
            v = await self.snapshot()
            if not v.problems() or time.monotonic() >= deadline:
                return v
            await asyncio.sleep(0.5)

    async def snapshot(self) -> Verdict:
        """One look: the journal, the venue, the gateway and the database side by side."""
        assert self.venue is not None
        v = Verdict()
        self.bar_problems(v)
        doubled = [k for k, n in self.finals.items() if n > 1 and k[1] == "1m"]
        v.bars_doubled = [f"{c} {tf} {t} rev {r}" for c, tf, t, r in doubled]
        venue_orders = self.venue.orders(self.account)
        v.venue_orders = len(venue_orders)
        with self.db(self.env["GATEWAY_DATABASE_PATH"]) as j:
            intents = [dict(r) for r in j.execute("SELECT * FROM intents")]
            fills = {r["trade_id"] for r in j.execute("SELECT trade_id FROM fills")}
        by_tag: Counter[str] = Counter(o.get("customTag") for o in venue_orders
                                       if o.get("customTag"))
        tags = {i["custom_tag"]: i for i in intents}
        v.orders_doubled = [t for t, n in by_tag.items() if n > 1]
        v.orders_lost = [i["client_id"] for i in intents
                         if i["status"] == "placed" and i["custom_tag"] not in by_tag]
        v.orders_unjournaled = [t for t in by_tag if t not in tags
                                and not any(t.startswith(x + "-") for x in tags)]
        v.intents_unresolved = [i["client_id"] for i in intents if i["status"] == "sending"]
        trades = {int(t["id"]) for t in self.venue.trades(self.account) if not t.get("voided")}
        v.venue_fills = len(trades)
        v.fills_missing = sorted(trades - fills)
        v.fills_extra = sorted(fills - trades)
        venue_pos = {p["contractId"]: int(p["size"]) * (1 if p["type"] == 1 else -1)
                     for p in self.venue.positions(self.account)}
        ours = await self.ask("gateway", "positions", {"owner": "_account"})
        gw_pos = {p["contract"]: int(p["size"]) * (1 if p["side"] == 1 else -1)
                  for p in ours["positions"] if p["size"]}
        if venue_pos != gw_pos:
            v.positions_differ.append(f"venue {venue_pos} != gateway {gw_pos}")
        for s in STRATEGIES:
            if not await self.strategy_matches(s):
                v.strategies_differ.append(s)
        risk = await self.risk_state()
        for k, before in self.risk_before.items():
            if risk.get(k) != before:
                v.risk_changed.append(f"{k}: {before} -> {risk.get(k)}")
        # Day P&L: the gateway's balance is the venue's (every fill and fee accounted for).
        acct = await self.ask("gateway", "account")
        venue_balance = self.venue.balance(self.account)
        if abs(float(acct["balance"]) - venue_balance) > 0.005:
            v.risk_changed.append(f"balance: gateway {acct['balance']} != venue {venue_balance}")
        return v

    async def close(self) -> None:
        await self.dep.close()
