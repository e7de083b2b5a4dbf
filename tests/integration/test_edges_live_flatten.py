"""A flatten on an account that cannot cancel (issue 20 section 2, item 10), judged by the sim's
order list, positions and trades: the venue refuses `Order/cancel` on a live account
(errorCode 6), and closing a position does not cancel its bracket legs (projectx-api.md note 9).

First the unsafe case, the old flatten's requests sent straight to the venue: a market close,
then a cancel of each leg (refused): the stop-loss stays working on the flat account, the
market falls through it, and the account is short 1 that no one asked for.

Then the gateway on such an account, driven by the trader's own CLI tools: `chillly risk` and
`chillly status` say that cancels are not possible before any cancel is tried; a plain sell
that would strand the legs is refused; `chillly flatten` fires the stop through the market
(`Order/modify`; the venue's OCO drops the target) and leaves no working order and a flat
position, which the same fall leaves flat; `chillly halt` does the same on a second bracket.

Accounts, all live (simulated false): 1097 (the gateway's), 1096 (the old path, REST only) and
1094 (legs left by a close elsewhere) in Auto OCO bracket mode, 1095 in Position Brackets mode
(a bracket refused); 1093 a follower (simulated, cancels refused). Unique in the suite: 1001..1060 are the shared rig's, 1098
test_edges_live_account's, 1099 the rig's position-bracket account."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timezone
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_support import ACCOUNTS, Stack, Tap, _stack, dump
from tests.support import PYTHON, ROOT, aeventually, eventually

LIVE, OLD, POSITION, STRANDED, FOLLOWER = 1097, 1096, 1095, 1094, 1093
SL, TP = 120, 120          # bracket ticks (ES: 30 points each way: no fill by chance)
WORKING = {1, 6, 8}        # Open, Pending, Suspended

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="module", name="stack")
def stack_fixture(tmp_path_factory: pytest.TempPathFactory) -> Any:
    # The market at 10x (CLOCK_ANCHOR now), so a drift, which starts at the next market
    # minute, moves the price within seconds.
    yield from _stack(
        tmp_path_factory, CLOCK_SPEED="10",
        CLOCK_ANCHOR=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        SIM_RATE_BARS="100000",
        SIM_ACCOUNTS=f"{ACCOUNTS},{LIVE}:LIVE-{LIVE}:50000:live+auto_oco,"
                     f"{OLD}:LIVE-{OLD}:50000:live+auto_oco,"
                     f"{POSITION}:LIVE-{POSITION}:50000:live+position,"
                     f"{STRANDED}:LIVE-{STRANDED}:50000:live+auto_oco,"
                     f"{FOLLOWER}:PRAC-V2-F-{FOLLOWER}:50000:follower+auto_oco")


def _net(stack: Stack, acc: int, contract: str) -> int:
    return sum(p["size"] * (1 if p["type"] == 1 else -1)
               for p in stack.venue.positions(acc) if p["contractId"] == contract)


def _working(stack: Stack, acc: int) -> list[dict[str, Any]]:
    return [o for o in stack.venue.orders(acc) if o["status"] in WORKING]


def _legs(stack: Stack, acc: int, entry: int) -> dict[str, dict[str, Any]]:
    """The bracket children of `entry` at the sim, by type: "SL" (stop) and "TP" (limit)."""
    return {("SL" if o["type"] == 4 else "TP"): o for o in stack.venue.orders(acc)
            if o.get("parentOrderId") == entry}


def _priced(stack: Stack, acc: int, entry: int) -> dict[str, dict[str, Any]] | None:
    legs = _legs(stack, acc, entry)
    ok = len(legs) == 2 and legs["SL"]["status"] == 1 and legs["SL"].get("stopPrice") \
        and legs["TP"]["status"] == 1 and legs["TP"].get("limitPrice")
    return legs if ok else None


def _drift(stack: Stack, contract: str, ticks: int) -> int:
    """Move the contract's price by `ticks` at the next market minute (the sim's control; the
    prints of the minute before walk toward it). Returns the market ms when it is all in."""
    r = httpx.post(f"{stack.base}/admin/market", json={
        "contractId": contract, "ticks": ticks, "over_seconds": 0}, timeout=5)
    assert r.status_code == 200, r.text
    return int(r.json()["drift"]["start"]) + 5_000


def _market_past(stack: Stack, ms: int) -> bool:
    return int(httpx.get(f"{stack.base}/admin/state", timeout=5).json()["now"]) >= ms


def _status(stack: Stack) -> str:
    import os
    import subprocess
    conf = stack.tmp / "supervisord-live.conf"
    conf.write_text("[supervisord]\n[program:gateway]\ncommand=x\n")
    p = subprocess.run([PYTHON, "-m", "chillly.cli", "status", "--conf", str(conf)],
                       cwd=str(ROOT), env={**os.environ, **stack.env}, capture_output=True,
                       text=True, timeout=60)
    return p.stdout + p.stderr


async def _cli(stack: Stack, *args: str) -> tuple[int, str, str]:
    return await asyncio.to_thread(stack.cli, *args)


async def test_the_old_flatten_leaves_a_stop_that_later_opens_a_naked_short(
        stack: Stack) -> None:
    es = stack.venue.contract("EP")
    entry = stack.venue.place(OLD, contractId=es["id"], type=2, side=0, size=1,
                              customTag="old-1", stopLossBracket={"ticks": -SL, "type": 4},
                              takeProfitBracket={"ticks": TP, "type": 1})
    assert entry["success"], entry
    legs = eventually(lambda: _priced(stack, OLD, entry["orderId"]), timeout=20,
                      what="the bracket working with its prices")
    assert _net(stack, OLD, es["id"]) == 1
    # The old flatten: the close (a market order), then each leg's cancel, which the venue
    # refuses on a live account.
    close = stack.venue.place(OLD, contractId=es["id"], type=2, side=1, size=1)
    assert close["success"], close
    for leg in legs.values():
        out = stack.venue.post("/api/Order/cancel", {"accountId": OLD, "orderId": leg["id"]})
        assert not out["success"] and out["errorCode"] == 6, out
    eventually(lambda: _net(stack, OLD, es["id"]) == 0, what="flat after the close")
    assert {o["id"] for o in _working(stack, OLD)} == {legs["SL"]["id"], legs["TP"]["id"]}
    # The market falls through the stop left behind: it fills, on a flat account.
    done = _drift(stack, es["id"], -3 * SL)
    eventually(lambda: _net(stack, OLD, es["id"]) == -1, timeout=90,
               what="the left stop filled: a naked short 1 at the venue")
    eventually(lambda: _market_past(stack, done), timeout=90, what="the fall over")
    sl = next(o for o in stack.venue.orders(OLD) if o["id"] == legs["SL"]["id"])
    assert sl["status"] == 2, dump(sl)


async def _bracketed_long(stack: Stack, es: dict[str, Any],
                          acc: int = LIVE) -> dict[str, dict[str, Any]]:
    rc, out, err = await _cli(stack, "buy", "ES", "1", "--sl", str(SL), "--tp", str(TP),
                              "--json")
    res = json.loads(out)
    assert rc == 0 and res["status"] == "accepted", (out, err)
    legs = await aeventually(lambda: _priced(stack, acc, res["order_id"]), timeout=20,
                             what="the venue's bracket working with its prices")
    assert _net(stack, acc, es["id"]) == 1
    return legs


def _closed_through_the_stop(stack: Stack, es: dict[str, Any],
                             legs: dict[str, dict[str, Any]]) -> bool:
    """Flat, nothing working, the stop filled and the target cancelled by the venue's OCO."""
    if _net(stack, LIVE, es["id"]) != 0 or _working(stack, LIVE):
        return False
    by_id = {o["id"]: o for o in stack.venue.orders(LIVE)}
    return by_id[legs["SL"]["id"]]["status"] == 2 and by_id[legs["TP"]["id"]]["status"] == 3


