"""The risk gate with no quote feed, judged by the sim's referee (`GET /admin/breaches`).

Processes: broker, sim (lax: SIM_ENFORCE=none, so only its referee records breaches), gateway;
no feed-market, no subscriptions: the gateway never sees a `quote.` message. One 50K Combine
account (floor 48,000) buys 2 ES through the gateway, then the admin market drift takes ES down
120 ticks (3,000 $ on 2 lots) over 10 market minutes at 60x.

- RISK_MARK_FALLBACK=false: the gate marks nothing, believes equity = balance, never halts:
  the referee records an MLL breach (the unsafe case this protection exists for);
- the default (venue marks from the forming 1m bar): the gate sees the loss, halts at the
  buffer and flattens; the referee records nothing even after the whole drift;
- the venue's bars failing too (sim fault on History/retrieveBars): alarm `blind`, an entry is
  refused (rule `blind`), an exit goes through; bars back: the alarm clears, entries pass;
- with feed-market running the quotes mark the position (no venue poll); SIGKILL it and its last
  quote goes stale: venue marks take over and the gate still flattens in time.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly.bus import Bus
from chillly.calendar import CHICAGO
from chillly.clock import SystemClock, iso_to_ms
from tests.sim_client import anchor_for, clear_faults, login, set_faults, wait_ready
from tests.integration.test_gateway_support import gateway_ready
from chillly.tools_socket import ask as ask_tools
from tests.support import START_TIMEOUT, Procs, aeventually, free_port, tools_path

ACCOUNT = 1001
SPEED = 60.0
DRIFT_TICKS, DRIFT_S = -120, 600
#: The MLL buffer must cover the move the referee can see between two of the gate's venue polls
#: (every 3 market s) plus the flatten's fill. The sim's tape takes a minute's whole drift (12
#: ticks here) at a random moment within the minute, with print noise of a sixth of its range:
#: up to ~18 ticks = 450 $ on 2 lots in one poll; 800 (32 ticks) leaves room.
BUFFER = "800"


class Rig:
    def __init__(self, tmp: Path, feed: bool = False, **extra: str) -> None:
        self.feed = feed
        self.feed_proc: Any = None
        self.quotes = 0
        start = int(datetime(2026, 12, 2, 9, 0, tzinfo=CHICAGO).timestamp() * 1000)
        self.env = {
            "BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "SIM_PORT": str(free_port()), "METRICS_PORT": str(free_port()),
            "RUN_DIR": str(tmp / "run"), "HEARTBEAT_INTERVAL": "0.2", "LOG_LEVEL": "INFO",
            "CLOCK_SPEED": str(SPEED), "CLOCK_ANCHOR": anchor_for(start, SPEED),
            "SIM_ACCOUNTS": f"{ACCOUNT}:50KTC-V2-1-{ACCOUNT}:50000", "SIM_ENFORCE": "none",
            "SIM_HISTORY_DAYS": "1", "SIM_RATE_OTHER": "100000",
            "TOPSTEP_ACCOUNT_ID": str(ACCOUNT), "GATEWAY_DATABASE_PATH": str(tmp / "orders.db"),
            "GATEWAY_RECONCILE_INTERVAL": "600", "STRATEGIES_FILE": str(tmp / "none.toml"),
            "RISK_MLL_BUFFER": BUFFER, **extra,
        }
        self.procs = Procs(tmp, self.env)
        self.base = f"http://127.0.0.1:{self.env['SIM_PORT']}"
        self.clock = SystemClock(SPEED, iso_to_ms(self.env["CLOCK_ANCHOR"]))
        self.bus: Bus | None = None
        self.hb: dict[str, Any] = {}
        self.risk: list[dict[str, Any]] = []
        self._n = itertools.count(1)

    async def start(self) -> None:
        self.procs.spawn(["-m", "broker"], name="broker")
        self.procs.chillly("sim", name="sim")
        wait_ready(self.base)
        self.token = login(self.base)
        if self.feed:
            self.procs.chillly("subscriptions", "serve", name="subscriptions")
            self.feed_proc = self.procs.chillly("feed-market", name="feed-market")
        self.procs.chillly("gateway", name="gateway")
        self.bus = bus = Bus(self.env["BUS_PUBLISH_ADDR"], self.env["BUS_SUBSCRIBE_ADDR"],
                             "test-blind")
        bus.on("hb.gateway.", self._beat)
        bus.on("risk.", lambda e: self.risk.append(e.payload))
        bus.on("quote.", lambda e: setattr(self, "quotes", self.quotes + 1))
        await bus.ready(timeout=START_TIMEOUT)
        await gateway_ready(bus)
        contracts = self.venue("Contract/available", {"live": False})["contracts"]
        self.es = next(c["id"] for c in contracts
                       if c["symbolId"] == "F.US.EP" and c["activeContract"])

    def _beat(self, env: Any) -> None:
        self.hb = dict(env.payload, n=self.hb.get("n", 0) + 1)

    def venue(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.base}/api/{path}", json=body,
                       headers={"Authorization": f"Bearer {self.token}"}, timeout=5)
        return dict(r.json())

    def held(self) -> int:
        rows = self.venue("Position/searchOpen", {"accountId": ACCOUNT})["positions"]
        return sum(p["size"] if p["type"] == 1 else -p["size"] for p in rows)

    async def submit(self, side: str, size: int) -> dict[str, Any]:
        ok, result, error = await ask_tools(tools_path(self.env), "submit", {
            "client_id": f"manual-b{next(self._n)}", "contract": "ES", "side": side,
            "size": size}, timeout=15.0)
        assert ok, error
        return result  # type: ignore[no-any-return]

    def breaches(self) -> list[dict[str, Any]]:
        return list(httpx.get(f"{self.base}/admin/breaches", params={"account": ACCOUNT},
                              timeout=5).json()["breaches"])

    def drift(self) -> int:
        """Start the drift; returns the market time it is complete."""
        r = httpx.post(f"{self.base}/admin/market", json={
            "contractId": self.es, "ticks": DRIFT_TICKS, "over_seconds": DRIFT_S}, timeout=5)
        assert r.status_code == 200, r.text
        return int(r.json()["drift"]["start"]) + DRIFT_S * 1000

    def alarms(self) -> dict[str, Any]:
        return dict(self.hb.get("alarms") or {})

    def counters(self) -> dict[str, Any]:
        return dict(self.hb.get("counters") or {})

    async def close(self) -> None:
        if self.bus is not None:
            await self.bus.close()
        self.procs.cleanup()


async def _rig(tmp: Path, feed: bool = False, **extra: str) -> AsyncIterator[Rig]:
    rig = Rig(tmp, feed, **extra)
    try:
        await rig.start()
        yield rig
    finally:
        await rig.close()
        print(rig.procs.dump_logs()[-8000:])       # shown when the test fails


@pytest.fixture
async def unprotected(tmp_path: Path) -> AsyncIterator[Rig]:
    async for rig in _rig(tmp_path, RISK_MARK_FALLBACK="false"):
        yield rig


@pytest.fixture
async def protected(tmp_path: Path) -> AsyncIterator[Rig]:
    async for rig in _rig(tmp_path):
        yield rig


@pytest.fixture
async def quoted(tmp_path: Path) -> AsyncIterator[Rig]:
    async for rig in _rig(tmp_path, feed=True, DEFAULT_CONTRACTS="ES"):
        yield rig


async def _long_two(rig: Rig) -> None:
    r = await rig.submit("buy", 2)
    assert r["status"] == "accepted", r
    await aeventually(lambda: rig.held() == 2, timeout=10, what="2 ES held")


# Not serial: the unsafe case (a breach with no marks) happens however loaded the machine is.
async def test_without_venue_marks_the_referee_records_an_mll_breach(unprotected: Rig) -> None:
    rig = unprotected
    await _long_two(rig)
    # No quote ever, no fallback: the gateway says it is blind, and that is all it can do.
    await aeventually(lambda: "blind" in rig.alarms(), timeout=10, what="blind alarm")
    assert (await rig.submit("buy", 1))["rule"] == "blind"
    done = rig.drift()
    await aeventually(lambda: rig.breaches(), timeout=(done - rig.clock.now_ms()) / 1000 / SPEED
                      + 10, interval=0.2, what="the referee's MLL breach")
    assert "mll" in {b["rule"] for b in rig.breaches()}, rig.breaches()
    print("unprotected: referee breaches", rig.breaches())
    assert rig.held() == 2                               # the gate never flattened
    assert rig.counters().get("marks_venue") == 0


@pytest.mark.serial
async def test_venue_marks_halt_and_flatten_at_the_buffer_before_the_floor(
        protected: Rig) -> None:
    rig = protected
    await _long_two(rig)
    await aeventually(lambda: rig.counters().get("marks_venue", 0) > 0, timeout=10,
                      what="a venue mark")
    done = rig.drift()
    await aeventually(lambda: rig.held() == 0, timeout=(done - rig.clock.now_ms()) / 1000
                      / SPEED + 10, interval=0.1, what="the gate's flatten")
    await aeventually(lambda: any(e.get("event") == "state" and e.get("state") == "HALTED"
                                  and e.get("rule") == "mll" for e in rig.risk), timeout=5,
                      what="the gate's MLL halt event")
    # Let the whole drift play out: the account, flat, never reaches the floor.
    await aeventually(lambda: rig.clock.now_ms() > done + 5_000, timeout=DRIFT_S / SPEED + 10,
                      interval=0.2)
    assert rig.breaches() == []
    risk = httpx.get(f"{rig.base}/admin/accounts/{ACCOUNT}/risk", timeout=5).json()
    assert risk["equity"] > risk["floor"] and not risk["lost"], risk
    print("protected: halted", [e for e in rig.risk if e.get("event") == "state"],
          "referee breaches", rig.breaches(), "referee equity", risk["equity"])
    c = rig.counters()
    assert c["marks_venue"] > 0 and c["marks_blind_alarms"] == 0, c


async def test_entries_wait_while_blind_and_pass_when_prices_return(protected: Rig) -> None:
    rig = protected
    await _long_two(rig)
    await aeventually(lambda: rig.counters().get("marks_venue", 0) > 0, timeout=10,
                      what="a venue mark")
    set_faults(rig.base, rest_fail_rate=1.0, rest_fault_paths=["/api/History/retrieveBars"])
    await aeventually(lambda: "blind" in rig.alarms(), timeout=15, what="blind alarm")
    r = await rig.submit("buy", 1)
    assert (r["status"], r["rule"]) == ("rejected", "blind"), r
    assert rig.es in r["message"], r
    r = await rig.submit("sell", 1)                      # an exit is never held back
    assert r["status"] == "accepted", r
    await aeventually(lambda: rig.held() == 1, timeout=10)
    clear_faults(rig.base)
    await aeventually(lambda: "blind" not in rig.alarms(), timeout=15, what="alarm cleared")
    r = await rig.submit("buy", 1)
    assert r["status"] == "accepted", r
    await aeventually(lambda: rig.held() == 2, timeout=10)
    c = rig.counters()
    # the venue's 500s were met (retried inside one poll, or failed polls), then marks resumed
    assert c["venue_http_5xx"] > 0 and c["marks_blind_alarms"] >= 1, c


@pytest.mark.serial
async def test_a_quote_feed_that_dies_is_replaced_by_venue_marks(quoted: Rig) -> None:
    rig = quoted
    await aeventually(lambda: rig.quotes > 0, timeout=20, what="quotes from feed-market")
    await _long_two(rig)
    # Quotes flowing: they mark the position, the venue is not asked (the gateway takes the
    # contract's quotes once it holds it: a poll or two may come first). 3 heartbeats = 36
    # market seconds, more than RISK_MARK_MAX_AGE.
    got = rig.counters()["received"]
    await aeventually(lambda: rig.counters()["received"] > got + 50, timeout=10,
                      what="quotes reaching the gateway")
    beats, polled = rig.hb["n"], rig.counters()["marks_venue"]
    await aeventually(lambda: rig.hb.get("n", 0) >= beats + 3, timeout=10, what="heartbeats")
    assert rig.counters()["marks_venue"] == polled, rig.counters()
    rig.feed_proc.kill()                                 # the quote feed crashes
    await aeventually(lambda: rig.counters().get("marks_venue", 0) > polled, timeout=10,
                      what="venue marks after the feed died")
    done = rig.drift()
    await aeventually(lambda: rig.held() == 0, timeout=(done - rig.clock.now_ms()) / 1000
                      / SPEED + 10, interval=0.1, what="the gate's flatten")
    await aeventually(lambda: rig.clock.now_ms() > done + 5_000, timeout=DRIFT_S / SPEED + 10,
                      interval=0.2)
    assert rig.breaches() == []
    c = rig.counters()
    assert c["marks_blind_alarms"] == 0, c
