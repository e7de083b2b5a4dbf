"""What the blotter holds, and the reads and bookkeeping every part of it shares.

`BlotterState` is the base of the blotter's parts (intents, orders, positions, cancel_refusals,
gate_view), which `Blotter` (trading/blotter/__init__.py) combines: the indexes are kept right
in one place (`_store`), and every venue event and read mark is ordered by one sequence
(`_next_seq`), so a read's answer can be told older than an event that arrived after it began.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from chillly.calendar import session_start_ms
from trading.risk.types import ACTIVE, Intent
from trading.orders.machine import FillLedger, OrderBookMachine
from trading.orders.records import SENDING, FillRecord, IntentRecord, OrderRecord
from trading.positions import Book
from trading.venue_codes import OrderType, Side


#: No trading day is shorter (a DST change makes one 23 h): within it no new day can begin.
_SHORTEST_DAY_MS = 23 * 3_600_000


@dataclass
class Unposted:
    """A fill the venue's position of its contract does not include yet."""

    side: int
    qty: int
    seq: int
    at_ms: int


@dataclass
class BlotterState:
    """The blotter's fields and indexes; the parts read them and change them only through
    `_store` (orders) and `_touch` / `_next_seq` (the event sequence)."""

    account_id: int
    account_name: str = ""
    book: Book = field(init=False)
    machine: OrderBookMachine = field(default_factory=OrderBookMachine)
    ledger: FillLedger = field(default_factory=FillLedger)
    intents: dict[str, IntentRecord] = field(default_factory=dict)
    trading_state: str = ACTIVE
    _by_tag: dict[str, str] = field(default_factory=dict)
    _open: dict[int, OrderRecord] = field(default_factory=dict)
    _placed_cids: set[str] = field(default_factory=set)
    _reserved: set[str] = field(default_factory=set)
    _inflight: dict[str, Intent] = field(default_factory=dict)
    _unposted: dict[str, dict[int, Unposted]] = field(default_factory=dict)
    _unposted_seq: int = 0
    #: contract -> sequence number of its newest fill, trade or position event
    _touched: dict[str, int] = field(default_factory=dict)
    #: order id -> fills taken before the order was known (booked to "external")
    _orphans: dict[int, list[FillRecord]] = field(default_factory=dict)
    #: order id -> sequence number of its newest report from outside a read (the hub)
    _order_touched: dict[int, int] = field(default_factory=dict)
    #: position snapshots refused as older than an event already applied
    stale_positions: int = 0
    #: sequence number of the newest account event from outside a read (the hub)
    _account_touched: int = -1
    #: order snapshots refused as older than a report already applied
    stale_orders: int = 0
    #: account snapshots refused as older than an account event already applied
    stale_accounts: int = 0

    def __post_init__(self) -> None:
        self.book = Book(self.account_id, self.account_name)

    def load(self, intents: Iterable[IntentRecord], orders: Iterable[OrderRecord],
             fills: Iterable[FillRecord]) -> None:
        """What the journal held at start: orders as last reported, trade ids seen."""
        for rec in intents:
            self.intents[rec.client_id] = rec
            self._by_tag[rec.custom_tag] = rec.client_id
        for o in orders:
            o.reported = True
            self._store(o)
        for rec in self.intents.values():
            if rec.managed and rec.order_id in self.orders:
                self.orders[rec.order_id].managed = True
        for f in fills:
            self.ledger.seen.add(f.trade_id)

    @property
    def orders(self) -> dict[int, OrderRecord]:
        """Every order known, by venue id (read-only for callers: reports change them)."""
        return self.machine.orders

    def working(self, contract: str | None = None, owner: str | None = None
                ) -> list[OrderRecord]:
        """Orders that may still fill, of a contract and/or an owner."""
        return [r for r in self._open.values() if not r.terminal
                and (contract is None or r.contract == contract)
                and (owner is None or r.owner == owner)]

    def intent_of_tag(self, tag: str | None) -> IntentRecord | None:
        cid = self._by_tag.get(tag or "")
        return self.intents.get(cid) if cid is not None else None

    def legs_of(self, entry_id: int) -> list[IntentRecord]:
        """The gateway's own protective legs asked for an entry (managed brackets)."""
        return [r for r in self.intents.values() if r.parent_id == entry_id]

    def order_of_client(self, client_id: str) -> OrderRecord | None:
        rec = self.intents.get(client_id)
        return self.orders.get(rec.order_id) if rec is not None and rec.order_id else None

    def unresolved(self) -> list[IntentRecord]:
        """Intents whose place call has no clear answer yet."""
        return [r for r in self.intents.values() if r.status == SENDING]

    def roll(self, now_ms: int) -> bool:
        """The trading day of `now_ms` (17:00 CT): a new one resets every realized figure."""
        day = self.book.day_ms
        if day is not None and day <= now_ms < day + _SHORTEST_DAY_MS:
            return False        # (the calendar asked only when a new day may have begun)
        return self.book.roll(session_start_ms(now_ms))

    def expected_net(self, contract: str) -> int:
        """The contract's signed net once what is on its way lands: the venue's position, the
        fills it does not include yet, and market orders (no parent) working or unresolved."""
        net = self.book.venue.get(contract)
        q = net.qty if net is not None else 0
        q += sum(u.qty * Side(u.side).sign for u in self._unposted.get(contract, {}).values())
        for r in self.working(contract):
            if r.order_type == OrderType.MARKET and r.parent_id is None:
                q += max(0, r.size - r.fill_volume) * Side(r.side).sign
        for rec in self.intents.values():
            if rec.contract == contract and rec.status == SENDING and rec.order_type == "market" \
                    and rec.parent_id is None and rec.client_id not in self._placed_cids:
                q += rec.size * Side(rec.side).sign
        return q

    def _next_seq(self) -> int:
        """The next number of the one sequence every venue event and read mark is ordered by."""
        self._unposted_seq += 1
        return self._unposted_seq

    def _touch(self, contract: str) -> int:
        self._touched[contract] = seq = self._next_seq()
        return seq

    def _store(self, order: OrderRecord) -> None:
        """The one place an order is stored, so the indexes stay right."""
        self.orders[order.order_id] = order
        if order.terminal:
            self._open.pop(order.order_id, None)
        else:
            self._open[order.order_id] = order
        if order.client_id:
            self._placed_cids.add(order.client_id)