async def test_the_gateway_tells_first_and_flattens_through_the_bracket(stack: Stack) -> None:
    es = stack.venue.contract("EP")
    stack.gateway(LIVE)
    async with Tap(stack.env) as tap:
        await tap.ready()
        # Told before it matters: before any cancel is tried.
        rc, out, err = await _cli(stack, "risk")
        assert rc == 0 and "CANCELS    not possible" in out, (out, err)
        rc, out, err = await _cli(stack, "risk", "--json")
        assert json.loads(out)["can_cancel"] is False, out
        assert "cancel_unsupported" in await asyncio.to_thread(_status, stack)
        await aeventually(lambda: tap.heartbeats, what="a heartbeat")
        assert tap.counter("cancels") == 0

        legs = await _bracketed_long(stack, es)
        # A plain sell would close the long and leave both legs working: refused.
        rc, out, _ = await _cli(stack, "sell", "ES", "1", "--json")
        res = json.loads(out)
        assert res["status"] == "rejected" and res["rule"] == "cannot_cancel", out
        assert _net(stack, LIVE, es["id"]) == 1

        rc, out, err = await _cli(stack, "flatten", "ES")
        assert rc == 0, (out, err)
        await aeventually(lambda: _closed_through_the_stop(stack, es, legs), timeout=30,
                          what="flat with no working order: " + dump(_working(stack, LIVE)))

        # halt: the gate's own flatten, the same path
        legs = await _bracketed_long(stack, es)
        rc, out, err = await _cli(stack, "halt", "live-test")
        assert rc == 0, (out, err)
        await aeventually(lambda: _closed_through_the_stop(stack, es, legs), timeout=30,
                          what="flat after halt with no working order: "
                          + dump(_working(stack, LIVE)))
        trades = len(stack.venue.trades(LIVE))
        await aeventually(lambda: tap.counter("flatten_fired") >= 2,
                          what="a leg fired by each flatten")

        # The market falls through where both stops were, then rises through both targets:
        # nothing is left to fill. (Waited out, and last in the test: the gateway, which has
        # no quote feed here, marks from venue bars a moment old, so a position taken while
        # the market still walks 180 points would be judged at a price well off.)
        low = min(stack.venue.quote(es["id"])[0], float(legs["SL"]["stopPrice"]))
        done = _drift(stack, es["id"], -3 * SL)
        await aeventually(lambda: stack.venue.quote(es["id"])[0] < low - 10 * 0.25,
                          timeout=90, what="the market below the old stop")
        await aeventually(lambda: _market_past(stack, done), timeout=90, what="the fall over")
        high = float(legs["TP"]["limitPrice"])
        done = _drift(stack, es["id"], 6 * SL)
        await aeventually(lambda: stack.venue.quote(es["id"])[0] > high + 10 * 0.25,
                          timeout=90, what="the market above the old target")
        await aeventually(lambda: _market_past(stack, done), timeout=90, what="the rise over")
        await asyncio.sleep(1.0)      # a fill of the market's step would be booked by now
        assert _net(stack, LIVE, es["id"]) == 0 and _working(stack, LIVE) == []
        assert len(stack.venue.trades(LIVE)) == trades, dump(stack.venue.trades(LIVE))
        rc, out, err = await _cli(stack, "resume")
        assert rc == 0, (out, err)


