"""Opening-range breakout with stop orders: the high and low of the session's first
`range_bars` bars define the range; then a buy stop one tick above it and a sell stop one tick
below, each with a bracket. When one side fills, the other is cancelled (one trade a session).
The range survives a restart (`on_save`/`on_load`)."""

from typing import Any

from pydantic import Field

from chillly.calendar import trading_date
from strategy_host.api import Bar, Config, FillEvent, OrderEvent, OrderType, Strategy


class Params(Config):
    range_bars: int = Field(15, ge=1)
    size: int = Field(1, ge=1)
    sl_ticks: int = Field(12, ge=1)
    tp_ticks: int = Field(24, ge=1)
    tick: float = Field(0.25, gt=0)   # used only if the feeds could not say at start


class OpeningRange(Strategy):
    Config = Params
    day, placed = "", False               # reset by the first bar of every session
    seen: list[tuple[float, float]] = []


    def on_bar(self, bar: Bar) -> None:
        day = str(trading_date(bar.t))
        if day != self.day:                       # a new session: a new range
            self.day, self.seen, self.placed = day, [], False
        if self.placed:
            return
        self.seen.append((bar.h, bar.l))
        if len(self.seen) < self.config.range_bars:
            return
        tick = self.tick_size() or self.config.tick
        high, low = max(h for h, _ in self.seen), min(lo for _, lo in self.seen)
        p = self.config
        self.buy(p.size, stop=high + tick, sl=p.sl_ticks, tp=p.tp_ticks)
        self.sell(p.size, stop=low - tick, sl=p.sl_ticks, tp=p.tp_ticks)
        self.placed = True
        self.log.info("range %s..%s: stops placed", low, high)

    def on_order(self, order: OrderEvent) -> None:
        # Stops made from a catch-up bar (the feed replaying missed minutes) are refused by the
        # host, not sent: once neither breakout stop is left, place them on the next bar.
        if order.state == "rejected" and (order.reason or "").startswith("catch-up") \
                and not any(o.parent_id is None for o in self.open_orders()):
            self.placed = False

    def on_fill(self, fill: FillEvent) -> None:
        for order in self.open_orders():          # the other breakout side
            if order.order_type == OrderType.STOP and order.parent_id is None \
                    and order.order_id != fill.order_id:
                self.cancel(order)

    def on_save(self) -> dict[str, Any]:
        return {"day": self.day, "seen": self.seen, "placed": self.placed}

    def on_load(self, state: dict[str, Any]) -> None:
        self.day, self.placed = state.get("day", ""), state.get("placed", False)
        self.seen = [tuple(x) for x in state.get("seen", [])]
