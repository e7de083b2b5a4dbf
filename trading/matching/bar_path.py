"""Fills against 1m bars: each bar is a price path, and orders fill by stated rules. Pure.

A backtest has bars, not prints, so it assumes how the price moved inside each bar (the rules
are docs/backtest.md's, every one tested on hand-made bars):

- **The path**: open, then the extreme nearer the open, then the other extreme, then close
  (a tie goes to the high first). Between two points the price passes every tick.
- **Where an order starts**: an order sent while a bar is handed over (at its close) acts from
  the next bar's open; an order born inside a bar (a bracket leg at its entry's fill, a flatten)
  acts from that point of the path on. A position on the path is `s` in [0, 3]: segment i runs
  from point i (s = i) to point i+1.
- **Market**: at the path's price where it starts, `slippage` ticks worse (the next bar's open
  for an order sent at a close).
- **Stop**: when the path touches the stop, filled `slippage` ticks worse than the stop; a bar
  that opens beyond it fills at the open, `slippage` ticks worse.
- **Limit**: when the path trades through the limit (strictly beyond it; `touch` fills when it
  only reaches it), at the limit; a limit already marketable where it starts fills there.
- **Both legs of a bracket in one bar**: the stop-loss fills, whatever the path reached first.
- Orders fill whole, at one price. Costs (fees and commissions) per contract per side come from
  the product table (trading/products.py).
"""

from __future__ import annotations

from dataclasses import dataclass

BUY, SELL = 1, -1
LAST = 3.0                   # the position of the close on the path
LIMIT_FILLS = ("through", "touch")


def price_path(o: float, h: float, low: float, c: float) -> tuple[float, float, float, float]:
    """Open, the extreme nearer the open (high on a tie), the other extreme, close."""
    if h - o <= o - low:
        return (o, h, low, c)
    return (o, low, h, c)


@dataclass(frozen=True, slots=True)
class FillRules:
    tick: float
    slippage: int = 1                 # ticks against a market or stop fill
    limit_fill: str = "through"       # or "touch"

    def __post_init__(self) -> None:
        if self.tick <= 0:
            raise ValueError(f"tick must be positive, got {self.tick}")
        if self.slippage < 0:
            raise ValueError(f"slippage is a number of ticks >= 0, got {self.slippage}")
        if self.limit_fill not in LIMIT_FILLS:
            raise ValueError(f"limit fill must be one of {LIMIT_FILLS}, got {self.limit_fill!r}")

    def to_tick(self, price: float) -> float:
        return round(round(price / self.tick) * self.tick, 10)

    def worse(self, side: int, price: float) -> float:
        """`price` moved `slippage` ticks against a `side` order."""
        return self.to_tick(price + side * self.slippage * self.tick)


@dataclass(slots=True)
class Resting:
    """A working order as the matcher sees it."""

    key: str
    side: int                 # BUY (+1) or SELL (-1)
    size: int
    kind: str                 # "market", "limit", "stop"
    price: float | None = None
    start: float = 0.0        # where on the current bar's path it acts from
    oco: str | None = None    # bracket group: legs of one entry share it
    stop_leg: bool = False    # the bracket's stop-loss (wins over its take-profit in one bar)


def price_at(path: tuple[float, ...], s: float) -> float:
    """The path's price at position `s` (linear between points)."""
    i = min(int(s), len(path) - 2)
    frac = s - i
    return path[i] + (path[i + 1] - path[i]) * frac


def trigger(path: tuple[float, ...], order: Resting, rules: FillRules) -> tuple[float, float] | None:
    """Where on `path` (from `order.start`) the order fills, and at what price; None if not."""
    s0 = order.start
    if s0 > LAST:
        return None
    side = order.side
    if order.kind == "market":
        return s0, rules.worse(side, rules.to_tick(price_at(path, s0)))
    level = order.price
    assert level is not None, f"{order.kind} order {order.key} without a price"
    stop = order.kind == "stop"
    touch = rules.limit_fill == "touch"
    i = min(int(s0), len(path) - 2)
    while i < len(path) - 1:
        start = max(float(i), s0)
        a, b = price_at(path, start), path[i + 1]
        # "Beyond" the level in the direction that fills the order.
        if stop:
            hit_a = a >= level if side == BUY else a <= level
        elif touch:
            hit_a = a <= level if side == BUY else a >= level
        else:
            hit_a = a < level if side == BUY else a > level
        if hit_a:
            price = rules.to_tick(a)
            return start, rules.worse(side, price) if stop else price
        if stop:
            reached = b >= level if side == BUY else b <= level
        elif touch:
            reached = b <= level if side == BUY else b >= level
        else:
            reached = b < level if side == BUY else b > level
        if reached:
            s = i + (level - path[i]) / (b - path[i]) if b != path[i] else start
            s = max(s, start)
            return s, rules.worse(side, level) if stop else level
        i += 1
    return None


def next_fill(path: tuple[float, ...], orders: list[Resting], rules: FillRules
              ) -> tuple[Resting, float, float] | None:
    """The first order to fill on `path`: (order, position, price), or None.

    A bracket whose two legs both fill somewhere on this bar's path fills its stop-loss."""
    hits: dict[str, tuple[float, float]] = {}
    for o in orders:
        hit = trigger(path, o, rules)
        if hit is not None:
            hits[o.key] = hit
    if not hits:
        return None
    legs: dict[str, list[Resting]] = {}
    for o in orders:
        if o.oco is not None and o.key in hits:
            legs.setdefault(o.oco, []).append(o)
    for group in legs.values():
        if len(group) > 1 and any(o.stop_leg for o in group):
            for o in group:
                if not o.stop_leg:
                    del hits[o.key]
    best: tuple[Resting, float, float] | None = None
    for o in orders:
        if o.key in hits:
            s, price = hits[o.key]
            if best is None or s < best[1]:
                best = (o, s, price)
    return best


def vertices_between(s_from: float, s_to: float) -> list[int]:
    """The path's points strictly after `s_from` up to `s_to` (where open P&L is marked)."""
    return [i for i in range(4) if s_from < i <= s_to]