async def test_legs_left_by_a_close_elsewhere_are_named_never_cancelled(stack: Stack) -> None:
    """Closed on the venue's platform (a market sell straight to the venue), the position's
    legs are left with nothing to close: the gate sends no cancel it knows is refused, and
    names them in alarm orders_stranded for the trader to cancel on the platform."""
    es = stack.venue.contract("EP")
    stack.gateway(STRANDED)
    async with Tap(stack.env) as tap:
        await tap.ready()
        legs = await _bracketed_long(stack, es, STRANDED)
        assert stack.venue.place(STRANDED, contractId=es["id"], type=2, side=1,
                                 size=1)["success"]
        ids = sorted(o["id"] for o in legs.values())

        def stranded() -> str:
            alarms = (tap.heartbeats[-1].get("alarms") or {}) if tap.heartbeats else {}
            return str(alarms.get("orders_stranded") or "")
        text = await aeventually(stranded, timeout=30, what="alarm orders_stranded")
        assert all(str(i) in text for i in ids), text
        assert tap.counter("cancels") == 0
        assert _net(stack, STRANDED, es["id"]) == 0
        assert sorted(o["id"] for o in _working(stack, STRANDED)) == ids
        # The trader's cancel-all is sent (asked for by hand), and the venue refuses each.
        rc, out, _ = await _cli(stack, "cancel-all", "--json")
        res = json.loads(out)
        assert rc != 0 and res["status"] == "partial" and sorted(res["failed"]) == ids, out
        assert sorted(o["id"] for o in _working(stack, STRANDED)) == ids
        # A flatten of the flat account fires nothing (that would open a position) and names
        # what it cannot withdraw.
        rc, out, _ = await _cli(stack, "flatten", "ES", "--json")
        res = json.loads(out)
        assert res["fired"] == [] and res["orders"] == [] and sorted(res["stranded"]) == ids, out
        assert _net(stack, STRANDED, es["id"]) == 0
        assert sorted(o["id"] for o in _working(stack, STRANDED)) == ids


