"""The sim as a Topstep account, over real HTTP and the user hub against a real sim process.

Each enforced rule at its boundary on a 50K Combine (5 lots, micros 1/10, MLL 2,000), at an
accelerated clock; the referee (`GET /admin/breaches`, `/admin/accounts/{id}/risk`) is the
judge. The lax case shows the breach happens when nothing stops it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly.clock import iso_to_ms
from tests.sim_client import anchor_for, login, sim_env
from tests.integration.test_sim_trading import Sim, UserHub
from tests.support import aeventually, eventually, running_sim

SIZE, DRIFT, LAX, PARTS, RESET = 3001, 3002, 3003, 3004, 3005


def admin(sim: Sim, path: str, body: Any = None) -> Any:
    r = (httpx.get(sim.base + path) if body is None else httpx.post(sim.base + path, json=body))
    assert r.status_code == 200, r.text
    return r.json()


def breaches(sim: Sim, account: int) -> list[dict[str, Any]]:
    return admin(sim, f"/admin/breaches?account={account}")["breaches"]


def contract(sim: Sim, symbol_id: str) -> str:
    found = sim.post("/api/Contract/available", {"live": False})["contracts"]
    return next(c["id"] for c in found if c["symbolId"] == symbol_id and c["activeContract"])


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp: Path = tmp_path_factory.mktemp("sim_rules")
    accounts = ",".join(f"{a}:50KTC-V2-000003-{a}:50000" for a in (SIZE, DRIFT, LAX))
    accounts += f",{PARTS}:150KTC-V2-000003-{PARTS}:150000:maxlots=40+mll=100000"
    # an MLL allowance of 50: ten lots' spread and fees take it through its floor at once
    accounts += f",{RESET}:50KTC-V2-000003-{RESET}:50000:maxlots=20+mll=50"
    env = sim_env(tmp, SIM_ACCOUNTS=accounts, SIM_HISTORY_DAYS="1", CLOCK_SPEED="60",
                  SIM_ROOTS="EP,MES",
                  CLOCK_ANCHOR=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    with running_sim(tmp, env) as base:
        yield Sim(base, login(base))


async def test_max_position_at_its_boundary_over_rest_and_the_hub(sim: Sim) -> None:
    es, mes = sim.es["id"], contract(sim, "F.US.MES")
    async with UserHub(sim, SIZE) as hub:
        assert sim.place(SIZE, type=2, side=0, size=4)["success"]
        for _ in range(10):
            assert sim.place(SIZE, contractId=mes, type=2, side=0, size=1)["success"]
        assert admin(sim, f"/admin/accounts/{SIZE}/risk")["lots_in_use"] == 5.0
        eleventh = sim.place(SIZE, contractId=mes, type=2, side=0, size=1)
        fifth = sim.place(SIZE, contractId=es, type=2, side=0, size=1)
        for r in (eleventh, fifth):
            assert (r["success"], r["errorCode"]) == (False, 2), r
            assert "maximum position" in r["errorMessage"]
        await aeventually(lambda: [e for n, e in hub.events if e["data"].get("id") ==
                                   fifth["orderId"]], what="the rejection on the hub")
        rejected = [e["data"] for n, e in hub.events if e["data"].get("id") == fifth["orderId"]]
        assert rejected[-1]["status"] == 5
    for c in (es, mes):
        assert sim.post("/api/Position/closeContract", {"accountId": SIZE, "contractId": c}
                        )["success"]
    r = sim.place(SIZE, type=2, side=0, size=6)
    assert (r["success"], r["errorCode"]) == (False, 2)
    assert sim.positions(SIZE) == [] and breaches(sim, SIZE) == []


async def test_a_drift_through_the_floor_liquidates_locks_and_is_listed(sim: Sim) -> None:
    async with UserHub(sim, DRIFT) as hub:
        assert sim.place(DRIFT, type=2, side=0, size=2)["success"]
        assert sim.positions(DRIFT)
        # -120 points on ES (-12,000 on 2 lots) reached over two minutes of market time
        drift = admin(sim, "/admin/market", {"contractId": sim.es["id"], "ticks": -480,
                                             "over_seconds": 120, "volatility": 1.0})
        assert drift["drift"]["offset"] == -120.0
        await aeventually(lambda: breaches(sim, DRIFT), timeout=20, what="the MLL breach")
        [breach] = breaches(sim, DRIFT)
        assert breach["rule"] == "mll" and breach["enforced"] is True
        figures = breach["figures"]
        assert figures["equity"] <= figures["floor"] == 48000.0
        assert figures["lots"] == 2.0 and figures["contract"] == sim.es["id"]
        assert sim.positions(DRIFT) == []
        await aeventually(lambda: any(n == "GatewayUserAccount" and e["data"]["canTrade"] is False
                                      for n, e in hub.events), what="canTrade false on the hub")
    accounts = sim.post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"]
    assert next(a for a in accounts if a["id"] == DRIFT)["canTrade"] is False
    risk = admin(sim, f"/admin/accounts/{DRIFT}/risk")
    assert risk["lost"] is True and risk["can_trade"] is False and risk["floor"] == 48000.0
    assert sim.place(DRIFT, type=2, side=0, size=1)["errorCode"] == 4
    # history tells the same story as the live prints: the bars went down too
    bars = sim.post("/api/History/retrieveBars", {
        "contractId": sim.es["id"], "live": False, "unit": 2, "unitNumber": 1, "limit": 5,
        "startTime": "2000-01-01T00:00:00Z", "endTime": "2100-01-01T00:00:00Z",
        "includePartialBar": True})["bars"]
    assert min(b["l"] for b in bars) <= breach["figures"]["equity"] and bars


async def test_a_lax_sim_lets_six_lots_through_and_the_referee_records_it(sim: Sim) -> None:
    assert admin(sim, "/admin/rules", {"enforce": "none"})["enforce"] == []
    try:
        r = sim.place(LAX, type=2, side=0, size=6)
        assert r["success"], r
        eventually(lambda: breaches(sim, LAX), what="the max-position breach")
        # (the drift of the test before may still take this account through its floor too)
        breach = breaches(sim, LAX)[0]
        assert breach["rule"] == "max_position" and breach["enforced"] is False
        assert sim.positions(LAX)[0]["size"] == 6
        assert breach["figures"]["lots"] == 6.0 and breach["figures"]["max_lots"] == 5
    finally:
        admin(sim, "/admin/rules", {"enforce": "all"})
        sim.post("/api/Position/closeContract", {"accountId": LAX, "contractId": sim.es["id"]})
    bad = httpx.post(sim.base + "/admin/rules", json={"enforce": ["no_such_rule"]})
    assert bad.status_code == 400 and "no_such_rule" in bad.json()["error"]


async def test_an_account_liquidated_at_its_floor_trades_again_after_a_reset(sim: Sim) -> None:
    async with UserHub(sim, RESET) as hub:
        assert sim.place(RESET, type=2, side=0, size=10)["success"]
        await aeventually(lambda: breaches(sim, RESET), what="the MLL breach")
        assert breaches(sim, RESET)[0]["rule"] == "mll" and sim.positions(RESET) == []
        risk = admin(sim, f"/admin/accounts/{RESET}/risk")
        assert risk["lost"] is True and risk["can_trade"] is False
        assert sim.place(RESET, type=2, side=0, size=1)["errorCode"] == 4
        hub.events.clear()
        fresh = admin(sim, f"/admin/accounts/{RESET}/reset", {"balance": 60000})
        assert (fresh["balance"], fresh["floor"], fresh["high_water"]) == (60000.0, 50000.0,
                                                                            60000.0)
        assert (fresh["lost"], fresh["can_trade"], fresh["breaches"]) == (False, True, 0)
        assert breaches(sim, RESET) == []
        await aeventually(lambda: any(n == "GatewayUserAccount" and e["data"]["canTrade"]
                                      for n, e in hub.events), what="canTrade true on the hub")
        accounts = sim.post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"]
        mine = next(a for a in accounts if a["id"] == RESET)
        assert mine["canTrade"] is True and mine["balance"] == 60000.0
        r = sim.place(RESET, type=2, side=0, size=1)
        assert r["success"], r
        assert sim.positions(RESET)[0]["size"] == 1
    # without a body: the program's starting balance; unknown ids and bad bodies are refused
    plain = httpx.post(f"{sim.base}/admin/accounts/{RESET}/reset")
    assert plain.status_code == 200 and plain.json()["balance"] == 50000.0
    assert sim.positions(RESET) == []
    assert httpx.post(f"{sim.base}/admin/accounts/777/reset").status_code == 404
    bad = httpx.post(f"{sim.base}/admin/accounts/{RESET}/reset", json={"balance": "lots"})
    assert bad.status_code == 400 and "balance" in bad.json()["error"]


def test_a_position_open_at_1510_ct_is_liquidated(tmp_path: Path) -> None:
    """Tuesday 2026-11-24, two market minutes a real second, ES only. The sim starts some
    minutes of market time before 15:10 CT; when starting took so long (a loaded machine) that
    the deadline is too near to open a position first, it starts again with a longer lead."""
    deadline = iso_to_ms("2026-11-24T21:10:00Z")
    for lead_minutes in (12, 40):
        run = tmp_path / f"lead{lead_minutes}"
        run.mkdir()
        env = sim_env(run, SIM_ALWAYS_OPEN="0", SIM_HISTORY_DAYS="1", CLOCK_SPEED="120",
                      SIM_ROOTS="EP",
                      CLOCK_ANCHOR=anchor_for(deadline - lead_minutes * 60_000, 120))
        with running_sim(run, env) as base:
            # 4 market minutes (2 real s) for the login, the contract search and the entry: with
            # 2 (1 real s) a loaded machine could place it after 15:10 CT, refused.
            if httpx.get(f"{base}/admin/state").json()["now"] > deadline - 240_000:
                continue
            sim = Sim(base, login(base))
            r = sim.place(1001, type=2, side=0, size=1)
            assert r["success"], r
            assert sim.positions(1001)
            eventually(lambda: breaches(sim, 1001), timeout=30, what="the flat-by breach")
            [breach] = breaches(sim, 1001)
            assert breach["rule"] == "flat_by" and breach["enforced"] is True
            assert breach["iso"] >= "2026-11-24T21:10:00"
            assert breach["figures"]["deadline"] == "2026-11-24T21:10:00.000Z"
            assert sim.positions(1001) == []
            late = sim.place(1001, type=2, side=0, size=1)
            assert (late["success"], late["errorCode"]) == (False, 5)
            risk = admin(sim, "/admin/accounts/1001/risk")
            assert risk["can_trade"] is True and risk["flat_by"] == "2026-11-24T21:10:00.000Z"
            return
    raise AssertionError("the sim never started early enough before 15:10 CT")


async def test_a_large_limit_fills_across_prints_with_the_venues_events(sim: Sim) -> None:
    """Fill model `prints` (the default): 30 lots bought by the prints walking down through
    the limit, each part an order update (Open, growing fillVolume), its trade, the position
    and the account, in that order; the last part Filled."""
    async with UserHub(sim, PARTS) as hub:
        quote = sim.post("/api/Order/place", {"accountId": PARTS, "contractId": sim.es["id"],
                                              "type": 2, "side": 0, "size": 1})
        last = sim.order(PARTS, quote["orderId"])["filledPrice"]
        r = sim.place(PARTS, type=1, side=0, size=30, limitPrice=last - 2.0)
        assert r["success"], r
        oid = r["orderId"]
        admin(sim, "/admin/market", {"contractId": sim.es["id"], "ticks": -60,
                                     "over_seconds": 120})
        await aeventually(lambda: sum(e["data"]["size"] for n, e in hub.events
                                      if n == "GatewayUserTrade"
                                      and e["data"]["orderId"] == oid) == 30,
                          timeout=30, what="the 30-lot limit filled, on the hub")
        await aeventually(lambda: hub.events[-1][0] == "GatewayUserAccount",
                          what="the last part's account event")
        assert sim.order(PARTS, oid)["status"] == 2
        mine = [(n, e["data"]) for n, e in hub.events
                if (n == "GatewayUserOrder" and e["data"]["id"] == oid)
                or (n == "GatewayUserTrade" and e["data"]["orderId"] == oid)]
        updates = [d for n, d in mine if n == "GatewayUserOrder" and d.get("fillVolume")]
        trades = [d for n, d in mine if n == "GatewayUserTrade"]
        assert len(trades) >= 2 and sum(t["size"] for t in trades) == 30
        assert [u["fillVolume"] for u in updates] == sorted(u["fillVolume"] for u in updates)
        assert [u["status"] for u in updates] == [1] * (len(updates) - 1) + [2]
        assert all(t["price"] <= last - 2.0 for t in trades)
        # each part: the order update, then its trade, then the position, then the account
        seq = [n for n, e in hub.events]
        for u in updates:
            i = next(k for k, (n, e) in enumerate(hub.events)
                     if n == "GatewayUserOrder" and e["data"]["id"] == oid
                     and e["data"].get("fillVolume") == u["fillVolume"])
            assert seq[i + 1:i + 4] == ["GatewayUserTrade", "GatewayUserPosition",
                                        "GatewayUserAccount"], seq[i:i + 4]
        assert sim.positions(PARTS)[0]["size"] == 31


def test_the_floor_trails_only_at_1700_ct_and_locks_at_the_start(tmp_path: Path) -> None:
    """A 50K Combine wins about 3,000 just before 17:00 CT (a drift up, always-open market, two
    market minutes a real second): the floor stays at 48,000 intraday, then trails at the day's
    close to min(S, EOD - 2,000) = 50,000, the starting balance, where it stays."""
    close = iso_to_ms("2026-11-24T23:00:00Z")          # Tuesday 17:00 CT
    for lead_minutes in (10, 30):
        run = tmp_path / f"lead{lead_minutes}"
        run.mkdir()
        env = sim_env(run, SIM_HISTORY_DAYS="1", CLOCK_SPEED="120", SIM_ROOTS="EP",
                      CLOCK_ANCHOR=anchor_for(close - lead_minutes * 60_000, 120))
        with running_sim(run, env) as base:
            if httpx.get(f"{base}/admin/state").json()["now"] > close - 240_000:
                continue
            sim = Sim(base, login(base))
            assert sim.place(1001, type=2, side=0, size=2)["success"]
            admin(sim, "/admin/market", {"contractId": sim.es["id"], "ticks": 240,
                                         "over_seconds": 60})
            eventually(lambda: admin(sim, "/admin/accounts/1001/risk")["open_pnl"] > 3000,
                       timeout=20, what="the position in profit")
            assert sim.post("/api/Position/closeContract", {"accountId": 1001,
                                                            "contractId": sim.es["id"]}
                            )["success"]
            risk = admin(sim, "/admin/accounts/1001/risk")
            assert risk["trading_day"] == "2026-11-25" or risk["floor"] == 48000.0
            if risk["trading_day"] == "2026-11-25":
                continue                                 # the close came too soon: again
            balance = risk["balance"]
            assert balance > 53000.0 and risk["eod_balances"] == []
            eventually(lambda: admin(sim, "/admin/accounts/1001/risk")["eod_balances"],
                       timeout=20, what="the 17:00 CT close")
            risk = admin(sim, "/admin/accounts/1001/risk")
            assert risk["eod_balances"] == [{"day": "2026-11-24", "balance": balance}]
            assert risk["high_water"] == balance and risk["floor"] == 50000.0
            assert breaches(sim, 1001) == []
            return
    raise AssertionError("the sim never started early enough before 17:00 CT")
