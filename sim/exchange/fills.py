"""A fill in the sim's trading engine: the order's fill, its bracket legs, OCO, the booking.

Bracket children of an entry go live at absolute prices from its first fill, sized to what has
filled so far (TP first, then SL, the live venue's order); a filled leg cancels its sibling and
a partly filled one shrinks it; then the fill is booked (booking.py) and its events follow
the order updates: trades, then the position, then the account.
"""

from __future__ import annotations

from sim.exchange.state import EngineState
from sim.exchange.wire import FILLED, OPEN, SUSPENDED, WORKING, Order
from trading.matching.prints import round_to_tick


class Fills(EngineState):
    """Filling working orders."""

    def _fill(self, order: Order, price: float, t: int, qty: int | None = None) -> None:
        """Fill `qty` lots (default: all that is left) of a working order at `price`."""
        contract = order.contract
        assert contract is not None
        price = round_to_tick(price, contract.tick_size)
        left = order.size - order.fill_volume
        qty = left if qty is None else min(qty, left)
        if qty <= 0:
            return
        first = order.fill_volume == 0
        done = order.fill_volume
        order.filled_price = price if first else round(
            ((order.filled_price or price) * done + price * qty) / (done + qty), 9)
        order.fill_volume = done + qty
        order.updated_ms = t
        if order.fill_volume >= order.size:
            order.status = FILLED
            self._unwork(order)
        self.counters["fills"] += 1
        self._emit_order(order)
        # Bracket children of an entry go live at absolute prices from its first fill, sized
        # to what has filled so far: TP first, then SL (live order).
        kids = [self._orders[c] for c in self._children.get(order.id, ())]
        for child in sorted(kids, key=lambda c: 0 if c.leg == "TP" else 1):
            if child.status == SUSPENDED:
                assert child.bracket_ticks is not None
                level = round_to_tick(price + child.bracket_ticks * contract.tick_size,
                                      contract.tick_size)
                child.size = order.fill_volume
                if child.leg == "TP":
                    child.limit_price = level
                else:
                    child.stop_price = level
                self._set_open(child, t)
            elif child.status == OPEN and child.size < order.fill_volume:
                child.size = order.fill_volume
                child.updated_ms = t
                self._emit_order(child)
        # OCO: a filled leg cancels its sibling; a partly filled one shrinks it.
        if order.leg is not None and order.linked_order_id is not None:
            sibling = self._orders.get(order.linked_order_id)
            if sibling is not None and sibling.status in WORKING:
                if order.status == FILLED:
                    self._cancel(sibling, t)
                else:
                    sibling.size = max(sibling.fill_volume + 1, order.size - order.fill_volume)
                    sibling.updated_ms = t
                    self._emit_order(sibling)
        account = self._accounts[order.account_id]
        self._out.extend(self.book.book_fill(account, order, contract, price, qty, t))
        self._touched[account.id] = contract.id
