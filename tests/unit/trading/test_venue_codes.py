"""The venue's codes are the venue's numbers (projectx-api.md §4)."""

from __future__ import annotations

import json

from trading.venue_codes import (
    TERMINAL_STATUSES, WORKING_STATUSES, OrderStatus, OrderType, PositionType, Side,
)


def test_the_numbers_of_projectx_api() -> None:
    assert [int(s) for s in (Side.BUY, Side.SELL)] == [0, 1]
    assert {t.name: int(t) for t in OrderType} == {
        "UNKNOWN": 0, "LIMIT": 1, "MARKET": 2, "STOP_LIMIT": 3, "STOP": 4, "TRAILING_STOP": 5,
        "JOIN_BID": 6, "JOIN_ASK": 7}
    assert [int(s) for s in OrderStatus] == list(range(9))
    assert (OrderStatus.OPEN, OrderStatus.SUSPENDED, OrderStatus.PENDING_CANCELLATION) == (1, 8, 7)
    assert [int(p) for p in (PositionType.FLAT, PositionType.LONG, PositionType.SHORT)] == [0, 1, 2]
    assert TERMINAL_STATUSES == {2, 3, 4, 5} and WORKING_STATUSES == {1, 6, 7, 8}


def test_codes_travel_as_the_venues_integers() -> None:
    assert json.dumps({"side": Side.SELL, "type": OrderType.STOP}) == '{"side": 1, "type": 4}'
    assert Side(1) is Side.SELL and Side.SELL.opposite is Side.BUY and Side.SELL.sign == -1
