"""The order state machine and the fill ledger (pure: no I/O, no clock).

The venue reports an order's `status` (projectx-api.md §4) and `fillVolume`; the gateway maps
them onto its own states and refuses what cannot happen, so a stale REST read, a replayed hub
event or a bug upstream can never move an order backwards:

    accepted -> working -> partially_filled -> filled
        \\          \\              \\-> cancelled | expired
         \\          \\-> cancelled | expired | filled
          \\-> rejected | cancelled | expired | filled | partially_filled

- accepted: the venue acknowledged it (Pending, status 6) or the place call returned its id;
- working: Open (1), Suspended bracket child (8) or PendingCancellation (7) with nothing filled;
- partially_filled: still working with 0 < fillVolume < size;
- terminal: filled (2), cancelled (3), expired (4), rejected (5). A terminal order never
  changes state again; the same terminal report twice is a harmless repeat.

A report older than what is known (an earlier state, or fewer lots filled) is refused and
changes nothing. Refused transitions and repeated trade ids are counted in `counters` so a
heartbeat shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trading.orders.records import (
    ACCEPTED,
    CANCELLED,
    EXPIRED,
    FILLED,
    PARTIAL,
    REJECTED,
    STATES,
    TERMINAL,
    WORKING,
    OrderRecord,
)
from trading.venue_codes import WORKING_STATUSES, OrderStatus

__all__ = ["ACCEPTED", "CANCELLED", "EXPIRED", "FILLED", "PARTIAL", "REJECTED", "STATES",
           "TERMINAL", "WORKING", "WORKING_STATUSES", "FillLedger", "OrderBookMachine",
           "Transition", "state_of"]

_ALLOWED: dict[str, frozenset[str]] = {
    ACCEPTED: frozenset(STATES),
    WORKING: frozenset({WORKING, PARTIAL, FILLED, CANCELLED, EXPIRED}),
    PARTIAL: frozenset({PARTIAL, FILLED, CANCELLED, EXPIRED}),
}


def state_of(status: int | None, fill_volume: int, size: int) -> str | None:
    """The gateway state for a venue status and fill volume; None for an unknown status."""
    if status == OrderStatus.FILLED:
        return FILLED
    if status == OrderStatus.CANCELLED:
        return CANCELLED
    if status == OrderStatus.EXPIRED:
        return EXPIRED
    if status == OrderStatus.REJECTED:
        return REJECTED
    if status == OrderStatus.PENDING:
        return PARTIAL if 0 < fill_volume < size else ACCEPTED
    if status in (OrderStatus.OPEN, OrderStatus.PENDING_CANCELLATION, OrderStatus.SUSPENDED):
        return PARTIAL if 0 < fill_volume < size else WORKING
    return None


@dataclass
class Transition:
    """The outcome of applying one venue report: `changed` if anything the gateway publishes
    changed, `refused` (with `why`) if the report was not applied at all."""

    changed: bool
    refused: bool = False
    why: str = ""


@dataclass
class OrderBookMachine:
    """Every order's record, keyed by venue id, with counters of what was refused. The records
    are the blotter's (one copy of each order): this decides only their state fields."""

    orders: dict[int, OrderRecord] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=lambda: {
        "invalid_transitions": 0, "repeated_reports": 0, "unknown_statuses": 0})

    def apply(self, order_id: int, status: int | None, size: int | None, fill_volume: int | None,
              filled_price: float | None = None, limit_price: float | None = None,
              stop_price: float | None = None) -> Transition:
        """Apply one venue report (hub event or REST row) of an order."""
        cur = self.orders.get(order_id)
        size_v = size if size is not None else (cur.size if cur else 0)
        fill_v = fill_volume if fill_volume is not None else (cur.fill_volume if cur else 0)
        new = state_of(status, fill_v, size_v)
        if new is None:
            self.counters["unknown_statuses"] += 1
            return Transition(False, True, f"unknown status {status!r}")
        if cur is None or not cur.reported:
            # the first report of an order: taken as it is (nothing older is known)
            if cur is None:
                cur = self.orders[order_id] = OrderRecord(order_id, size_v)
            cur.size, cur.state, cur.status, cur.fill_volume = size_v, new, int(status or 0), fill_v
            cur.filled_price, cur.limit_price, cur.stop_price = \
                filled_price, limit_price, stop_price
            cur.reported = True
            return Transition(True)
        if cur.terminal:
            if new == cur.state and fill_v == cur.fill_volume:
                self.counters["repeated_reports"] += 1
                return Transition(False)
            self.counters["invalid_transitions"] += 1
            return Transition(False, True, f"{cur.state} -> {new} after a terminal state")
        if new not in _ALLOWED[cur.state]:
            self.counters["invalid_transitions"] += 1
            return Transition(False, True, f"{cur.state} -> {new} is not a valid transition")
        if fill_v < cur.fill_volume:
            self.counters["invalid_transitions"] += 1
            return Transition(False, True,
                              f"fill volume went down ({cur.fill_volume} -> {fill_v})")
        before = (cur.state, cur.status, cur.fill_volume, cur.filled_price, cur.limit_price,
                  cur.stop_price, cur.size)
        cur.state, cur.status, cur.fill_volume, cur.size = new, int(status or 0), fill_v, size_v
        if filled_price is not None:
            cur.filled_price = filled_price
        if limit_price is not None:
            cur.limit_price = limit_price
        if stop_price is not None:
            cur.stop_price = stop_price
        after = (cur.state, cur.status, cur.fill_volume, cur.filled_price, cur.limit_price,
                 cur.stop_price, cur.size)
        if before == after:
            self.counters["repeated_reports"] += 1
            return Transition(False)
        return Transition(True)


@dataclass
class FillLedger:
    """Trade ids seen, so a fill is counted once whichever path (hub, REST read-back) brings it."""

    seen: set[int] = field(default_factory=set)
    repeated: int = 0

    def add(self, trade_id: int) -> bool:
        """True the first time a trade id is seen; False (and counted) on a repeat."""
        if trade_id in self.seen:
            self.repeated += 1
            return False
        self.seen.add(trade_id)
        return True
