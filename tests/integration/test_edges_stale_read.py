"""A REST read never overwrites a newer hub event (issue 20, section 2, item 3), at the venue.

The sim's `rest_stale_ms` fault carries a request out when it arrives and holds its answer until
the test releases it: a `Position/searchOpen` begun while the account is long 2 answers "long 2"
after the stop has filled and the user hub has said flat. Applied the way the old reconcile did
(over whatever was known), that answer is a phantom long 2 and the next flatten sells 2 into a
naked short; the gateway refuses it as older than the hub's event. The other way round, a read
begun flat and answered after a fill hid the position from the flatten. The judges are the
sim's own positions and order list.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any

import httpx
import pytest

from tests.integration.test_gateway_support import Stack, Tap, dump, stack_fixture
from tests.sim_client import counters, set_faults
from tests.support import aeventually, eventually
from trading.blotter import Blotter
from trading.blotter.reports import PositionReport
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

stack = stack_fixture()
pytestmark = pytest.mark.timeout(120)

POSITIONS = "/api/Position/searchOpen"
ORDERS = "/api/Order/search"
ACCOUNTS = "/api/Account/search"


def _stale_count(stack: Stack) -> int:
    return int(counters(stack.base)["counters"].get("faulted_stale", 0))


def _read_positions(stack: Stack, acc: int) -> list[dict[str, Any]]:
    """Position/searchOpen on a client of its own (called from a thread while held)."""
    r = httpx.post(f"{stack.base}{POSITIONS}", json={"accountId": acc}, timeout=30.0,
                   headers={"Authorization": f"Bearer {stack.venue.token}"})
    r.raise_for_status()
    return list(r.json()["positions"])


def _report(p: dict[str, Any], acc: int) -> PositionReport:
    return PositionReport(p["contractId"], p["type"], p["size"], p.get("averagePrice"), acc)


async def test_a_position_read_older_than_the_stop_fill_never_sells_into_a_short(
        stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        res = await tap.submit(contract="MES", side="buy", size=2, sl_ticks=40, tp_ticks=40)
        assert res["status"] == "accepted", res
        stop = eventually(lambda: next((o for o in stack.venue.orders(acc)
                                        if o["type"] == OrderType.STOP
                                        and o["status"] == OrderStatus.OPEN), None),
                          what="the long 2's stop working at the venue")
        contract = stop["contractId"]
        eventually(lambda: [p["size"] for p in stack.venue.positions(acc)] == [2],
                   what="long 2 at the venue")
        await aeventually(lambda: any(p["contract"] == contract and p["size"] == 2
                                      for p in tap.of("position")),
                          what="the gateway sees the long 2")

        # Every position read from now on is answered only when the test says so.
        held = _stale_count(stack)
        stack.venue.faults(rest_stale_ms=60_000, rest_fault_paths=[POSITIONS])
        try:
            await aeventually(lambda: _stale_count(stack) > held, timeout=30,
                              what="the gateway's reconcile reading positions (held)")
            mine = asyncio.ensure_future(asyncio.to_thread(_read_positions, stack, acc))
            await aeventually(lambda: _stale_count(stack) > held + 1, what="the test's read")
            # Both reads saw long 2. Now the stop fills: the trader drags it through the
            # market on the platform, and the venue fills it at once.
            last = stack.venue.quote(contract)[0]
            moved = stack.venue.post("/api/Order/modify", {
                "accountId": acc, "orderId": stop["id"], "stopPrice": last + 5.0})
            assert moved["success"], moved
            eventually(lambda: next(o for o in stack.venue.orders(acc) if o["id"] == stop["id"]
                                    )["status"] == OrderStatus.FILLED, what="the stop filled")
            n = len(tap.of("position"))
            await aeventually(lambda: any(p["contract"] == contract and p["size"] == 0
                                          for p in tap.of("position")[n - 1:]),
                              what="the hub's flat reached the gateway")
            # The held answers land after the hub's flat. The gateway's next position read
            # is held in turn: once it arrives, the stale answer has been applied (or not),
            # and nothing newer has corrected it yet. The flatten is judged in that window.
            set_faults(stack.base, release_stale_now=True)
            stale = await mine
            await aeventually(lambda: _stale_count(stack) > held + 2, timeout=30,
                              what="the gateway done with the stale answer (next read held)")
            orders = len(stack.venue.orders(acc))
            flat = await tap.ask("flatten", {"contract": contract}, timeout=30)
            held = [p for p in (await tap.ask("positions"))["positions"]
                    if p["contract"] == contract and p["size"]]
        finally:
            stack.venue.clear_faults()
        assert [(p["contractId"], p["type"], p["size"]) for p in stale] == \
            [(contract, PositionType.LONG, 2)], dump(stale)       # the stale answer ...
        trades = stack.venue.trades(acc)
        # With the protection, judged at the venue: the flatten sent nothing, the venue is
        # flat, and the gateway holds nothing.
        assert stack.venue.positions(acc) == [], dump([flat, trades])
        assert flat["orders"] == [] and len(stack.venue.orders(acc)) == orders, dump(flat)
        assert held == [], dump(held)
        assert tap.counter("stale_positions") >= 1        # refused as older than the hub's

        # Without the protection: the core fed what the gateway saw, in order (long 2, the
        # read begun, the hub's flat, the read's answer), the answer applied as the old
        # reconcile did (no read mark): a phantom long 2, and its flatten sells 2.
        def core_flatten(read_mark: bool) -> list[tuple[str, str, int]]:
            b = Blotter(acc)
            b.apply_position(PositionReport(contract, PositionType.LONG, 2, None, acc))
            mark = b.read_started()
            b.apply_position(PositionReport(contract, PositionType.FLAT, 0, None, acc))
            b.apply_position(_report(stale[0], acc), read_mark=mark if read_mark else None)
            return b.closing_shares(contract)
        naive = core_flatten(read_mark=False)
        assert [q for _, _, q in naive] == [2], naive
        assert core_flatten(read_mark=True) == []

    stack.gateways[-1].terminate()

    # The old flatten's order, sent as it would have been: the venue goes naked short 2.
    sell = stack.venue.place(acc, contractId=contract, type=OrderType.MARKET, side=Side.SELL,
                             size=naive[0][2])
    assert sell["success"], sell
    short = eventually(lambda: stack.venue.positions(acc), what="the naive close filled")
    assert [(p["type"], p["size"]) for p in short] == [(PositionType.SHORT, 2)], dump(short)
    assert not [o for o in stack.venue.orders(acc) if o["status"] == OrderStatus.OPEN], \
        "the short has no stop: naked"


async def test_a_position_read_older_than_a_fill_never_hides_the_position(stack: Stack) -> None:
    """The other way round: the read begins flat, the trader buys 2 on the platform meanwhile,
    the answer (flat) lands after the hub's long 2. Applied, it hid the long from the gate and
    from the flatten until the next read (15 s by default): the trader's flatten sent nothing
    and the venue stayed long 2."""
    acc = stack.new_account()
    stack.gateway(acc)
    mes = stack.venue.contract("MES")["id"]
    async with Tap(stack.env) as tap:
        await tap.ready()
        held = _stale_count(stack)
        stack.venue.faults(rest_stale_ms=60_000, rest_fault_paths=[POSITIONS])
        try:
            await aeventually(lambda: _stale_count(stack) > held, timeout=30,
                              what="the gateway's reconcile reading positions (held)")
            mine = asyncio.ensure_future(asyncio.to_thread(_read_positions, stack, acc))
            await aeventually(lambda: _stale_count(stack) > held + 1, what="the test's read")
            bought = stack.venue.place(acc, contractId=mes, type=OrderType.MARKET,
                                       side=Side.BUY, size=2)
            assert bought["success"], bought
            await aeventually(lambda: any(p["contract"] == mes and p["size"] == 2
                                          for p in tap.of("position")),
                              what="the hub's long 2 reached the gateway")
            set_faults(stack.base, release_stale_now=True)
            stale = await mine
            await aeventually(lambda: _stale_count(stack) > held + 2, timeout=30,
                              what="the gateway done with the stale answer (next read held)")
            flat = await tap.ask("flatten", {"contract": mes}, timeout=30)
        finally:
            stack.venue.clear_faults()
        assert stale == [], dump(stale)                           # the stale answer: flat
        # With the protection, judged at the venue: the flatten closed the long 2.
        eventually(lambda: stack.venue.positions(acc) == [],
                   what=f"flat at the venue after the flatten {dump(flat)}")
        assert len(flat["orders"]) == 1, dump(flat)
        assert tap.counter("stale_positions") >= 1

    # Without it: the core fed the same (the read begun flat, the hub's long 2, the answer
    # listing nothing) marks the contract flat, and its flatten has nothing to send.
    def core_flatten(read_mark: bool) -> list[tuple[str, str, int]]:
        b = Blotter(acc)
        mark = b.read_started()
        b.apply_position(PositionReport(mes, PositionType.LONG, 2, None, acc))
        b.flat_unless({_report(p, acc).contract or "" for p in stale},
                      read_mark=mark if read_mark else None)
        return b.closing_shares(mes)
    assert core_flatten(read_mark=False) == []
    assert [q for _, _, q in core_flatten(read_mark=True)] == [2]


async def test_an_order_read_older_than_a_modify_never_shrinks_the_exposure(stack: Stack) -> None:
    """A working entry grown from 2 to 4 lots while an Order/search begun before the modify is
    under way: applied, the answer's 2 lots took the entry back to 2 in the gate's exposure, and
    a 3-lot entry passed the 5-lot cap (4 + 3 working at the venue). The venue runs lax here
    (its own place-time check off, as the referee's `exposure_lots` still judges): the gate is
    the only guard being tested, and its loss allowance is wide so that only the cap judges."""
    acc = stack.new_account()
    stack.gateway(acc, RISK_MLL_ALLOWANCE="20000")
    es = stack.venue.contract("EP")["id"]
    far = round(stack.venue.quote(es)[0] - 100.0)           # a buy limit that rests
    rules = f"{stack.base}/admin/rules"
    httpx.post(rules, json={"enforce": "none"}, timeout=10).raise_for_status()
    try:
        async with Tap(stack.env) as tap:
            await tap.ready()
            first = await tap.submit(contract="ES", side="buy", size=2, type="limit",
                                     limit_price=far)
            assert first["status"] == "accepted", first
            await aeventually(lambda: any(o["size"] == 2 and o["state"] == "working"
                                          for o in tap.of("order")), what="the entry working")
            held = _stale_count(stack)
            stack.venue.faults(rest_stale_ms=60_000, rest_fault_paths=[ORDERS])
            try:
                await aeventually(lambda: _stale_count(stack) > held, timeout=30,
                                  what="the gateway's reconcile reading orders (held)")
                grown = await tap.ask("modify", {"order_id": first["order_id"], "size": 4})
                assert grown["status"] == "modified", grown
                await aeventually(lambda: any(o["size"] == 4 for o in tap.of("order")),
                                  what="the hub's 4 lots reached the gateway")
                set_faults(stack.base, release_stale_now=True)
                await aeventually(lambda: _stale_count(stack) > held + 1, timeout=30,
                                  what="the gateway done with the stale answer (next read held)")
                second = await tap.submit(contract="ES", side="buy", size=3, type="limit",
                                          limit_price=far)
            finally:
                stack.venue.clear_faults()
            # Judged by the venue's referee: what the account could hold if every working
            # entry filled never passes its cap.
            ref = httpx.get(f"{stack.base}/admin/accounts/{acc}/risk", timeout=10).json()
            assert ref["exposure_lots"] <= ref["max_lots"], dump([second, ref])
            assert second["status"] == "rejected", dump(second)
            assert tap.counter("stale_orders") >= 1
    finally:
        httpx.post(rules, json={"enforce": "all"}, timeout=10).raise_for_status()


async def test_an_account_read_older_than_a_loss_never_lifts_the_equity(stack: Stack) -> None:
    """An Account/search begun before a losing round turn, answered after the hub's new
    balance: applied, it gave the gate back the balance before the loss, and an entry whose
    worst case ends below the floor from the balance the venue holds passed. The gateway runs
    with a fixed floor (as for a live account) and explicit fees, so the entry is sized from the
    venue's own balances to fall between the two."""
    acc = stack.new_account()
    floor, buffer, fee, tick_value = 49_000.0, 200.0, 1.40, 12.5
    stack.gateway(acc, RISK_FLOOR=str(floor), RISK_MLL_BUFFER=str(buffer), RISK_FEES=f"ES:{fee}")
    es = stack.venue.contract("EP")["id"]
    async with Tap(stack.env) as tap:
        await tap.ready()
        before = stack.venue.balance(acc)
        held = _stale_count(stack)
        stack.venue.faults(rest_stale_ms=60_000, rest_fault_paths=[ACCOUNTS])
        try:
            await aeventually(lambda: _stale_count(stack) > held, timeout=30,
                              what="the gateway's reconcile reading the account (held)")
            for side in (Side.BUY, Side.SELL):     # the spread and the fees: a sure loss
                done = stack.venue.place(acc, contractId=es, type=OrderType.MARKET, side=side,
                                         size=5)
                assert done["success"], done
            eventually(lambda: len(stack.venue.trades(acc)) == 2, what="the round turn")
            after = before + sum(float(t["profitAndLoss"] or 0) - float(t["fees"] or 0)
                                 for t in stack.venue.trades(acc))
            assert after < before
            await aeventually(lambda: any(a["balance"] == after for a in tap.of("account")),
                              what="the hub's balance reached the gateway")
            set_faults(stack.base, release_stale_now=True)
            await aeventually(lambda: _stale_count(stack) > held + 1, timeout=30,
                              what="the gateway done with the stale answer (next read held)")
            # An entry ending at the floor and buffer from the balance the venue holds, inside
            # them from the balance before the loss.
            sl_ticks = math.ceil((after - floor - buffer - 2 * fee) / tick_value) - 1
            worst = (sl_ticks + 1) * tick_value + 2 * fee
            assert after - worst <= floor + buffer < before - worst
            placed = len(stack.venue.orders(acc))
            entry = await tap.submit(contract="ES", side="buy", size=1, sl_ticks=sl_ticks,
                                     tp_ticks=sl_ticks)
        finally:
            stack.venue.clear_faults()
        assert len(stack.venue.orders(acc)) == placed, dump(entry)   # never reached the venue
        assert stack.venue.balance(acc) == after
        assert entry["status"] == "rejected" and entry["rule"] == "mll", dump(entry)
        assert tap.counter("stale_accounts") >= 1
