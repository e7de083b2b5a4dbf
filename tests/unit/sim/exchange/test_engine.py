"""The sim's trading engine: orders, brackets, OCO, positions, P&L, fees, hub event order."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sim.exchange.fees import fee_per_side, fees_for
from sim.exchange.accounts import AccountConfig, parse_accounts
from tests.unit.sim.exchange.engine_rig import ACCOUNT, ES, ES_NEXT, MNQ, Rig


def kinds(events):
    """Compact view of an event list: (short name, action, status or None)."""
    short = {"GatewayUserOrder": "order", "GatewayUserTrade": "trade",
             "GatewayUserPosition": "position", "GatewayUserAccount": "account"}
    return [(short[n], e["action"], e["data"].get("status")) for n, e in events]


@pytest.fixture
def rig() -> Rig:
    r = Rig()
    r.market_at(6000.0)  # last 6000.00, bid 6000.00, ask 6000.25
    r.take()
    return r


# ----- market orders and the event sequence ---------------------------------------------------

def test_market_buy_fills_at_ask_with_live_event_sequence(rig: Rig) -> None:
    r = rig.place(type=2, side=0)
    assert r["success"] and r["errorCode"] == 0 and r["errorMessage"] is None
    events = rig.take()
    assert kinds(events) == [("order", 1, 6), ("order", 1, 2), ("trade", 0, None),
                             ("position", 1, None), ("account", 1, None)]
    pending, filled, trade, position, account = (e for _, e in events)
    assert pending["data"]["fillVolume"] == 0 and "filledPrice" not in pending["data"]
    assert filled["data"]["filledPrice"] == 6000.25 and filled["data"]["fillVolume"] == 1
    # hub payloads omit nulls: no limitPrice on a market order, no profitAndLoss when opening
    assert "limitPrice" not in filled["data"] and "stopPrice" not in filled["data"]
    assert "profitAndLoss" not in trade["data"]
    assert trade["data"]["orderId"] == r["orderId"] and trade["data"]["fees"] == 1.40
    assert filled["data"]["creationTimestamp"].endswith("Z")
    assert position["data"]["type"] == 1 and position["data"]["size"] == 1
    assert position["data"]["averagePrice"] == 6000.25
    assert position["data"]["contractDisplayName"] == "ESZ6"
    assert account["data"]["balance"] == 50000.0 - 1.40


def test_market_sell_fills_at_bid(rig: Rig) -> None:
    rig.place(type=2, side=1)
    assert rig.trades()[0]["price"] == 6000.0
    assert rig.positions()[0]["type"] == 2


def test_market_order_fills_at_last_print_without_a_quote() -> None:
    rig = Rig()
    rig.trade(6010.5)
    rig.place(type=2, side=0)
    assert rig.trades()[0]["price"] == 6010.5


def test_market_order_without_any_price_is_rejected_but_gets_an_id() -> None:
    rig = Rig()
    r = rig.place(type=2, side=0)
    assert r["success"] is False and r["errorCode"] == 2 and isinstance(r["orderId"], int)
    events = rig.take()
    assert kinds(events) == [("order", 1, 5)]
    assert events[0][1]["data"]["fillVolume"] == 0 and events[0][1]["data"]["id"] == r["orderId"]
    assert rig.order(r["orderId"])["status"] == 5


def test_rest_order_has_explicit_nulls_and_microsecond_offset_timestamps(rig: Rig) -> None:
    r = rig.place(type=2, side=0)
    order = rig.order(r["orderId"])
    assert order["limitPrice"] is None and order["stopPrice"] is None
    assert order["customTag"] is None and "parentOrderId" in order
    assert order["creationTimestamp"] == "2026-11-24T15:00:00.000000+00:00"
    trade = rig.trades()[0]
    assert trade["profitAndLoss"] is None and trade["creationTimestamp"].endswith("+00:00")


# ----- rejections ------------------------------------------------------------------------------

def test_outside_trading_hours_is_error_code_5(rig: Rig) -> None:
    rig.market.open = False
    r = rig.place(type=2, side=0)
    assert r["errorCode"] == 5 and r["success"] is False
    assert rig.order(r["orderId"])["status"] == 5


def test_non_front_month_is_error_code_9(rig: Rig) -> None:
    r = rig.place(contract=ES_NEXT, type=2, side=0)
    assert r["errorCode"] == 9 and rig.order(r["orderId"])["contractId"] == ES_NEXT.id


def test_unknown_contract_is_error_code_8(rig: Rig) -> None:
    r = rig.call("/api/Order/place", {"accountId": ACCOUNT, "contractId": "CON.F.US.XX.Z26",
                                      "type": 2, "side": 0, "size": 1})
    assert r["errorCode"] == 8 and isinstance(r["orderId"], int)


def test_unknown_account_is_error_code_1_with_an_id(rig: Rig) -> None:
    r = rig.place(account=4242, type=2, side=0)
    assert r["errorCode"] == 1 and isinstance(r["orderId"], int)
    assert rig.take() == []


@pytest.mark.parametrize("fields, message", [
    ({"type": 0, "side": 0}, "Invalid order type (0)."),
    ({"type": 9, "side": 0}, "Invalid order type (9)."),
    ({"type": 2, "side": 2}, "Invalid order side (2)."),
    ({"type": 2, "side": 0, "size": 0}, "Invalid order size (0)."),
    ({"type": 1, "side": 0}, "Limit price not set."),
    ({"type": 1, "side": 0, "limitPrice": 5999.1},
     "Invalid limit price. Price is not aligned to tick size."),
    ({"type": 4, "side": 0}, "Stop price not set."),
])
def test_invalid_orders_are_rejected_with_code_2(rig: Rig, fields: dict, message: str) -> None:
    r = rig.place(**fields)
    assert (r["success"], r["errorCode"], r["errorMessage"]) == (False, 2, message)


def test_account_that_cannot_trade_is_rejected() -> None:
    rig = Rig(accounts=[AccountConfig(7, "X", can_trade=False)])
    rig.market_at(6000.0)
    assert rig.place(account=7, type=2, side=0)["errorCode"] == 4


# ----- brackets ---------------------------------------------------------------------------------

@pytest.mark.parametrize("side, sl, tp, message", [
    (0, {"ticks": 40, "type": 4}, None,
     "Invalid stop loss ticks (40). Ticks should be less than zero when longing."),
    (0, None, {"ticks": -20, "type": 1},
     "Invalid take profit ticks (-20). Ticks should be greater than zero when longing."),
    (1, {"ticks": -40, "type": 4}, None,
     "Invalid stop loss ticks (-40). Ticks should be greater than zero when shorting."),
    (1, None, {"ticks": 20, "type": 1},
     "Invalid take profit ticks (20). Ticks should be less than zero when shorting."),
    (0, {"ticks": -10, "type": 1}, None, "Invalid stop loss type (Limit)"),
    (0, None, {"ticks": 10, "type": 4}, "Invalid take profit type (Stop)"),
    (0, {"ticks": -1, "type": 4}, None,
     "Invalid stop loss ticks (-1). Price should be at least 4 ticks away."),
    (1, None, {"ticks": -3, "type": 1},
     "Invalid take profit ticks (-3). Price should be at least 4 ticks away."),
    (0, {"ticks": -10, "type": 4}, {"ticks": 0, "type": 1},
     "Invalid take profit ticks (0). Ticks should be greater than zero when longing."),
])
def test_bracket_sign_and_type_rules(rig: Rig, side: int, sl, tp, message: str) -> None:
    fields = {"type": 2, "side": side}
    if sl:
        fields["stopLossBracket"] = sl
    if tp:
        fields["takeProfitBracket"] = tp
    r = rig.place(**fields)
    assert (r["success"], r["errorCode"], r["errorMessage"]) == (False, 2, message)
    # the rejected entry exists with its id; no children, no position
    assert [o["status"] for o in rig.orders()] == [5]
    assert rig.positions() == []


def test_brackets_rejected_in_position_bracket_mode() -> None:
    rig = Rig(bracket_mode="position")
    rig.market_at(6000.0)
    r = rig.place(type=2, side=0, stopLossBracket={"ticks": -10, "type": 4})
    assert r["errorCode"] == 2
    assert r["errorMessage"] == ("Brackets cannot be used with Position Brackets. "
                                 "You must enable Auto OCO Brackets.")
    assert rig.place(type=2, side=0)["success"]  # plain orders still work


def test_bracket_mode_is_per_account() -> None:
    rig = Rig(accounts=[AccountConfig(1, "A"), AccountConfig(2, "B", bracket_mode="position")])
    rig.market_at(6000.0)
    sl = {"ticks": -10, "type": 4}
    assert rig.place(account=1, type=2, side=0, stopLossBracket=sl)["success"]
    assert rig.place(account=2, type=2, side=0, stopLossBracket=sl)["errorCode"] == 2


def test_bracket_children_suspended_then_open_with_absolute_prices(rig: Rig) -> None:
    r = rig.place(type=2, side=0, customTag="t1", stopLossBracket={"ticks": -10, "type": 4},
                  takeProfitBracket={"ticks": 20, "type": 1})
    entry_id = r["orderId"]
    events = rig.take()
    assert kinds(events) == [
        ("order", 1, 8), ("order", 1, 6), ("order", 1, 8),      # SL, entry, TP created at once
        ("order", 1, 2), ("order", 1, 1), ("order", 1, 1),      # entry filled, TP, SL open
        ("trade", 0, None), ("position", 1, None), ("account", 1, None)]
    sl0, entry0, tp0 = (e["data"] for _, e in events[:3])
    assert sl0["customTag"] == "t1-SL" and tp0["customTag"] == "t1-TP"
    assert sl0["parentOrderId"] == tp0["parentOrderId"] == entry_id == entry0["id"]
    assert tp0["linkedOrderId"] == sl0["id"] and sl0["linkedOrderId"] == tp0["id"]
    assert sl0["creationTimestamp"] == entry0["creationTimestamp"] == tp0["creationTimestamp"]
    assert "stopPrice" not in sl0 and "limitPrice" not in tp0
    assert (sl0["trailDistance"], sl0["trailPrice"]) == (-10, -2.5)
    assert (tp0["trailDistance"], tp0["trailPrice"]) == (20, 5.0)
    assert sl0["type"] == 4 and tp0["type"] == 1 and sl0["side"] == tp0["side"] == 1
    tp1, sl1 = events[4][1]["data"], events[5][1]["data"]
    assert tp1["id"] == tp0["id"] and tp1["limitPrice"] == 6000.25 + 5.0
    assert sl1["id"] == sl0["id"] and sl1["stopPrice"] == 6000.25 - 2.5


def test_short_bracket_prices_mirror(rig: Rig) -> None:
    rig.place(type=2, side=1, stopLossBracket={"ticks": 8, "type": 4},
              takeProfitBracket={"ticks": -12, "type": 1})
    legs = {o["type"]: o for o in rig.orders() if o["parentOrderId"]}
    assert legs[4]["stopPrice"] == 6000.0 + 2.0 and legs[4]["side"] == 0
    assert legs[1]["limitPrice"] == 6000.0 - 3.0 and legs[1]["side"] == 0


def test_search_open_omits_suspended_children_until_entry_fills(rig: Rig) -> None:
    r = rig.place(type=1, side=0, limitPrice=5995.0, stopLossBracket={"ticks": -8, "type": 4},
                  takeProfitBracket={"ticks": 8, "type": 1})
    open_ids = [o["id"] for o in rig.call("/api/Order/searchOpen",
                                          {"accountId": ACCOUNT})["orders"]]
    assert open_ids == [r["orderId"]]
    q = rig.call("/api/Order/v2/query", {"filter": {"accountId": ACCOUNT, "statuses": [8]}})
    assert len(q["orders"]) == 2
    rig.trade(5995.0)  # the entry fills at its limit; children go live
    open_orders = rig.call("/api/Order/searchOpen", {"accountId": ACCOUNT})["orders"]
    assert sorted(o["type"] for o in open_orders) == [1, 4]
    prices = {o["type"]: o["limitPrice"] or o["stopPrice"] for o in open_orders}
    assert prices == {1: 5997.0, 4: 5993.0}


def test_oco_take_profit_fill_cancels_stop_and_books_pnl(rig: Rig) -> None:
    rig.place(type=2, side=0, stopLossBracket={"ticks": -10, "type": 4},
              takeProfitBracket={"ticks": 20, "type": 1})
    rig.take()
    rig.trade(6003.0)          # below the TP (6005.25): nothing
    assert rig.take() == []
    rig.trade(6006.0)          # through the TP: fills at the TP's price
    events = rig.take()
    assert kinds(events) == [("order", 1, 2), ("order", 1, 3), ("trade", 0, None),
                             ("position", 2, None), ("account", 1, None)]
    tp, sl, trade, flat, account = (e["data"] for _, e in events)
    assert tp["filledPrice"] == 6005.25 and sl["type"] == 4
    assert trade["profitAndLoss"] == 20 * 12.5 and trade["fees"] == 1.40
    assert (flat["type"], flat["size"]) == (0, 0)
    assert account["balance"] == round(50000.0 + 250.0 - 2 * 1.40, 2)
    assert rig.positions() == []


def test_oco_stop_loss_fill_cancels_take_profit(rig: Rig) -> None:
    rig.place(type=2, side=0, stopLossBracket={"ticks": -10, "type": 4},
              takeProfitBracket={"ticks": 20, "type": 1})
    rig.trade(5997.0)          # through the SL at 5997.75: fills at the print
    statuses = {o["type"]: o["status"] for o in rig.orders() if o["parentOrderId"]}
    assert statuses == {4: 2, 1: 3}
    closing = rig.trades()[-1]
    assert closing["price"] == 5997.0
    assert closing["profitAndLoss"] == (5997.0 - 6000.25) / 0.25 * 12.5


def test_cancelling_an_unfilled_entry_cancels_its_suspended_brackets(rig: Rig) -> None:
    r = rig.place(type=1, side=0, limitPrice=5990.0, stopLossBracket={"ticks": -8, "type": 4},
                  takeProfitBracket={"ticks": 8, "type": 1})
    c = rig.call("/api/Order/cancel", {"accountId": ACCOUNT, "orderId": r["orderId"]})
    assert c == {"success": True, "errorCode": 0, "errorMessage": None}
    assert [o["status"] for o in rig.orders()] == [3, 3, 3]


def test_close_contract_does_not_cancel_bracket_legs(rig: Rig) -> None:
    rig.place(type=2, side=0, stopLossBracket={"ticks": -10, "type": 4},
              takeProfitBracket={"ticks": 20, "type": 1})
    r = rig.call("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": ES.id})
    assert r["success"]
    assert rig.positions() == []
    legs = [o for o in rig.orders() if o["parentOrderId"]]
    assert [o["status"] for o in legs] == [1, 1]   # still working, as on the live venue


# ----- customTag --------------------------------------------------------------------------------

def test_custom_tag_unique_per_account() -> None:
    rig = Rig(accounts=[AccountConfig(1, "A"), AccountConfig(2, "B")])
    rig.market_at(6000.0)
    assert rig.place(account=1, type=2, side=0, customTag="x")["success"]
    dup = rig.place(account=1, type=2, side=0, customTag="x")
    assert dup["success"] is False and dup["errorCode"] == 2 and isinstance(dup["orderId"], int)
    assert "x" in dup["errorMessage"]
    assert rig.place(account=2, type=2, side=0, customTag="x")["success"]


def test_rejected_order_does_not_consume_its_tag(rig: Rig) -> None:
    bad = rig.place(type=2, side=0, customTag="retry", stopLossBracket={"ticks": 5, "type": 4})
    assert bad["errorCode"] == 2
    assert rig.place(type=2, side=0, customTag="retry")["success"]


def test_bracket_child_tags_are_reserved(rig: Rig) -> None:
    rig.place(type=2, side=0, customTag="b", stopLossBracket={"ticks": -10, "type": 4})
    assert rig.place(type=2, side=0, customTag="b-SL")["errorCode"] == 2


# ----- positions, P&L, fees ---------------------------------------------------------------------

def test_scale_in_reweights_average_on_one_row(rig: Rig) -> None:
    rig.place(type=2, side=0)                    # 1 @ 6000.25
    rig.market_at(6001.0)
    rig.take()
    rig.place(type=2, side=0, size=2)            # 2 @ 6001.25
    events = [e for n, e in rig.take() if n == "GatewayUserPosition"]
    assert len(events) == 1 and events[0]["action"] == 1
    rows = rig.positions()
    assert len(rows) == 1 and rows[0]["size"] == 3 and rows[0]["id"] == events[0]["data"]["id"]
    assert rows[0]["averagePrice"] == pytest.approx((6000.25 + 2 * 6001.25) / 3)


def test_partial_reduce_keeps_average_and_realises_pnl(rig: Rig) -> None:
    rig.place(type=2, side=0, size=3)            # 3 @ 6000.25
    rig.market_at(6002.0)
    rig.place(type=2, side=1, size=1)            # sell 1 @ 6002.00
    pos = rig.positions()[0]
    assert (pos["size"], pos["averagePrice"]) == (2, 6000.25)
    assert rig.trades()[-1]["profitAndLoss"] == (6002.0 - 6000.25) / 0.25 * 12.5


def test_pnl_arithmetic_and_fees_on_micro(rig: Rig) -> None:
    rig.market_at(21000.0, MNQ)
    rig.place(contract=MNQ, type=2, side=1, size=2)   # short 2 @ 21000.00
    rig.market_at(20990.0, MNQ)
    rig.place(contract=MNQ, type=2, side=0, size=2)   # cover 2 @ 20990.25
    opening, closing = rig.trades()
    assert opening["profitAndLoss"] is None and opening["fees"] == 0.74
    assert closing["profitAndLoss"] == (21000.0 - 20990.25) / 0.25 * 0.5 * 2 == 39.0
    assert closing["fees"] == 0.74
    assert rig.balance() == round(50000.0 + 39.0 - 0.74 - 0.74, 2)


def test_reversal_closes_then_opens_a_new_position(rig: Rig) -> None:
    rig.place(type=2, side=0, size=1)            # long 1 @ 6000.25
    rig.market_at(6004.0)
    rig.take()
    rig.place(type=2, side=1, size=3)            # sell 3 @ 6004.00
    events = rig.take()
    trades = [e["data"] for n, e in events if n == "GatewayUserTrade"]
    assert [(t["size"], t.get("profitAndLoss")) for t in trades] == [(1, 15 * 12.5), (2, None)]
    pos_events = [e for n, e in events if n == "GatewayUserPosition"]
    assert [(e["action"], e["data"]["type"], e["data"]["size"]) for e in pos_events] == [
        (2, 0, 0), (1, 2, 2)]
    assert pos_events[0]["data"]["id"] != pos_events[1]["data"]["id"]
    assert rig.positions()[0]["averagePrice"] == 6004.0


def test_fee_table() -> None:
    assert fee_per_side("ES") == 1.40 and fee_per_side("MNQ") == 0.37
    assert fees_for("ES", 3) == 4.20 and fee_per_side("ZZ") == 1.40


# ----- resting orders ---------------------------------------------------------------------------

def test_limit_rests_then_fills_at_its_price_on_a_print_at_or_through(rig: Rig) -> None:
    r = rig.place(type=1, side=0, limitPrice=5998.0)
    assert kinds(rig.take()) == [("order", 1, 6), ("order", 1, 1)]
    rig.trade(5998.25)
    assert rig.take() == []
    rig.trade(5997.5)                            # trades through
    assert rig.order(r["orderId"])["filledPrice"] == 5998.0


def test_marketable_limit_fills_at_the_quote(rig: Rig) -> None:
    r = rig.place(type=1, side=0, limitPrice=6002.0)
    assert rig.order(r["orderId"])["filledPrice"] == 6000.25


def test_resting_limit_fills_when_the_opposite_quote_touches(rig: Rig) -> None:
    r = rig.place(type=1, side=1, limitPrice=6001.0)
    rig.quote(6001.0, 6001.25)
    assert rig.order(r["orderId"])["status"] == 2


def test_stop_triggers_on_a_print_and_fills_at_that_print(rig: Rig) -> None:
    r = rig.place(type=4, side=1, stopPrice=5998.0)
    assert rig.order(r["orderId"])["status"] == 1
    rig.trade(5998.5)
    assert rig.order(r["orderId"])["status"] == 1
    rig.trade(5997.75)
    order = rig.order(r["orderId"])
    assert (order["status"], order["filledPrice"]) == (2, 5997.75)


def test_stop_on_the_wrong_side_of_the_market_is_rejected(rig: Rig) -> None:
    r = rig.place(type=4, side=0, stopPrice=5999.0)
    assert r["errorCode"] == 2 and "above the last price" in r["errorMessage"]


def test_stop_limit_triggers_then_rests_as_a_limit(rig: Rig) -> None:
    r = rig.place(type=3, side=0, stopPrice=6002.0, limitPrice=6002.5)
    rig.trade(6003.0)                            # triggers; 6003 is above the limit
    order = rig.order(r["orderId"])
    assert order["status"] == 1
    rig.trade(6002.5)
    assert rig.order(r["orderId"])["filledPrice"] == 6002.5


def test_trailing_stop_distance_from_absolute_trail_price_and_trailing(rig: Rig) -> None:
    r = rig.place(type=5, side=1, trailPrice=5998.0)   # 8 ticks under the last 6000.00
    order = rig.order(r["orderId"])
    assert (order["trailDistance"], order["trailPrice"], order["stopPrice"]) == (8, 2.0, 5998.0)
    rig.trade(6003.0)
    assert rig.order(r["orderId"])["stopPrice"] == 6001.0
    rig.trade(6002.0)                            # falls back, stop stays
    assert rig.order(r["orderId"])["stopPrice"] == 6001.0
    rig.trade(6000.75)
    order = rig.order(r["orderId"])
    assert (order["status"], order["filledPrice"]) == (2, 6000.75)


@pytest.mark.parametrize("trail, message", [
    (5998.1, "Invalid trail price. Price is not aligned to tick size."),
    (5700.0, "Trail Distance exceeds maximum (1000)"),
    (6000.0, "Trail Distance not set."),
])
def test_trailing_stop_rejections(rig: Rig, trail: float, message: str) -> None:
    assert rig.place(type=5, side=1, trailPrice=trail)["errorMessage"] == message


def test_trailing_stop_needs_a_last_price() -> None:
    rig = Rig()
    r = rig.place(type=5, side=1, trailPrice=5998.0)
    assert r["errorMessage"] == "Cannot trail without a last price"


def test_join_bid_and_join_ask_rest_at_the_touch(rig: Rig) -> None:
    bid = rig.place(type=6, side=0)
    ask = rig.place(type=7, side=1)
    assert rig.order(bid["orderId"])["limitPrice"] == 6000.0
    assert rig.order(ask["orderId"])["limitPrice"] == 6000.25
    assert rig.order(bid["orderId"])["status"] == rig.order(ask["orderId"])["status"] == 1
    rig.trade(6000.0)
    assert rig.order(bid["orderId"])["status"] == 2


# ----- modify, cancel, close --------------------------------------------------------------------

def test_modify_null_fields_are_unchanged_and_a_crossing_limit_fills(rig: Rig) -> None:
    r = rig.place(type=1, side=0, limitPrice=5990.0, size=2)
    oid = r["orderId"]
    m = rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": oid, "size": None,
                                       "limitPrice": 5995.0, "stopPrice": None})
    assert m["success"]
    order = rig.order(oid)
    assert (order["limitPrice"], order["size"], order["status"]) == (5995.0, 2, 1)
    rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": oid, "limitPrice": 6001.0})
    assert rig.order(oid)["filledPrice"] == 6000.25


def test_modify_and_cancel_errors(rig: Rig) -> None:
    api = rig.call
    assert api("/api/Order/modify", {"accountId": ACCOUNT, "orderId": 1})["errorCode"] == 2
    assert api("/api/Order/modify", {"accountId": 9, "orderId": 1})["errorCode"] == 1
    assert api("/api/Order/cancel", {"accountId": ACCOUNT, "orderId": 1})["errorCode"] == 2
    assert api("/api/Order/cancel", {"accountId": ACCOUNT})["errorCode"] == 2
    filled = rig.place(type=2, side=0)["orderId"]
    assert api("/api/Order/cancel", {"accountId": ACCOUNT, "orderId": filled})["errorCode"] == 3
    assert api("/api/Order/modify", {"accountId": ACCOUNT, "orderId": filled,
                                     "limitPrice": 1.0})["errorCode"] == 3
    resting = rig.place(type=1, side=0, limitPrice=5990.0)["orderId"]
    assert api("/api/Order/modify", {"accountId": ACCOUNT, "orderId": resting,
                                     "limitPrice": 5990.1})["errorCode"] == 3


def test_cancel_on_a_live_account_is_rejected() -> None:
    rig = Rig(accounts=[AccountConfig(5, "LIVE", simulated=False)])
    rig.market_at(6000.0)
    oid = rig.place(account=5, type=1, side=0, limitPrice=5990.0)["orderId"]
    r = rig.call("/api/Order/cancel", {"accountId": 5, "orderId": oid})
    assert (r["errorCode"], r["errorMessage"]) == (6, "Live accounts not supported")


def test_cancel_on_a_follower_account_is_rejected_though_it_is_simulated() -> None:
    rig = Rig(accounts=[AccountConfig(6, "FOLLOWER", follower=True)])
    rig.market_at(6000.0)
    acc = rig.call("/api/Account/search", {"onlyActiveAccounts": True})["accounts"][0]
    assert acc["simulated"] is True
    oid = rig.place(account=6, type=1, side=0, limitPrice=5990.0)["orderId"]
    r = rig.call("/api/Order/cancel", {"accountId": 6, "orderId": oid})
    assert (r["errorCode"], r["errorMessage"]) == (6, "Follower accounts cannot cancel orders")
    assert parse_accounts("7:F-7:50000:follower")[0].follower


def test_partial_close_reduces_and_rejects_bad_sizes(rig: Rig) -> None:
    rig.place(type=2, side=0, size=3)
    api = rig.call
    body = {"accountId": ACCOUNT, "contractId": ES.id}
    assert api("/api/Position/partialCloseContract", {**body, "size": 5})["errorCode"] == 5
    assert api("/api/Position/partialCloseContract", {**body, "size": 0})["errorCode"] == 5
    assert api("/api/Position/partialCloseContract", {**body, "size": 2})["success"]
    assert rig.positions()[0]["size"] == 1
    closing = rig.orders()[-1]
    assert (closing["type"], closing["side"], closing["size"]) == (2, 1, 2)


def test_close_and_partial_close_errors(rig: Rig) -> None:
    api = rig.call
    body = {"accountId": ACCOUNT, "contractId": ES.id}
    assert api("/api/Position/closeContract", body)["errorCode"] == 2
    assert api("/api/Position/closeContract", {"accountId": 9, "contractId": ES.id}
               )["errorCode"] == 1
    assert api("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": "nope"}
               )["errorCode"] == 3
    rig.place(type=2, side=0, size=2)
    rig.market.open = False
    assert api("/api/Position/closeContract", body) == {
        "success": False, "errorCode": 5, "errorMessage": None}
    assert api("/api/Position/partialCloseContract", {**body, "size": 1}) == {
        "success": False, "errorCode": 6, "errorMessage": None}


# ----- accounts and robustness ------------------------------------------------------------------

def test_parse_accounts() -> None:
    accs = parse_accounts("1001:PRAC-V2-1-1001:50000, 1002:50KTC-V2-1-1002:150000:position+notrade")
    assert accs[0] == AccountConfig(1001, "PRAC-V2-1-1001", 50000.0,
                                    program=AccountConfig(1, "x").rules())
    assert accs[1].bracket_mode == "position" and accs[1].can_trade is False
    assert accs[1].balance == 150000.0
    # a name like the venue's says the size; the balance is only the fallback
    assert accs[1].rules().size == "50k" and accs[1].rules().start == 150000.0
    for bad in ("", "x:y", "1", "1:a,1:b", "1:a:50:bogus", "1:a:50:size=70k",
                "1:a:50:program=prop", "1:a:50:maxlots=0", "1:a:50:dll=x"):
        with pytest.raises(ValueError):
            parse_accounts(bad)


def test_default_account_is_a_50k_combine() -> None:
    rig = Rig()
    r = rig.call("/api/Account/search", {"onlyActiveAccounts": True})
    assert r["accounts"] == [{"id": 1001, "name": "50KTC-V2-000001-00001001", "balance": 50000.0,
                              "canTrade": True, "isVisible": True, "simulated": True}]
    assert rig.engine.accounts() == r["accounts"]


def test_a_failing_emit_does_not_corrupt_state(rig: Rig) -> None:
    def boom(*_a) -> None:
        raise RuntimeError("hub down")
    rig.engine._emit = boom
    assert rig.place(type=2, side=0)["success"]
    assert rig.positions()[0]["size"] == 1
    assert rig.engine.counters["emit_errors"] == 5


def test_modify_trailing_stop_by_trail_price_and_stop_by_stop_price(rig: Rig) -> None:
    trail = rig.place(type=5, side=1, trailPrice=5998.0)["orderId"]
    m = rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": trail,
                                       "trailPrice": 5996.0})
    assert m["success"]
    order = rig.order(trail)
    assert (order["trailDistance"], order["trailPrice"], order["stopPrice"]) == (16, 4.0, 5996.0)
    assert rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": trail,
                                          "stopPrice": 5990.0})["errorCode"] == 3
    stop = rig.place(type=4, side=1, stopPrice=5995.0)["orderId"]
    assert rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": stop,
                                          "stopPrice": 5994.0})["success"]
    assert rig.order(stop)["stopPrice"] == 5994.0
    # moved through the market: it fires at once
    rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": stop, "stopPrice": 6001.0})
    assert rig.order(stop)["status"] == 2


def test_suspended_bracket_leg_cannot_be_modified_but_can_be_cancelled(rig: Rig) -> None:
    rig.place(type=1, side=0, limitPrice=5990.0, stopLossBracket={"ticks": -8, "type": 4},
              takeProfitBracket={"ticks": 8, "type": 1})
    sl = next(o for o in rig.orders() if o["type"] == 4)
    r = rig.call("/api/Order/modify", {"accountId": ACCOUNT, "orderId": sl["id"], "size": 2})
    assert r["errorCode"] == 3
    assert rig.call("/api/Order/cancel", {"accountId": ACCOUNT, "orderId": sl["id"]})["success"]
    rig.trade(5990.0)                        # the entry fills; only the TP goes live
    statuses = {o["type"]: o["status"] for o in rig.orders() if o["parentOrderId"]}
    assert statuses == {4: 3, 1: 1}


# ----- property: P&L is conserved ---------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0, 1]), st.integers(1, 4), st.integers(-40, 40)),
                min_size=1, max_size=25))
def test_realised_pnl_equals_cash_flow_when_flat(fills: list[tuple[int, int, int]]) -> None:
    """Whatever the sequence of fills, once flat: sum of P&L = sells - buys, in dollars, and the
    balance moved by exactly P&L minus fees; one position row at most, never negative size.
    The sequences go far past a 50K Combine's limits: a lax venue (no enforcement)."""
    rig = Rig(enforce=())
    cash_ticks = 0.0
    net = 0
    for side, size, offset in fills:
        rig.market_at(6000.0 + offset * 0.25)
        r = rig.place(type=2, side=side, size=size)
        assert r["success"], r
        price = rig.order(r["orderId"])["filledPrice"]
        cash_ticks += (price / 0.25) * size * (1 if side == 1 else -1)
        net += size if side == 0 else -size
        rows = rig.positions()
        assert len(rows) == (0 if net == 0 else 1)
        if rows:
            assert rows[0]["size"] == abs(net) and rows[0]["type"] == (1 if net > 0 else 2)
    if net:
        rig.call("/api/Position/closeContract", {"accountId": ACCOUNT, "contractId": ES.id})
        last = rig.trades()[-1]
        cash_ticks += (last["price"] / 0.25) * abs(net) * (1 if net > 0 else -1)
    trades = rig.trades()
    pnl = sum(t["profitAndLoss"] or 0.0 for t in trades)
    fees = sum(t["fees"] for t in trades)
    assert pnl == pytest.approx(cash_ticks * 12.5, abs=0.05 * len(trades))
    assert rig.balance() == pytest.approx(50000.0 + pnl - fees, abs=0.01 * len(trades))
    assert rig.positions() == []
