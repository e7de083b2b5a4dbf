"""The order state machine, the fill ledger, request validation and bracket signing (pure)."""

from __future__ import annotations

import pytest

from trading.orders.machine import (
    ACCEPTED,
    CANCELLED,
    FILLED,
    PARTIAL,
    REJECTED,
    WORKING,
    FillLedger,
    OrderBookMachine,
)
from trading.orders.requests import (
    Invalid,
    build_intent,
    leg_prices,
    parse_modify,
    parse_submit,
    venue_brackets,
)
from trading.venue_codes import Side

BUY, SELL = Side.BUY, Side.SELL


def test_lifecycle_and_refusals() -> None:
    m = OrderBookMachine()
    assert m.apply(1, 6, 3, 0).changed and m.orders[1].state == ACCEPTED
    assert m.apply(1, 1, 3, 0).changed and m.orders[1].state == WORKING
    assert m.apply(1, 1, 3, 1).changed and m.orders[1].state == PARTIAL
    down = m.apply(1, 1, 3, 0)
    assert down.refused and m.counters["invalid_transitions"] == 1
    assert m.apply(1, 2, 3, 3, filled_price=10.0).changed and m.orders[1].state == FILLED
    back = m.apply(1, 1, 3, 3)  # a stale REST row after the fill
    assert back.refused and m.orders[1].state == FILLED
    assert m.counters["invalid_transitions"] == 2
    assert not m.apply(1, 2, 3, 3).changed and m.counters["repeated_reports"] == 1
    m.apply(2, 5, 1, 0)
    assert m.orders[2].state == REJECTED and m.apply(2, 1, 1, 0).refused
    m.apply(3, 8, 1, 0)  # a suspended bracket child is working
    assert m.orders[3].state == WORKING
    assert m.apply(3, 3, 1, 0).changed and m.orders[3].state == CANCELLED
    assert m.apply(4, 99, 1, 0).refused and m.counters["unknown_statuses"] == 1


def test_fill_ledger_refuses_repeats() -> None:
    led = FillLedger()
    assert led.add(7) and not led.add(7) and led.repeated == 1


def _args(**kw: object) -> dict[str, object]:
    return {"client_id": "manual-1", "contract": "ES", "side": "buy", "size": 1,
            "type": "market", **kw}


@pytest.mark.parametrize("bad, why", [
    ({"size": 0}, "size"), ({"size": True}, "size"), ({"side": "long"}, "side"),
    ({"type": "iceberg"}, "type"), ({"type": "limit"}, "limit_price"),
    ({"client_id": "alpha-1"}, "must start with"), ({"client_id": ""}, "client_id"),
    ({"contract": ""}, "contract"), ({"sl_ticks": 2}, "between 4"),
    ({"limit_price": 10.0}, "does not apply"), ({"client_id": "manual-1-SL"}, "endings"),
])
def test_bad_submits_are_refused_with_reasons(bad: dict[str, object], why: str) -> None:
    with pytest.raises(Invalid, match=why):
        parse_submit(_args(**bad), "manual")


def test_tick_grid_and_reducing() -> None:
    req = parse_submit(_args(type="limit", limit_price=6000.1), "manual")
    with pytest.raises(Invalid, match="tick grid"):
        build_intent(req, "manual", "CON.F.US.EP.Z26", "ES", 0.25, 12.5, 0, 0)
    sell = parse_submit(_args(side="sell", size=2), "manual")
    assert build_intent(sell, "manual", "C", "ES", 0.25, 12.5, 3, 0).reduces
    assert not build_intent(sell, "manual", "C", "ES", 0.25, 12.5, 1, 0).reduces
    assert not build_intent(sell, "manual", "C", "ES", 0.25, 12.5, -3, 0).reduces


def test_brackets_signed_as_the_venue_wants() -> None:
    assert venue_brackets(BUY, 10, 20) == ({"ticks": -10, "type": 4}, {"ticks": 20, "type": 1})
    assert venue_brackets(SELL, 10, 20) == ({"ticks": 10, "type": 4}, {"ticks": -20, "type": 1})
    assert leg_prices(BUY, 100.0, 0.25, 4, 8) == (99.0, 102.0)
    assert leg_prices(SELL, 100.0, 0.25, 4, 8) == (101.0, 98.0)


def test_modify_fields_are_checked_against_the_order_and_its_grid() -> None:
    assert parse_modify({}, 3, 0.25) == (3, {})
    assert parse_modify({"size": 2, "limit_price": 6000.25}, 3, 0.25) == (2, {"limit_price": 6000.25})
    for bad, why in (({"size": 0}, "size"), ({"size": 1.5}, "size"),
                     ({"stop_price": -1}, "positive"), ({"limit_price": 6000.1}, "tick grid")):
        with pytest.raises(Invalid, match=why):
            parse_modify(bad, 3, 0.25)
