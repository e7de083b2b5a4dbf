"""Fill model `prints` (the default): resting limits fill at most the size printed through
their price, so a large order fills in parts with the venue's events for each part."""

from __future__ import annotations

from sim.exchange.accounts import AccountConfig
from sim.exchange.rules import resolve
from tests.unit.sim.exchange.engine_rig import ES, Rig

BIG = [AccountConfig(1001, "150KTC-V2-1-1001", 150_000.0,
                     program=resolve("combine", "150k", 150_000.0))]


def prints_rig() -> Rig:
    rig = Rig(accounts=BIG, fill_model="prints")
    rig.market_at(6000.0)
    rig.take()
    return rig


def short(events):
    names = {"GatewayUserOrder": "order", "GatewayUserTrade": "trade",
             "GatewayUserPosition": "position", "GatewayUserAccount": "account"}
    return [(names[n], e["data"].get("status"), e["data"].get("fillVolume", e["data"].get("size")))
            for n, e in events]


def test_a_10_lot_limit_fills_across_prints_in_the_venues_event_order() -> None:
    rig = prints_rig()
    oid = rig.place(type=1, side=0, size=10, limitPrice=5990.0)["orderId"]
    rig.take()
    rig.quote(5989.75, 5990.0)                      # a touch of the ask is no trade
    assert rig.order(oid)["fillVolume"] == 0
    rig.trade(5990.0, size=3)
    rig.trade(5990.25, size=50)                     # above the limit: nothing
    rig.trade(5989.75, size=4)                      # through it
    assert short(rig.take()) == [("order", 1, 3), ("trade", None, 3), ("position", None, 3),
                                 ("account", None, None),
                                 ("order", 1, 7), ("trade", None, 4), ("position", None, 7),
                                 ("account", None, None)]
    rig.trade(5990.0, size=5)
    events = rig.take()
    assert short(events)[0] == ("order", 2, 10) and short(events)[1] == ("trade", None, 3)
    order = rig.order(oid)
    assert (order["status"], order["fillVolume"], order["filledPrice"]) == (2, 10, 5990.0)
    assert [t["size"] for t in rig.trades()] == [3, 4, 3]
    assert rig.positions()[0]["size"] == 10


def test_orders_share_a_print_in_the_order_they_went_live() -> None:
    rig = prints_rig()
    first = rig.place(type=1, side=0, size=2, limitPrice=5990.0)["orderId"]
    second = rig.place(type=1, side=0, size=2, limitPrice=5990.0)["orderId"]
    rig.trade(5990.0, size=3)
    assert (rig.order(first)["fillVolume"], rig.order(second)["fillVolume"]) == (2, 1)


def test_brackets_follow_a_partly_filled_entry() -> None:
    rig = prints_rig()
    entry = rig.place(type=1, side=0, size=5, limitPrice=5990.0,
                      stopLossBracket={"ticks": -40, "type": 4},
                      takeProfitBracket={"ticks": 40, "type": 1})["orderId"]
    rig.trade(5990.0, size=2)
    legs = [o for o in rig.orders() if o["parentOrderId"] == entry]
    assert sorted((o["type"], o["status"], o["size"]) for o in legs) == [(1, 1, 2), (4, 1, 2)]
    tp = next(o for o in legs if o["type"] == 1)
    assert tp["limitPrice"] == 6000.0
    rig.trade(5989.0, size=10)
    legs = [o for o in rig.orders() if o["parentOrderId"] == entry]
    assert sorted(o["size"] for o in legs) == [5, 5]
    rig.trade(6000.0, size=3)                        # the TP fills in part: the SL shrinks
    legs = {o["type"]: o for o in rig.orders() if o["parentOrderId"] == entry}
    assert (legs[1]["fillVolume"], legs[4]["size"], legs[4]["status"]) == (3, 2, 1)
    rig.trade(6000.25, size=9)
    legs = {o["type"]: o for o in rig.orders() if o["parentOrderId"] == entry}
    assert (legs[1]["status"], legs[4]["status"]) == (2, 3)
    assert rig.positions() == []


def test_touch_fills_whole_on_a_quote() -> None:
    rig = Rig(accounts=BIG, fill_model="touch")
    rig.market_at(6000.0)
    oid = rig.place(type=1, side=0, size=10, limitPrice=5990.0)["orderId"]
    rig.quote(5989.75, 5990.0)
    assert rig.order(oid)["fillVolume"] == 10


def test_a_cancel_after_a_part_keeps_what_filled() -> None:
    rig = prints_rig()
    oid = rig.place(type=1, side=1, size=4, limitPrice=6010.0)["orderId"]
    rig.trade(6010.0, size=1)
    assert rig.call("/api/Order/cancel", {"accountId": 1001, "orderId": oid})["success"]
    order = rig.order(oid)
    assert (order["status"], order["fillVolume"]) == (3, 1)
    assert rig.positions()[0]["size"] == 1 and rig.positions()[0]["type"] == 2
    assert ES.id == order["contractId"]
