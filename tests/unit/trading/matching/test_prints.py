"""The print and quote rules on a plain order record (no sim): where each order type fills,
and the trigger state a print leaves behind."""

from __future__ import annotations

from dataclasses import dataclass

from trading.matching.prints import NOTHING, Match, Prices, match_print, quote_fill
from trading.matching.prints import rests_as_limit
from trading.venue_codes import OrderType, Side


@dataclass(frozen=True)
class Contract:
    id: str = "CON.F.US.EP.Z26"
    tick_size: float = 0.25


@dataclass
class Order:
    type: int
    side: int
    limit_price: float | None = None
    stop_price: float | None = None
    updated_ms: int = 0
    trail_ticks: int | None = None
    anchor: float | None = None
    triggered: bool = False
    contract: Contract | None = Contract()


def test_a_limit_fills_at_its_price_on_a_print_at_or_through_it() -> None:
    buy = Order(OrderType.LIMIT, Side.BUY, limit_price=100.0)
    assert match_print(buy, 100.25, 1) == NOTHING
    assert match_print(buy, 100.0, 1) == Match(100.0)
    assert match_print(buy, 99.5, 1) == Match(100.0)        # through it: still its own price
    sell = Order(OrderType.JOIN_ASK, Side.SELL, limit_price=100.0)
    assert match_print(sell, 99.75, 1) == NOTHING
    assert match_print(sell, 100.5, 1) == Match(100.0)


def test_a_stop_triggers_at_or_through_and_fills_at_the_print() -> None:
    buy = Order(OrderType.STOP, Side.BUY, stop_price=101.0)
    assert match_print(buy, 100.75, 1) == NOTHING
    assert match_print(buy, 102.0, 1) == Match(102.0)       # a gap fills at the print
    sell = Order(OrderType.STOP, Side.SELL, stop_price=99.0)
    assert match_print(sell, 99.25, 1) == NOTHING
    assert match_print(sell, 99.0, 1) == Match(99.0)


def test_a_stop_limit_triggers_then_rests_as_a_limit() -> None:
    o = Order(OrderType.STOP_LIMIT, Side.BUY, stop_price=101.0, limit_price=101.0)
    assert not rests_as_limit(o)
    assert match_print(o, 101.5, 7) == Match(None, changed=True)   # triggered, above its limit
    assert o.triggered and o.updated_ms == 7 and rests_as_limit(o)
    assert match_print(o, 101.25, 8) == NOTHING
    assert match_print(o, 101.0, 9) == Match(101.0)
    crossing = Order(OrderType.STOP_LIMIT, Side.BUY, stop_price=101.0, limit_price=102.0)
    assert match_print(crossing, 101.5, 1) == Match(101.5)         # triggered and marketable


def test_a_trailing_stop_follows_the_best_print_and_never_backs_off() -> None:
    o = Order(OrderType.TRAILING_STOP, Side.SELL, stop_price=99.0, trail_ticks=4, anchor=100.0)
    assert match_print(o, 100.5, 1) == Match(None, changed=True)
    assert (o.anchor, o.stop_price, o.updated_ms) == (100.5, 99.5, 1)
    assert match_print(o, 100.25, 2) == NOTHING                    # a lower print: stays
    assert o.stop_price == 99.5
    assert match_print(o, 99.5, 3) == Match(99.5)


def test_a_resting_limit_fills_when_the_opposite_quote_touches_it() -> None:
    buy = Order(OrderType.LIMIT, Side.BUY, limit_price=100.0)
    assert quote_fill(buy, 99.75, 100.25) is None
    assert quote_fill(buy, 99.75, 100.0) == 100.0
    sell = Order(OrderType.LIMIT, Side.SELL, limit_price=100.0)
    assert quote_fill(sell, 99.75, 100.25) is None
    assert quote_fill(sell, 100.0, 100.25) == 100.0
    assert quote_fill(Order(OrderType.STOP, Side.BUY, stop_price=100.0), 100.0, 100.0) is None


class Market:
    def __init__(self, bid: float | None, ask: float | None, last: float | None) -> None:
        self.bid, self.ask, self.last = bid, ask, last

    def last_price(self, contract_id: str) -> float | None:
        return self.last

    def best_bid(self, contract_id: str) -> float | None:
        return self.bid

    def best_ask(self, contract_id: str) -> float | None:
        return self.ask

    def is_open(self, now_ms: int) -> bool:
        return True


def test_a_market_order_takes_the_opposite_quote_else_the_last_print_on_the_grid() -> None:
    c = Contract()
    prices = Prices(Market(99.75, 100.0, 99.9))
    assert prices.market_price(c, Side.BUY) == 100.0
    assert prices.market_price(c, Side.SELL) == 99.75
    no_quote = Prices(Market(None, None, 99.9))
    assert no_quote.market_price(c, Side.BUY) == 100.0          # the last print, on a tick
    no_quote.last[c.id] = 98.0                                  # the engine's own last print
    assert no_quote.market_price(c, Side.SELL) == 98.0
    assert Prices(Market(None, None, None)).market_price(c, Side.BUY) is None
