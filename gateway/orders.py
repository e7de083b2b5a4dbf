"""The order state machine and the fill ledger: a pure core (no I/O, no clock).

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

Refused transitions (terminal -> anything else, fill volume going down) and repeated trade ids
are counted in `counters` so a heartbeat shows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ACCEPTED, WORKING, PARTIAL = "accepted", "working", "partially_filled"
FILLED, CANCELLED, REJECTED, EXPIRED = "filled", "cancelled", "rejected", "expired"
STATES = (ACCEPTED, WORKING, PARTIAL, FILLED, CANCELLED, REJECTED, EXPIRED)
TERMINAL = frozenset({FILLED, CANCELLED, REJECTED, EXPIRED})

# OrderStatus (projectx-api.md §4)
S_OPEN, S_FILLED, S_CANCELLED, S_EXPIRED, S_REJECTED, S_PENDING, S_PENDING_CANCEL, S_SUSPENDED = \
    1, 2, 3, 4, 5, 6, 7, 8
WORKING_STATUSES = (S_OPEN, S_PENDING, S_PENDING_CANCEL, S_SUSPENDED)

_ALLOWED: dict[str, frozenset[str]] = {
    ACCEPTED: frozenset(STATES),
    WORKING: frozenset({WORKING, PARTIAL, FILLED, CANCELLED, EXPIRED}),
    PARTIAL: frozenset({PARTIAL, FILLED, CANCELLED, EXPIRED}),
}


def state_of(status: int | None, fill_volume: int, size: int) -> str | None:
    """The gateway state for a venue status and fill volume; None for an unknown status."""
    if status == S_FILLED:
        return FILLED
    if status == S_CANCELLED:
        return CANCELLED
    if status == S_EXPIRED:
        return EXPIRED
    if status == S_REJECTED:
        return REJECTED
    if status == S_PENDING:
        return PARTIAL if 0 < fill_volume < size else ACCEPTED
    if status in (S_OPEN, S_PENDING_CANCEL, S_SUSPENDED):
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
class OrderState:
    """What the gateway knows of one venue order."""

    order_id: int
    size: int
    state: str = ACCEPTED
    status: int = S_PENDING
    fill_volume: int = 0
    filled_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def remaining(self) -> int:
        return 0 if self.terminal else max(0, self.size - self.fill_volume)


@dataclass
class OrderBookMachine:
    """Every order's state, keyed by venue id, with counters of what was refused."""

    orders: dict[int, OrderState] = field(default_factory=dict)
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
        if cur is None:
            self.orders[order_id] = OrderState(order_id, size_v, new, int(status or 0), fill_v,
                                               filled_price, limit_price, stop_price)
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
