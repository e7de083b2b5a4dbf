"""Quote-driven mean reversion with limit orders: when the mid strays `band` ticks below its
moving average of the last `window` quotes, bid at the best bid (buy limit); when long and the
mid is back at the mean, offer at the best ask (sell limit). Every `stale_s` seconds of market
time a timer cancels what still rests, so quotes are re-made at fresh prices. Position capped at `max_position` lots."""

from collections import deque

from pydantic import Field

from strategy_host.api import Config, OrderEvent, Quote, Strategy


class Params(Config):
    window: int = Field(50, ge=2)
    band: int = Field(4, ge=1)            # ticks
    size: int = Field(1, ge=1)
    max_position: int = Field(1, ge=1)
    stale_s: float = Field(30.0, gt=0)
    tick: float = Field(0.25, gt=0)      # used only if the feeds could not say at start


class MeanReversion(Strategy):
    Config = Params

    def on_start(self) -> None:
        self.mids: deque[float] = deque(maxlen=self.config.window)
        self.every(self.config.stale_s, "stale")

    def on_quote(self, q: Quote) -> None:
        if q.bid is None or q.ask is None:
            return
        mid = (q.bid + q.ask) / 2
        self.mids.append(mid)
        if len(self.mids) < self.config.window or self.open_orders():
            return
        p, mean = self.config, sum(self.mids) / len(self.mids)
        tick, pos = self.tick_size() or p.tick, self.position().size
        if mid <= mean - p.band * tick and pos + p.size <= p.max_position:
            self.buy(p.size, limit=q.bid)
        elif pos > 0 and mid >= mean:
            self.sell(pos, limit=q.ask)

    def on_order(self, order: OrderEvent) -> None:
        if order.state == "rejected":
            self.log.warning("order %s rejected: %s", order.client_id, order.reason)

    def on_timer(self, name: str) -> None:
        for order in self.open_orders():
            if order.state == "working":
                self.cancel(order)
