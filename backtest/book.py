"""The backtest's venue and gateway in one: working orders, positions, balance and costs.

What the live gateway and the venue do for a strategy, reduced to what a backtest needs and
driven by the bars' price paths (trading/matching/bar_path.py): an accepted order rests until
the path fills it; a market entry with `sl`/`tp` gets its bracket legs at its fill price (one
cancels the other; the stop-loss wins a bar that reaches both, the rule of the path); closing a
position cancels what is left of its legs; `flatten` cancels the owner's orders in a contract
and closes its position at market. Every change is handed to `emit` as the bus message the
strategy would receive live (OrderEvent, FillEvent, PositionEvent), stamped with market time.

P&L: per contract (price - average) x size x tick value / tick size; costs per contract per
side from the product table (fee + commission); the balance moves by realized P&L less costs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chillly.messages import FillEvent, Message, OrderEvent, PositionEvent
from trading import products
from trading.matching.bar_path import BUY, SELL, FillRules, Resting, next_fill
from trading.orders.requests import leg_prices
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

ACCOUNT = 1
_TYPE = {"market": OrderType.MARKET, "limit": OrderType.LIMIT, "stop": OrderType.STOP}


@dataclass(frozen=True, slots=True)
class Spec:
    """What a contract's prices are worth."""

    contract: str
    symbol: str
    tick_size: float
    tick_value: float
    cost_per_side: float

    @classmethod
    def of(cls, contract: str) -> "Spec":
        symbol = products.symbol_of_contract(contract)
        p = products.product(symbol)
        if p is None:
            raise ValueError(f"{contract}: not a product we know (trading/products.py)")
        return cls(contract, p.symbol, p.tick_size, p.tick_value, p.cost_per_side)


@dataclass(slots=True)
class Working:
    """A working order with what the matcher does not need."""

    rest: Resting
    client_id: str
    order_id: int
    owner: str
    contract: str
    sl: int | None = None
    tp: int | None = None
    parent_id: int | None = None


@dataclass(frozen=True, slots=True)
class Fill:
    """One fill, for the report."""

    t: int
    contract: str
    client_id: str
    side: int              # BUY / SELL
    size: int
    price: float
    cost: float
    pnl: float | None      # realized by this fill (None when it only opens)
    kind: str              # market / limit / stop


@dataclass(slots=True)
class Position:
    size: int = 0          # signed
    avg: float = 0.0


