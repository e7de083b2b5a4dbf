"""Fills against prints and quotes: where an order fills, and what one print does to a working
order. Pure; the sim's exchange uses it on its live prints, and a backtest that replays prints
can use the same rules (bar_path.py is the rules for bars).

Price references follow the live venue as far as it is known (projectx-api.md §6, §11):
- a market order fills at the best opposite quote, the last print when there is no quote;
- a resting limit fills at its own price when a print trades at or through it, or when the
  opposite quote touches it;
- a stop (and a trailing stop) triggers on a print at or through its stop and fills at that
  print; a stop-limit triggers there and then rests as a limit.
Functions here may update the order's own trigger state (a stop-limit's `triggered`, a trailing
stop's anchor and stop); filling and booking are the engine's.

The order and the contract are Protocols of the fields the rules read, so any order record with
those fields (the sim's `sim.exchange.wire.Order`, a backtest's) can be matched; codes are the
venue's (trading/venue_codes.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from trading.venue_codes import OrderType, Side

#: Order types that rest at their limit price from the start.
LIMIT_LIKE = frozenset({OrderType.LIMIT, OrderType.JOIN_BID, OrderType.JOIN_ASK})


class Listed(Protocol):
    """A contract, as far as matching needs it."""

    @property
    def id(self) -> str: ...
    @property
    def tick_size(self) -> float: ...


class Order(Protocol):
    """The fields of a working order the rules read, and the trigger state they update (a
    stop-limit's `triggered`, a trailing stop's `anchor` and `stop_price`, `updated_ms`)."""

    type: int
    side: int
    limit_price: float | None
    stop_price: float | None
    updated_ms: int
    trail_ticks: int | None
    anchor: float | None
    triggered: bool

    @property
    def contract(self) -> Listed | None: ...


class MarketView(Protocol):
    def last_price(self, contract_id: str) -> float | None: ...
    def best_bid(self, contract_id: str) -> float | None: ...
    def best_ask(self, contract_id: str) -> float | None: ...
    def is_open(self, now_ms: int) -> bool: ...


def round_to_tick(price: float, tick: float) -> float:
    return round(round(price / tick) * tick, 10)


def is_tick_aligned(price: float, tick: float) -> bool:
    steps = price / tick
    return abs(steps - round(steps)) < 1e-6


class Prices:
    """The engine's view of prices: the market's quotes and the last print the engine saw."""

    def __init__(self, market: MarketView) -> None:
        self.market = market
        self.last: dict[str, float] = {}

    def last_price(self, contract_id: str) -> float | None:
        last = self.last.get(contract_id)
        return last if last is not None else self.market.last_price(contract_id)

    def market_price(self, contract: Listed, side: int) -> float | None:
        """Where a market order of `side` fills now: best ask / best bid, else the last print."""
        quote = (self.market.best_ask(contract.id) if side == Side.BUY
                 else self.market.best_bid(contract.id))
        price = quote if quote is not None else self.last_price(contract.id)
        return None if price is None else round_to_tick(price, contract.tick_size)


def rests_as_limit(order: Order) -> bool:
    """A limit-like order, or a stop-limit whose stop has triggered."""
    return order.type in LIMIT_LIKE or (order.type == OrderType.STOP_LIMIT and order.triggered)


def limit_crossed(order: Order, price: float) -> bool:
    assert order.limit_price is not None
    return price <= order.limit_price if order.side == Side.BUY else price >= order.limit_price


def stop_hit_at(side: int, stop: float, price: float) -> bool:
    return price >= stop if side == Side.BUY else price <= stop


def stop_hit(order: Order, price: float) -> bool:
    assert order.stop_price is not None
    return stop_hit_at(order.side, order.stop_price, price)


@dataclass(frozen=True)
class Match:
    """What a print did to an order: `changed` (emit an order update first), then `fill_price`
    (fill there) when not None."""

    fill_price: float | None = None
    changed: bool = False


NOTHING = Match()


def match_print(order: Order, price: float, t: int) -> Match:
    """One print against one open order."""
    if rests_as_limit(order):
        if limit_crossed(order, price):
            assert order.limit_price is not None
            return Match(order.limit_price)
        return NOTHING
    changed = False
    if order.type == OrderType.TRAILING_STOP:
        changed = trail(order, price, t)
    if order.stop_price is None or not stop_hit(order, price):
        return Match(None, changed)
    if order.type == OrderType.STOP_LIMIT:
        order.triggered = True
        order.updated_ms = t
        if limit_crossed(order, price):
            return Match(price)
        return Match(None, True)
    return Match(price, changed)


def trail(order: Order, price: float, t: int) -> bool:
    """Move a trailing stop's anchor and stop with a print; True when the stop moved."""
    contract = order.contract
    assert contract is not None and order.trail_ticks is not None
    dist = order.trail_ticks * contract.tick_size
    anchor = order.anchor if order.anchor is not None else price
    if order.side == Side.SELL and price > anchor:
        anchor = price
    elif order.side == Side.BUY and price < anchor:
        anchor = price
    order.anchor = anchor
    stop = round_to_tick(anchor - dist if order.side == Side.SELL else anchor + dist,
                         contract.tick_size)
    if stop != order.stop_price and not stop_hit_at(order.side, stop, price):
        order.stop_price = stop
        order.updated_ms = t
        return True
    return False


def quote_fill(order: Order, bid: float | None, ask: float | None) -> float | None:
    """The price a resting limit fills at when the opposite quote touches it, else None."""
    if order.limit_price is None or not rests_as_limit(order):
        return None
    if order.side == Side.BUY and ask is not None and ask <= order.limit_price:
        return order.limit_price
    if order.side == Side.SELL and bid is not None and bid >= order.limit_price:
        return order.limit_price
    return None