async def test_a_bracket_the_venue_cannot_resolve_is_refused(stack: Stack) -> None:
    """In Position Brackets mode the venue refuses brackets; on an account that can cancel
    the gateway then manages the pair itself, which here could never be withdrawn."""
    es = stack.venue.contract("EP")
    stack.gateway(POSITION)
    async with Tap(stack.env) as tap:
        await tap.ready()
        rc, out, err = await _cli(stack, "buy", "ES", "1", "--sl", str(SL), "--tp", str(TP),
                                  "--json")
        res = json.loads(out)
        assert res["status"] == "rejected" and res["rule"] == "cannot_cancel", out
        assert "Auto OCO" in res["message"], out
        assert _net(stack, POSITION, es["id"]) == 0 and _working(stack, POSITION) == []


async def test_a_follower_learnt_at_the_flatten_is_closed_through_its_bracket(
        stack: Stack) -> None:
    """A follower (copy trading) reports `simulated: true`: the gateway learns that it cannot
    cancel only from the venue's first refusal. Here that comes at the flatten, from the cancel
    of a resting entry placed before: the flatten then closes through the bracket instead of
    sending a close whose legs it could not cancel. Only the entry it could never withdraw is
    left, named in alarm orders_stranded."""
    es = stack.venue.contract("EP")
    stack.gateway(FOLLOWER)
    async with Tap(stack.env) as tap:
        await tap.ready()
        assert (await tap.ask("account"))["can_cancel"] is True    # not known yet
        legs = await _bracketed_long(stack, es, FOLLOWER)
        px, _ = stack.venue.quote(es["id"])
        far = round(round(px / 0.25) * 0.25 - 400 * 0.25, 2)
        rc, out, err = await _cli(stack, "buy", "ES", "1", "--limit", str(far), "--json")
        entry = json.loads(out)
        assert entry["status"] == "accepted", (out, err)
        rc, out, err = await _cli(stack, "flatten", "ES", "--json")
        await aeventually(lambda: _net(stack, FOLLOWER, es["id"]) == 0 and [
            o["id"] for o in _working(stack, FOLLOWER)] == [entry["order_id"]], timeout=30,
            what="flat, only the resting entry working")
        res = json.loads(out)
        assert res["stranded"] == [entry["order_id"]] and len(res["fired"]) == 1, out
        by_id = {o["id"]: o for o in stack.venue.orders(FOLLOWER)}
        assert by_id[legs["SL"]["id"]]["status"] == 2 and by_id[legs["TP"]["id"]]["status"] == 3
        assert (await tap.ask("account"))["can_cancel"] is False
        rc, out, _ = await _cli(stack, "risk")
        assert "CANCELS    not possible" in out, out
        await aeventually(lambda: str(entry["order_id"]) in str(
            (tap.heartbeats[-1].get("alarms") or {}).get("orders_stranded", "")
            if tap.heartbeats else ""), what="alarm orders_stranded naming the entry")