@dataclass
class Book:
    specs: dict[str, Spec]
    rules: dict[str, FillRules]
    start_balance: float
    emit: Callable[[Message], None]
    balance: float = 0.0
    orders: dict[str, Working] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    day_realized: float = 0.0
    costs: float = 0.0
    next_id: int = 1

    def __post_init__(self) -> None:
        self.balance = self.start_balance
        for c in self.specs:
            self.positions[c] = Position()

    # ---------------------------------------------------------------- orders in

    def accept(self, args: dict[str, Any], owner: str, now_ms: int, start: float,
               parent: "Working | None" = None, stop_leg: bool = False) -> int:
        """An order the gate allowed: working from `start` on the current (or next) path.
        `parent`: the entry whose bracket leg this is."""
        kind = args["type"]
        side = BUY if args["side"] == "buy" else SELL
        price = args.get("limit_price") if kind == "limit" else args.get("stop_price")
        oid = self.next_id
        self.next_id += 1
        w = Working(Resting(args["client_id"], side, int(args["size"]), kind, price, start,
                            oco=parent.client_id if parent else None, stop_leg=stop_leg),
                    args["client_id"], oid, owner, args["contract"], args.get("sl_ticks"),
                    args.get("tp_ticks"), parent.order_id if parent else None)
        self.orders[w.client_id] = w
        self._order_event(w, "working", now_ms)
        return oid

    def cancel(self, client_id: str, now_ms: int, reason: str = "cancelled") -> bool:
        w = self.orders.pop(client_id, None)
        if w is None:
            return False
        self._order_event(w, "cancelled", now_ms, reason=reason)
        return True

    def flatten(self, owner: str, contract: str | None, now_ms: int, start: float) -> None:
        """Cancel the owner's orders (in `contract`) and close its position(s) at market."""
        for cid in [k for k, w in self.orders.items()
                    if w.owner == owner and (contract is None or w.contract == contract)]:
            self.cancel(cid, now_ms, "flatten")
        for c, pos in self.positions.items():
            if pos.size and (contract is None or c == contract):
                self.accept({"client_id": f"{owner}-flat-{self.next_id}", "contract": c,
                             "side": "sell" if pos.size > 0 else "buy", "size": abs(pos.size),
                             "type": "market"}, owner, now_ms, start)

    # ---------------------------------------------------------------- the path

    def working_in(self, contract: str) -> list[Resting]:
        return [w.rest for w in self.orders.values() if w.contract == contract]

    def match(self, contract: str, path: tuple[float, ...], t0: int, span_ms: int,
              until: float = 3.0, start: float = 0.0,
              span: Callable[[float, float], None] | None = None) -> None:
        """Fill what the path reaches, in path order, from `start` up to `until`. `span(a, b)`
        is told each stretch of the path between fills, before the fill that ends it (with the
        position held over it), and the last stretch after them (the referee's marks)."""
        if not self.orders:
            if span is not None:
                span(start, until)
            return
        rules = self.rules[contract]
        at = start
        while True:
            resting = self.working_in(contract)
            hit = next_fill(path, resting, rules) if resting else None
            if hit is None or hit[1] > until:
                break
            rest, s, price = hit
            if span is not None:
                span(at, s)
            at = s
            self._fill(self.orders[rest.key], s, price, t0 + int(span_ms * s / 3.0))
        if span is not None:
            span(at, until)

    def _fill(self, w: Working, s: float, price: float, t: int) -> None:
        spec = self.specs[w.contract]
        del self.orders[w.client_id]
        side, size = w.rest.side, w.rest.size
        pos = self.positions[w.contract]
        cost = round(spec.cost_per_side * size, 2)
        pnl: float | None = None
        signed = side * size
        if pos.size == 0 or (pos.size > 0) == (signed > 0):
            total = pos.size + signed
            pos.avg = (pos.avg * abs(pos.size) + price * size) / abs(total)
            pos.size = total
        else:
            closed = min(abs(pos.size), size)
            per_point = spec.tick_value / spec.tick_size
            pnl = round((price - pos.avg) * closed * per_point * (1 if pos.size > 0 else -1), 2)
            rest_size = pos.size + signed
            if rest_size == 0:
                pos.size, pos.avg = 0, 0.0
            elif (rest_size > 0) == (pos.size > 0):
                pos.size = rest_size
            else:
                pos.size, pos.avg = rest_size, price
        self.balance = round(self.balance + (pnl or 0.0) - cost, 2)
        self.day_realized = round(self.day_realized + (pnl or 0.0) - cost, 2)
        self.costs = round(self.costs + cost, 2)
        self.fills.append(Fill(t, w.contract, w.client_id, side, size, price, cost, pnl,
                               w.rest.kind))
        self._order_event(w, "filled", t, filled_price=price)
        self.emit(FillEvent(account=ACCOUNT, trade_id=len(self.fills), order_id=w.order_id,
                            contract=w.contract, side=Side.BUY if side == BUY else Side.SELL,
                            size=size, price=price, owner=w.owner, client_id=w.client_id,
                            fees=cost, pnl=None if pnl is None else pnl - cost, vt=t))
        self._after_fill(w, s, price, t)
        self.emit(self.position_event(w.contract, w.owner, price, t))

    def _after_fill(self, w: Working, s: float, price: float, t: int) -> None:
        rest = w.rest
        if rest.oco is not None:       # a bracket leg: the other leg goes
            for cid in [k for k, o in self.orders.items() if o.rest.oco == rest.oco]:
                self.cancel(cid, t, "bracket")
        if self.positions[w.contract].size == 0:   # flat: no leg is left without a position
            for cid in [k for k, o in self.orders.items()
                        if o.contract == w.contract and o.parent_id is not None]:
                self.cancel(cid, t, "position closed")
        if w.sl is None and w.tp is None:
            return
        tick = self.specs[w.contract].tick_size
        exit_side = "sell" if rest.side == BUY else "buy"
        rules = self.rules[w.contract]
        # The gateway's own leg prices (trading/orders/requests.py), from the fill price.
        sl_px, tp_px = leg_prices(Side.BUY if rest.side == BUY else Side.SELL, price, tick,
                                  w.sl, w.tp)
        for leg, ticks, px in (("sl", w.sl, sl_px), ("tp", w.tp, tp_px)):
            if ticks is None or px is None:
                continue
            level = rules.to_tick(px)
            args = {"client_id": f"{w.client_id}-{leg}", "contract": w.contract,
                    "side": exit_side, "size": rest.size,
                    "type": "stop" if leg == "sl" else "limit",
                    "stop_price" if leg == "sl" else "limit_price": level}
            self.accept(args, w.owner, t, s, parent=w, stop_leg=leg == "sl")

    # ---------------------------------------------------------------- marks and events

    def open_pnl(self, contract: str, price: float) -> float:
        pos = self.positions[contract]
        if pos.size == 0:
            return 0.0
        spec = self.specs[contract]
        return (price - pos.avg) * pos.size * spec.tick_value / spec.tick_size

    def position_event(self, contract: str, owner: str, price: float, t: int) -> PositionEvent:
        pos = self.positions[contract]
        side = PositionType.FLAT if pos.size == 0 else \
            PositionType.LONG if pos.size > 0 else PositionType.SHORT
        return PositionEvent(account=ACCOUNT, contract=contract, side=side, size=abs(pos.size),
                             owner=owner, avg_price=pos.avg if pos.size else None,
                             realized_pnl=self.day_realized,
                             open_pnl=round(self.open_pnl(contract, price), 2), vt=t)

    def _order_event(self, w: Working, state: str, t: int, filled_price: float | None = None,
                     reason: str | None = None) -> None:
        status = {"working": OrderStatus.OPEN, "filled": OrderStatus.FILLED,
                  "cancelled": OrderStatus.CANCELLED}[state]
        r = w.rest
        self.emit(OrderEvent(
            account=ACCOUNT, order_id=w.order_id, contract=w.contract, status=status,
            side=Side.BUY if r.side == BUY else Side.SELL, size=r.size,
            order_type=_TYPE[r.kind], owner=w.owner, state=state,
            fill_volume=r.size if state == "filled" else 0, filled_price=filled_price,
            limit_price=r.price if r.kind == "limit" else None,
            stop_price=r.price if r.kind == "stop" else None, custom_tag=w.client_id,
            client_id=w.client_id, parent_id=w.parent_id, reason=reason, vt=t))
