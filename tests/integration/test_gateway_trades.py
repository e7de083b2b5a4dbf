"""`chillly trades`, `chillly report` and the stopped-with-positions warning of `chillly status`
(issue 21 items 5 and 15), through the real commands over a real gateway's journal of real sim
fills; the venue's own trades (profitAndLoss, fees) are the judge of the figures."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from typing import Any

import pytest

from chillly.bus import Bus
from chillly.calendar import trading_date

from tests.integration.test_gateway_support import Stack, Tap, stack_fixture
from tests.support import START_TIMEOUT, ROOT, aeventually, eventually

stack = stack_fixture()

pytestmark = pytest.mark.timeout(180)


FILL_FIELDS = ("account", "trade_id", "order_id", "contract", "side", "size", "price", "owner",
               "client_id", "fees", "vt")


async def the_days_fills_as_the_page_asks(stack: Stack, tap: Tap,
                                          venue: list[dict[str, Any]]) -> None:
    """`fills` over the bus as `web` asks it after a restart: the day's fills from the journal,
    newest first, each as its `fill` event on the bus, the P&L the venue's; a `limit` cuts."""
    web = Bus(stack.env["BUS_PUBLISH_ADDR"], stack.env["BUS_SUBSCRIBE_ADDR"], "web")
    try:
        await web.ready(timeout=START_TIMEOUT)
        reply = await web.request("gateway", "fills", {"limit": 200}, timeout=5.0)
        assert reply.ok, reply.error
        fills = reply.result["fills"]
        by_id = {v["id"]: v for v in venue}
        assert sorted(f["trade_id"] for f in fills) == sorted(by_id)
        assert fills == sorted(fills, key=lambda f: (f["vt"], f["trade_id"]), reverse=True)
        heard = {f["trade_id"]: f for f in tap.of("fill")}
        for f in fills:
            assert {k: f[k] for k in FILL_FIELDS} == {k: heard[f["trade_id"]][k]
                                                       for k in FILL_FIELDS}
            assert f["pnl"] == by_id[f["trade_id"]]["profitAndLoss"]
        assert reply.result["trading_date"] == trading_date(fills[0]["vt"]).isoformat()
        two = await web.request("gateway", "fills", {"limit": 2}, timeout=5.0)
        assert two.ok and two.result["fills"] == fills[:2]
        bad = await web.request("gateway", "fills", {"limit": 0}, timeout=5.0)
        assert not bad.ok and "limit must be an integer" in (bad.error or "")
    finally:
        await web.close()


def run(stack: Stack, acc: int, *args: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "chillly.cli", *args], cwd=str(ROOT),
                       env={**os.environ, **stack.env, **stack.gateway_env(acc)},
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


async def test_round_trips_and_the_report_add_up_to_the_venue_s_own_figures(stack: Stack) -> None:
    acc = stack.new_account()
    gateway = stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        # A long scaled out in two fills, a short, then a long left open.
        for side, size in (("buy", 2), ("sell", 1), ("sell", 1), ("sell", 1), ("buy", 1),
                           ("buy", 1)):
            res = await tap.submit(contract="ES", side=side, size=size)
            assert res["status"] == "accepted", res
            await aeventually(lambda oid=res["order_id"]: any(
                p["order_id"] == oid and p["state"] == "filled" for p in tap.of("order")),
                what=f"{side} {size} filled")
        venue = stack.venue.trades(acc)
        assert len(venue) == 6
        j = stack.journal(acc)
        eventually(lambda: len(j.execute("SELECT trade_id FROM fills").fetchall()) == 6,
                   what="every fill in the journal")
        await the_days_fills_as_the_page_asks(stack, tap, venue)

        rc, out, err = run(stack, acc, "trades", "--json")
        assert rc == 0, err
        doc = json.loads(out)
        trips, still_open = doc["trips"], doc["open"]
        assert [(t["owner"], t["side"], t["size"], t["fills"]) for t in trips] == \
            [("manual", "long", 2, 3), ("manual", "short", 1, 2)]
        assert [(t["side"], t["open_size"]) for t in still_open] == [("long", 1)]
        # The venue's P&L of the closing fills and its fees and commissions, to the cent.
        assert round(sum(t["gross"] for t in trips), 2) == \
            round(sum(v["profitAndLoss"] or 0.0 for v in venue), 2)
        fees = sorted(venue, key=lambda v: v["id"])
        assert round(sum(t["costs"] for t in trips), 2) == \
            round(sum(v["fees"] + (v["commissions"] or 0.0) for v in fees[:5]), 2)
        for t in trips:
            assert t["net"] == round(t["gross"] - t["costs"], 2)
            assert t["exit_ms"] >= t["entry_ms"] and t["duration_s"] >= 0

        rc, out, _ = run(stack, acc, "trades", "--owner", "manual")
        assert rc == 0 and "2 round trip(s), net " in out and "open: manual CON.F.US.EP." in out
        rc, out, _ = run(stack, acc, "trades", "--owner", "ema", "--json")
        assert rc == 0 and json.loads(out) == {"trips": [], "open": []}
        rc, _, err = run(stack, acc, "trades", "--since", "2026-13-01")
        assert rc == 2 and "expected a date YYYY-MM-DD" in err

        rc, out, err = run(stack, acc, "report", "manual", "--days", "3", "--json")
        assert rc == 0, err
        (p,) = json.loads(out)["owners"]
        assert p["trips"] == 2 and p["net"] == round(sum(t["net"] for t in trips), 2)
        assert p["wins"] == sum(t["net"] > 0 for t in trips)
        assert round(sum(p["by_day"].values()), 2) == p["net"]
        rc, out, _ = run(stack, acc, "report")
        assert rc == 0 and "manual: net " in out and "win rate" in out and "max drawdown" in out

        # With the gateway running, status has nothing to warn about; stopped, it warns of the
        # long the journal shows open.
        rc, out, _ = run(stack, acc, "status", "--json", "--wait", "1")
        assert json.loads(out)["unguarded_positions"] is None
    assert gateway.terminate() == 0
    rc, out, _ = run(stack, acc, "status", "--json", "--wait", "1")
    warning = json.loads(out)["unguarded_positions"]
    assert rc == 1 and "the gateway is not running" in warning, warning
    assert re.search(r"CON\.F\.US\.EP\.\w+ \+1\b", warning), warning
    rc, _, err = run(stack, acc, "status", "--wait", "1")
    assert rc == 1 and "WARNING: the gateway is not running and its journal shows positions" \
        in err
    # Closed at the venue (the trader's way out), the next gateway journals the fill as an
    # external one: the manual long and the external short are each owner's open trip, and
    # the account is flat, so status has nothing to warn of once the gateway stops again.
    stack.venue.place(acc, contractId=stack.venue.contract("EP")["id"], type=2, side=1, size=1)
    gateway = stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
    eventually(lambda: len(j.execute("SELECT trade_id FROM fills").fetchall()) == 7,
               what="the venue's closing fill journaled")
    rc, out, _ = run(stack, acc, "trades", "--json")
    assert sorted((t["owner"], t["side"]) for t in json.loads(out)["open"]) == \
        [("external", "short"), ("manual", "long")]
    assert gateway.terminate() == 0
    rc, out, _ = run(stack, acc, "status", "--json", "--wait", "1")
    assert json.loads(out)["unguarded_positions"] is None
