"""The state every part of the sim's trading engine shares, and the order table's helpers.

The engine's jobs are mixins over this one base, composed by `TradingEngine` (engine.py), whose
constructor fills these attributes: orders.py (place, modify, cancel, brackets),
fills.py (a fill, its bracket legs and OCO), closing.py (close and partial close),
enforcement.py (the Topstep rules checked and enforced, liquidation, the day roll),
exposure.py (exposure, lots, open P&L, the referee's view), resets.py (an account started
again), emission.py (the buffered user-hub events). They share the order table and call one
another both ways, so the calls one part makes into another are declared below for the type
checker: the list of what the parts need of each other. Pure: no I/O, time from the injected
clock.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from chillly.clock import Clock
from sim.exchange.accounts import Account
from sim.exchange.booking import Book
from sim.market.contracts import SimContract
from sim.exchange.referee import Referee
from sim.exchange.rules import Program
from sim.exchange.wire import (
    BUY,
    CANCELLED,
    LONG,
    OPEN,
    SELL,
    Event,
    Order,
    PlaceRequest,
    Position,
    TradingError,
)
from trading.matching.prints import MarketView, Prices

Emit = Callable[[str, int, dict[str, Any]], None]


class CatalogueView(Protocol):
    def get(self, contract_id: str) -> SimContract | None: ...


class EngineState:
    """The engine's shared state (set by TradingEngine.__init__) and the order table."""

    fill_model: str
    clock: Clock
    catalogue: CatalogueView
    market: MarketView
    prices: Prices
    _emit: Emit
    _accounts: dict[int, Account]
    _next_order: int
    book: Book
    _orders: dict[int, Order]
    _by_account: dict[int, list[Order]]
    _tags: dict[int, set[str]]
    #: entry order id -> its bracket children's ids
    _children: dict[int, list[int]]
    #: contract -> its open orders, in the order they went live
    _working: dict[str, dict[int, Order]]
    #: user-hub events of the change under way, sent by _flush when it is complete
    _out: list[Event]
    counters: dict[str, int]
    enforce: set[str]
    programs: dict[int, Program]
    referee: Referee
    #: account -> contract of its latest fill, for the next rule check
    _touched: dict[int, str]
    _checking: bool
    #: state changed since the last save (sim/persistence.py)
    dirty: bool

    if TYPE_CHECKING:
        def _activate(self, order: Order, now: int) -> None: ...
        def _fill(self, order: Order, price: float, t: int, qty: int | None = None) -> None: ...
        def _market_close(self, pos: Position, contract: SimContract, size: int,
                          now: int) -> None: ...
        def _check_rules(self, account: Account, contract: SimContract, req: PlaceRequest,
                         now: int) -> None: ...
        def _after(self, now: int, contract_id: str | None = None) -> None: ...
        def _liquidate(self, account: Account, now: int, lock: bool) -> None: ...
        def _flatten(self, account: Account, now: int) -> None: ...
        def _exposure(self, acc_id: int,
                      extra: tuple[SimContract, int, int] | None = None) -> int: ...
        def _lots(self, acc_id: int) -> int: ...
        def open_pnl(self, acc_id: int) -> float: ...
        def risk(self, acc_id: int) -> dict[str, Any] | None: ...
        def _emit_account(self, account: Account) -> None: ...
        def _emit_order(self, order: Order) -> None: ...
        def _flush(self) -> None: ...

    def _new_order_id(self) -> int:
        oid = self._next_order
        self._next_order += 1
        return oid

    def _store(self, order: Order) -> None:
        self._orders[order.id] = order
        self._by_account[order.account_id].append(order)
        if order.custom_tag is not None:
            self._tags[order.account_id].add(order.custom_tag)

    def _find_order(self, account_id: int, order_id: int | None, not_found: int) -> Order:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        if order_id is None:
            raise TradingError(not_found, "The orderId field is required.")
        order = self._orders.get(order_id)
        if order is None or order.account_id != account_id:
            raise TradingError(not_found, f"Order {order_id} was not found.")
        return order

    def _set_open(self, order: Order, t: int) -> None:
        order.status = OPEN
        order.updated_ms = t
        self._working.setdefault(order.contract_id, {})[order.id] = order
        self._emit_order(order)

    def _cancel(self, order: Order, t: int) -> None:
        order.status = CANCELLED
        order.updated_ms = t
        self._unwork(order)
        self.counters["cancelled"] += 1
        self._emit_order(order)

    def _unwork(self, order: Order) -> None:
        working = self._working.get(order.contract_id)
        if working is not None:
            working.pop(order.id, None)


def closing_side(pos: Position) -> int:
    """The side of the market order that closes `pos`."""
    return SELL if pos.type == LONG else BUY
