"""The strategy API: what a trader subclasses (docs/strategies.md has the complete example).

A strategy is a `Strategy` subclass with a pydantic `Config`; every hook is optional and runs on
the host's one event thread, in arrival order, so a strategy never needs a lock. Hooks are
plain functions (no async): an order helper returns at once with the order's client id and the
outcome comes back later as `on_order` / `on_fill`. The engine (trading/strategy/engine.py) is
the `Context` behind the helpers, driven by the strategy host on the bus or by a backtest; a
strategy never sees the bus, the venue or a credential, so the same class runs in both.
Strategies import it as `strategy_host.api` (a re-export of this module).

Bars, quotes, trades, orders and fills are the bus messages themselves (chillly/messages.py):
`Bar` (t, o, h, l, c, volume), `Quote` (bid, ask, last), `Trade` (price, size, aggressor, t),
`OrderEvent` (client_id, order_id, state, side, order_type, status, size, limit_price, ...),
`FillEvent` (price, size, side, fees, pnl). Sides, order types and statuses arrive as the core's
enums (`Side.BUY`, `OrderType.STOP`, trading/venue_codes.py; each equal to the venue's number);
`fill.pnl` is that fill's P&L against the strategy's own average price (fees apart), None on a
fill that opens or adds. Positions are the small `Position` below.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, ConfigDict

from chillly.messages import Bar, FillEvent, OrderEvent, Quote, Trade
from trading.venue_codes import OrderStatus, OrderType, Side

__all__ = ["Bar", "Config", "FillEvent", "OrderEvent", "OrderStatus", "OrderType", "Position",
           "Quote", "Side", "Strategy", "Trade"]

#: Order states after which an order is no longer open (the gateway's state machine).
TERMINAL = frozenset({"filled", "cancelled", "rejected", "expired"})


class Config(BaseModel):
    """Base of a strategy's typed parameters (`[strategies.NAME.params]`): unknown keys are
    mistakes, so they are refused rather than ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True, slots=True)
class Position:
    """The strategy's own position in one contract: `size` signed (+ long, - short, 0 flat)."""

    contract: str
    size: int = 0
    avg_price: float | None = None
    realized_pnl: float = 0.0
    open_pnl: float = 0.0

    @property
    def flat(self) -> bool:
        return self.size == 0


class Context(Protocol):
    """What the engine provides to a strategy (trading.strategy.engine.Engine)."""

    name: str
    contracts: list[str]
    timeframes: list[str]
    log: logging.Logger

    def now_ms(self) -> int: ...
    def bars(self, tf: str, n: int, contract: str) -> list[Bar]: ...
    def position(self, contract: str) -> Position: ...
    def open_orders(self, contract: str | None) -> list[OrderEvent]: ...
    def submit(self, side: str, size: int, contract: str, limit: float | None,
               stop: float | None, sl: int | None, tp: int | None) -> str: ...
    def cancel(self, client_id: str) -> None: ...
    def flatten(self, contract: str | None) -> None: ...
    def schedule(self, name: str, seconds: float, repeat: bool) -> None: ...
    def unschedule(self, name: str) -> None: ...
    def tick_size(self, contract: str) -> float | None: ...


class Strategy:
    """Subclass this. Set `Config` to your pydantic parameters class; override the hooks you
    need. `self.config` is the validated parameters, `self.contract` the first contract id,
    `self.log` a logger named after the instance."""

    Config: ClassVar[type[BaseModel]] = Config

    def __init__(self, ctx: Context, config: BaseModel) -> None:
        self.ctx = ctx
        self.config: Any = config
        self.name = ctx.name
        self.log = ctx.log

    # ---------------------------------------------------------------- hooks (all optional)

    def on_start(self) -> None:
        """After state is loaded, bars are warm and orders/position are known; before live."""

    def on_stop(self) -> None:
        """The host is stopping (orders stay as they are; flatten here if you want flat)."""

    def on_bar(self, bar: Bar) -> None:
        """A final bar of one of the instance's contracts and timeframes."""

    def on_quote(self, quote: Quote) -> None:
        """Best bid/ask changed (only subscribed when overridden)."""

    def on_trade(self, trade: Trade) -> None:
        """One print (only subscribed when overridden)."""

    def on_order(self, order: OrderEvent) -> None:
        """One of our orders changed state (a gateway rejection arrives as state 'rejected')."""

    def on_fill(self, fill: FillEvent) -> None:
        """One of our orders traded."""

    def on_position(self, position: Position) -> None:
        """Our position in a contract changed."""

    def on_timer(self, name: str) -> None:
        """A timer set with `every` / `after` fired (market time)."""

    def on_save(self) -> dict[str, Any]:
        """State to keep across restarts (JSON-able); saved on stop, periodically, after fills."""
        return {}

    def on_load(self, state: dict[str, Any]) -> None:
        """The state `on_save` returned last time, before `on_start`."""

    # ---------------------------------------------------------------- what a strategy uses

    @property
    def contract(self) -> str:
        return self.ctx.contracts[0]

    def now(self) -> int:
        """Market time, UTC epoch ms (follows the accelerated clock in tests and the sim)."""
        return self.ctx.now_ms()

    def bars(self, tf: str | None = None, n: int = 100, contract: str | None = None) -> list[Bar]:
        """The last `n` final bars, oldest first (warmed up from the series cache at start)."""
        return self.ctx.bars(tf or self.ctx.timeframes[0], n, contract or self.contract)

    def position(self, contract: str | None = None) -> Position:
        return self.ctx.position(contract or self.contract)

    def open_orders(self, contract: str | None = None) -> list[OrderEvent]:
        """Our open orders (sent but unanswered ones have state 'pending')."""
        return self.ctx.open_orders(contract)

    def buy(self, size: int = 1, *, limit: float | None = None, stop: float | None = None,
            sl: int | None = None, tp: int | None = None, contract: str | None = None) -> str:
        """Market order, or limit (`limit=`) or stop (`stop=`); `sl`/`tp` bracket distances in
        ticks. Returns the client id; the outcome arrives as `on_order`."""
        return self.ctx.submit("buy", size, contract or self.contract, limit, stop, sl, tp)

    def sell(self, size: int = 1, *, limit: float | None = None, stop: float | None = None,
             sl: int | None = None, tp: int | None = None, contract: str | None = None) -> str:
        return self.ctx.submit("sell", size, contract or self.contract, limit, stop, sl, tp)

    def cancel(self, order: str | OrderEvent) -> None:
        """Cancel by client id or order event."""
        if isinstance(order, OrderEvent):
            order = order.client_id or f"#{order.order_id}"
        self.ctx.cancel(order)

    def cancel_all(self) -> None:
        for order in self.open_orders():
            self.cancel(order)

    def flatten(self, contract: str | None = None) -> None:
        """Close our position and cancel our orders in `contract` (default: all of ours)."""
        self.ctx.flatten(contract)

    def every(self, seconds: float, name: str = "timer") -> None:
        """Call `on_timer(name)` every `seconds` of market time."""
        self.ctx.schedule(name, seconds, True)

    def after(self, seconds: float, name: str = "timer") -> None:
        """Call `on_timer(name)` once, `seconds` of market time from now."""
        self.ctx.schedule(name, seconds, False)

    def stop_timer(self, name: str) -> None:
        self.ctx.unschedule(name)

    def tick_size(self, contract: str | None = None) -> float | None:
        """The contract's tick (the feeds' contract metadata, known before `on_start`; None only
        when the feeds could not say at start, until their next publication)."""
        return self.ctx.tick_size(contract or self.contract)
