"""The blotter: the one owner of what the gateway knows of its account (pure: no I/O, no clock).

Venue reports go in (orders, trades, positions, the account: from the user hub or a REST read,
already decoded into the plain reports below), typed changes come out (what changed, for the
gateway to journal, publish and act on), and `view(now_ms)` builds the picture the risk gate
judges. Time is always given by the caller.

The gate's view counts every order that may still fill, not only the venue's working orders:
- intents in flight: passed the gate, not yet a venue order (`judged`), and intents whose
  place call had no clear answer (status `sending`) while they are resolved by tag;
- fills not yet in a position: the venue reports an order's fill before the Position event
  that includes it; such a fill is counted as a working order until a position report for
  its contract arrives, or a read of every position begun after it answers (however late).

A read of the venue's positions, orders or account (REST) is a snapshot taken when the read
began: it is never applied over a contract whose fill, trade or position event, an order whose
report, or an account whose event arrived after that (it is older than what is known: a
phantom position, a working order taken back to an earlier size or price, a balance from
before a loss). Realized P&L (the account's and each owner's) rolls at the trading
day's start (17:00 CT, chillly/calendar.py), from the time given.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from chillly.calendar import session_start_ms
from trading.risk.types import ACTIVE, BookView, Intent, WorkingOrder
from trading.orders.leg_close import cover as leg_cover
from trading.orders.machine import FillLedger, OrderBookMachine
from trading.orders.requests import TYPE_NAME, VENUE_TYPE
from trading.orders.records import (
    EXTERNAL,
    NOT_PLACED,
    SENDING,
    FillRecord,
    IntentRecord,
    OrderRecord,
)
from trading.positions import ACCOUNT, Book
from trading.venue_codes import CANCEL_UNSUPPORTED, OrderStatus, OrderType, Side



#: No trading day is shorter (a DST change makes one 23 h): within it no new day can begin.
_SHORTEST_DAY_MS = 23 * 3_600_000


# --------------------------------------------------------------------------- what goes in


@dataclass(frozen=True)
class OrderReport:
    """The venue's report of one order (venue codes as the venue's integers; None: absent)."""

    order_id: int
    account_id: int | None = None
    contract: str | None = None
    side: int | None = None
    size: int | None = None
    order_type: int | None = None
    status: int | None = None
    fill_volume: int | None = None
    filled_price: float | None = None
    limit_price: float | None = None
    stop_price: float | None = None
    custom_tag: str | None = None
    parent_id: int | None = None
    created_ms: int | None = None
    updated_ms: int | None = None


@dataclass(frozen=True)
class TradeReport:
    """One venue half-trade. `fees` = the venue's fees plus commissions."""

    trade_id: int
    order_id: int | None
    account_id: int | None = None
    contract: str | None = None
    side: int | None = None
    size: int | None = None
    price: float | None = None
    fees: float = 0.0
    pnl: float | None = None
    created_ms: int | None = None
    voided: bool = False


@dataclass(frozen=True)
class PositionReport:
    """The venue's net position of one contract (`side` PositionType; flat: 0 and size 0)."""

    contract: str | None
    side: int | None
    size: int | None
    avg_price: float | None = None
    account_id: int | None = None
    created_ms: int | None = None


@dataclass(frozen=True)
class AccountReport:
    account_id: int
    balance: float | None = None
    can_trade: bool | None = None
    simulated: bool | None = None


# --------------------------------------------------------------------------- what comes out


@dataclass(frozen=True)
class OrderChange:
    """The outcome of one order report.

    `changed`: something the gateway journals and publishes changed (or the order is new to
    it). `refused`: why the state machine refused the report ("" if applied). `adopted`: an
    order the gateway did not place, seen for the first time (owner "external"). `late`: an
    intent recorded as not placed that the venue holds after all (the gateway records it
    placed and reports the difference). `was`: the order's state before the report."""

    order: OrderRecord
    changed: bool
    refused: str = ""
    adopted: bool = False
    late: IntentRecord | None = None
    was: str | None = None
    #: fills taken before this order was known (booked to "external"), now its owner's
    reattributed: tuple[FillRecord, ...] = ()


@dataclass(frozen=True)
class TradeTaken:
    """A half-trade taken: the fill as the venue reported it (its `pnl` is against the
    account's average) and the owner's P&L of it against the owner's own average (fees apart;
    None when it opens or adds, or is not of today): what the owner is told."""

    fill: FillRecord
    owner_pnl: float | None


# --------------------------------------------------------------------------- the blotter


@dataclass
class _Unposted:
    side: int
    qty: int
    seq: int
    at_ms: int


@dataclass
class Blotter:
    """What the gateway knows of one account: intents, orders, fills, positions, the account's
    balance and trading state, and what the gate has let through but the venue does not show
    yet."""

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
    _unposted: dict[str, dict[int, _Unposted]] = field(default_factory=dict)
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

    # ------------------------------------------------------------------ loading

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

    # ------------------------------------------------------------------ reading

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

    # ------------------------------------------------------------------ the order path

    def reserve(self, client_id: str) -> IntentRecord | None | bool:
        """Claim a client id for a submit. False if it is taken: the intent that has it (or
        None while another submit of it is under way, not yet journaled); True if claimed."""
        if client_id in self.intents:
            return self.intents[client_id]
        if client_id in self._reserved:
            return None
        self._reserved.add(client_id)
        return True

    def judged(self, intent: Intent) -> None:
        """The gate let it through: counted as working until the venue's order exists."""
        self._inflight[intent.client_id] = intent

    def release(self, client_id: str) -> None:
        """The submit is over (placed, refused or unknown: the intent now speaks for it)."""
        self._reserved.discard(client_id)
        self._inflight.pop(client_id, None)

    def new_intent(self, client_id: str, owner: str, contract: str, side: int, size: int,
                   order_type: str, now_ms: int, *, limit_price: float | None = None,
                   stop_price: float | None = None, trail_ticks: int | None = None,
                   sl_ticks: int | None = None, tp_ticks: int | None = None,
                   parent_id: int | None = None) -> IntentRecord:
        return IntentRecord(client_id=client_id, owner=owner, account=self.account_id,
                            contract=contract, side=side, size=size, order_type=order_type,
                            limit_price=limit_price, stop_price=stop_price,
                            trail_ticks=trail_ticks, sl_ticks=sl_ticks, tp_ticks=tp_ticks,
                            parent_id=parent_id, created_ms=now_ms)

    def add_intent(self, rec: IntentRecord) -> None:
        """An intent now in the journal (also after a retag: the new tag finds it)."""
        self.intents[rec.client_id] = rec
        self._by_tag[rec.custom_tag] = rec.client_id

    def placed(self, rec: IntentRecord, order_id: int, managed: bool) -> OrderRecord:
        """The venue took the intent as `order_id`: an accepted order until its first report
        (unless a report already brought it)."""
        order = self.orders.get(order_id)
        if order is None:
            order = OrderRecord(
                order_id=order_id, size=rec.size, account=self.account_id,
                client_id=rec.client_id, owner=rec.owner, contract=rec.contract, side=rec.side,
                order_type=VENUE_TYPE[rec.order_type], limit_price=rec.limit_price,
                stop_price=rec.stop_price, custom_tag=rec.custom_tag, parent_id=rec.parent_id,
                created_ms=rec.created_ms, updated_ms=rec.created_ms, reported=False)
            self._store(order)
        if managed:
            order.managed = True
        return order

    # ------------------------------------------------------------------ venue reports

    def apply_order(self, r: OrderReport, now_ms: int,
                    read_mark: int | None = None) -> OrderChange | None:
        """One order report through the state machine. None: not this account's, or an
        unknown status on an order never seen. `read_mark`: the report comes from a read begun
        at that mark (`read_started`); it is refused (counted in `stale_orders`) when a report
        of the order arrived since: the state machine keeps a state from going back, this keeps
        a working order's size and prices from going back (a modify the read began before)."""
        if r.account_id not in (None, self.account_id):
            return None
        known = self.orders.get(r.order_id)
        if read_mark is None:
            self._order_touched[r.order_id] = self._next_seq()
        elif known is not None and self._order_touched.get(r.order_id, -1) > read_mark:
            self.stale_orders += 1
            return OrderChange(known, False, "older than a report already applied",
                               was=known.state)
        was = known.state if known is not None else None
        prev_owner = known.owner if known is not None else None
        prev_fill = known.fill_volume if known is not None else 0
        adopted = False
        if known is not None and known.owner != EXTERNAL:
            owner, cid, parent = known.owner, known.client_id, known.parent_id
        else:
            owner, cid, parent = self._owner_for(r)
            adopted = known is None and owner == EXTERNAL
        # A report can beat the place() reply: it resolves the intent too.
        managed, late = False, None
        rec = self.intent_of_tag(r.custom_tag)
        if rec is not None and rec.custom_tag == r.custom_tag:
            managed = rec.managed
            if rec.status == SENDING and rec.order_id is None:
                rec.order_id = r.order_id
            elif rec.status == NOT_PLACED and r.status != OrderStatus.REJECTED:
                late = rec          # it reached the venue after the bounded wait after all
        size = r.size if r.size is not None else (known.size if known is not None else 0)
        tr = self.machine.apply(r.order_id, r.status, size, r.fill_volume, r.filled_price,
                                r.limit_price, r.stop_price)
        order = self.orders.get(r.order_id)
        if order is None:
            return None
        order.account, order.client_id, order.owner, order.parent_id = \
            self.account_id, cid, owner, parent
        if not tr.refused:      # a report older than what is known changes nothing else
            order.contract = r.contract or order.contract
            order.side = r.side if r.side is not None else order.side
            order.order_type = r.order_type if r.order_type is not None else order.order_type
            order.custom_tag = r.custom_tag
            order.created_ms = r.created_ms or order.created_ms
            order.updated_ms = r.updated_ms or now_ms
        order.managed = order.managed or managed
        order.reports += 1
        changed = tr.changed or known is None or prev_owner != owner or was != order.state
        grew = order.fill_volume - prev_fill
        if grew > 0 and order.contract:
            seq = self._touch(order.contract)
            mine = self._unposted.setdefault(order.contract, {})
            before = mine.get(order.order_id)
            mine[order.order_id] = _Unposted(order.side, (before.qty if before else 0) + grew,
                                             seq, now_ms)
        self._store(order)
        moved: tuple[FillRecord, ...] = ()
        if owner != EXTERNAL and r.order_id in self._orphans:
            orphans = self._orphans.pop(r.order_id)
            for f in orphans:
                self.book.reattribute(f.contract, f.owner, owner, f.side, f.size, f.price,
                                      f.fees)
            moved = tuple(replace(f, owner=owner, client_id=cid) for f in orphans)
        return OrderChange(order, changed, tr.why if tr.refused else "", adopted, late, was,
                           moved)

    def trade_is_new(self, t: TradeReport) -> bool:
        """A trade of this account not taken yet (the caller may fetch its contract first)."""
        return t.account_id in (None, self.account_id) and t.order_id is not None \
            and t.trade_id not in self.ledger.seen

    def apply_trade(self, t: TradeReport, now_ms: int, day_start_ms: int) -> TradeTaken | None:
        """One half-trade, taken once: today's ones go into P&L and the owner's share.
        None: another account's, or a repeat (counted)."""
        if t.account_id not in (None, self.account_id) or t.order_id is None:
            return None
        if not self.ledger.add(t.trade_id):
            return None
        order = self.orders.get(t.order_id)
        fill = FillRecord(
            trade_id=t.trade_id, account=self.account_id, order_id=t.order_id,
            owner=order.owner if order else EXTERNAL, client_id=order.client_id if order else None,
            contract=t.contract or "", side=t.side or 0, size=t.size or 0,
            price=float(t.price or 0.0), fees=t.fees, pnl=t.pnl, vt=t.created_ms, at_ms=now_ms,
            voided=t.voided)
        own = None
        if fill.contract:
            self._touch(fill.contract)
        self.book.roll(day_start_ms)
        if t.created_ms is None or t.created_ms >= day_start_ms:
            own = self.book.add_trade(fill.contract, fill.owner, fill.side, fill.size,
                                      fill.price, fill.fees, fill.pnl, fill.voided)
            if order is None and not t.voided:
                self._orphans.setdefault(t.order_id, []).append(fill)
        return TradeTaken(fill, own)

    def replay_fill(self, f: FillRecord, day_start_ms: int) -> None:
        """A journaled fill at start: today's go into P&L and the owner's share."""
        self.book.roll(day_start_ms)
        if (f.vt or f.at_ms) >= day_start_ms:
            self.book.add_trade(f.contract, f.owner, f.side, f.size, f.price, f.fees, f.pnl)

    def roll(self, now_ms: int) -> bool:
        """The trading day of `now_ms` (17:00 CT): a new one resets every realized figure."""
        day = self.book.day_ms
        if day is not None and day <= now_ms < day + _SHORTEST_DAY_MS:
            return False        # (the calendar asked only when a new day may have begun)
        return self.book.roll(session_start_ms(now_ms))

    def apply_position(self, p: PositionReport, read_mark: int | None = None) -> bool:
        """The venue's position of a contract (which includes every fill reported before it).
        True if it changed. `read_mark`: the report comes from a read of every position begun
        at that mark (`read_started`); it is refused (counted in `stale_positions`)
        when a fill, trade or position event of the contract arrived since: it is older."""
        if p.account_id not in (None, self.account_id) or not p.contract:
            return False
        if read_mark is not None:
            if self._touched.get(p.contract, -1) > read_mark:
                self.stale_positions += 1
                return False
        else:
            self._unposted.pop(p.contract, None)
            self._touch(p.contract)
        return self.book.set_venue_position(p.contract, p.side or 0, p.size or 0, p.avg_price,
                                            p.created_ms)

    def read_started(self) -> int:
        """Before a REST read (of every position, or of orders): the mark its answer is applied
        with (`read_mark`), and for `position_read_done`."""
        return self._unposted_seq

    def position_read_done(self, mark: int) -> None:
        """That read has answered: the fills known before it are in its positions."""
        for c in list(self._unposted):
            self._unposted[c] = {o: u for o, u in self._unposted[c].items() if u.seq > mark}

    def flat_unless(self, held: set[str], read_mark: int | None = None) -> list[str]:
        """A read of every position listed `held`: contracts the book holds that it does not
        list are flat (returned, and set flat), unless an event of theirs arrived after the
        read began (`read_mark`)."""
        gone = [c for c in sorted(self.book.held()) if c not in held
                and (read_mark is None or self._touched.get(c, -1) <= read_mark)]
        self.stale_positions += sum(1 for c in self.book.held() if c not in held) - len(gone)
        for c in gone:
            self.book.set_venue_position(c, 0, 0, None)
        return gone

    def apply_account(self, a: AccountReport, read_mark: int | None = None) -> bool:
        """The venue's account. `read_mark`: from a read begun at that mark (`read_started`),
        refused (counted in `stale_accounts`) when an account event arrived since: a balance
        from before a fill's P&L would lift the gate's equity by that loss."""
        if a.account_id != self.account_id:
            return False
        if a.simulated is False:        # what the account is never goes stale
            self.book.can_cancel = False
        if read_mark is None:
            self._account_touched = self._next_seq()
        elif self._account_touched > read_mark:
            self.stale_accounts += 1
            return False
        if a.balance is not None:
            self.book.balance = float(a.balance)
        if a.can_trade is not None:
            self.book.can_trade = bool(a.can_trade)
        return True

    def cancel_refused(self, code: int | None) -> bool:
        """A cancel the venue refused: errorCode 6 ("Live accounts not supported", "Follower
        accounts cannot cancel orders") says this account's orders can never be withdrawn.
        True the first time it is learnt."""
        if code != CANCEL_UNSUPPORTED or not self.book.can_cancel:
            return False
        self.book.can_cancel = False
        return True

    def resting_refusal(self, order_type: str, parent_id: int | None) -> str | None:
        """Why an order may not be placed on this account, or None. Where the venue refuses
        every cancel, an entry that rests (not market) could never be withdrawn: by a flatten,
        a halt, the gate or the trader; it could open a position at any later time."""
        if self.book.can_cancel or order_type == "market" or parent_id is not None:
            return None
        return ("this account cannot cancel orders at the venue (a live or follower account: "
                "Order/cancel errorCode 6), so a resting entry could never be withdrawn; "
                "only market entries are taken")

    def bracket_refusal(self, bracketed: bool, managed: bool) -> str | None:
        """Why a bracketed entry may not be placed, or None. Where the venue refuses every
        cancel, only its own OCO bracket (Auto OCO Brackets) removes a leg when its sibling
        fills or is fired by a flatten (trading/orders/leg_close.py); the gateway's managed
        pair, two separate orders, would leave the sibling working on a flat position."""
        if self.book.can_cancel or not bracketed or not managed:
            return None
        return ("this account cannot cancel orders at the venue (Order/cancel errorCode 6), so "
                "a bracket must be the venue's own OCO: set the account's bracket mode to Auto "
                "OCO Brackets (and GATEWAY_BRACKET_MODE=auto); the gateway's managed legs "
                "could not be withdrawn")

    def reduce_refusal(self, contract: str, side: int, size: int,
                       parent_id: int | None) -> str | None:
        """Why a reducing order may not be placed, or None. Where no order can be cancelled,
        an order that closes lots the position's legs protect would leave those legs working
        beyond the position (free to open one later): such a close goes through `flatten`,
        which closes through the legs themselves."""
        if self.book.can_cancel or parent_id is not None:
            return None
        net = self.expected_net(contract)
        sign = Side(side).sign
        if net == 0 or (net > 0) == (sign > 0):
            return None
        after = max(0, abs(net) - size)
        covered = leg_cover(self.working(contract), contract, side)
        if covered <= after:
            return None
        return (f"this account cannot cancel orders at the venue, and this order would leave "
                f"{covered} lots of stop-loss/take-profit working against a position of "
                f"{after}: close it with flatten, which closes through those legs")

    # ------------------------------------------------------------------ the gate's view

    def view(self, now_ms: int) -> BookView:
        """The account as the gate judges it at `now_ms`: working orders, plus what may still
        fill that the venue does not list yet (intents in flight or unresolved, fills not yet
        in a position)."""
        self.roll(now_ms)
        b = self.book
        working = [WorkingOrder(
            order_id=r.order_id, client_id=r.client_id, owner=r.owner, contract=r.contract,
            side=r.side, size=r.size, remaining=max(0, r.size - r.fill_volume),
            order_type=TYPE_NAME.get(r.order_type, "unknown"), status=r.status,
            limit_price=r.limit_price, stop_price=r.stop_price, parent_id=r.parent_id,
            protective=r.parent_id is not None) for r in self.working()]
        pending = [(i.client_id, i.owner, i.contract, i.side, i.size, i.order_type)
                   for i in self._inflight.values()]
        pending += [(r.client_id, r.owner, r.contract, r.side, r.size, r.order_type)
                    for r in self.intents.values()
                    if r.status == SENDING and r.client_id not in self._inflight
                    and r.parent_id is None]
        working += [WorkingOrder(
            order_id=-(n + 1), client_id=cid, owner=owner, contract=contract, side=side,
            size=size, remaining=size, order_type=otype, status=OrderStatus.PENDING)
            for n, (cid, owner, contract, side, size, otype) in enumerate(pending)
            if cid not in self._placed_cids]
        working += [WorkingOrder(
            order_id=-oid, client_id=None,
            owner=self.orders[oid].owner if oid in self.orders else "?", contract=contract,
            side=u.side, size=u.qty, remaining=u.qty, order_type="market",
            status=OrderStatus.FILLED) for contract, fills in self._unposted.items()
            for oid, u in fills.items()]
        return BookView(account_id=self.account_id, account_name=self.account_name,
                        now_ms=now_ms, balance=b.balance, realized_pnl=b.realized(),
                        open_pnl=b.open_pnl(), can_trade=b.can_trade,
                        trading_state=self.trading_state, positions=tuple(b.positions()),
                        orders=tuple(working), quotes=b.marks())

    # ------------------------------------------------------------------ flatten

    def closing_shares(self, contract: str | None, owner: str | None = None
                       ) -> list[tuple[str, str, int]]:
        """What a flatten sends now, as (owner, contract, signed qty to close): the book's
        shares (`Book.closing_shares`), never more than the contract's net once what is
        already on its way is counted (fills not yet in its position, closing market orders
        working or unresolved). Two flattens, or a flatten whose fills have not reached the
        position yet, can so never send a second close: a position is never reversed."""
        out: list[tuple[str, str, int]] = []
        targets = self.book.closing_shares(contract, owner)
        for c in sorted({t[1] for t in targets}):
            left = self.expected_net(c)
            for o, cc, q in targets:
                if cc != c or left == 0 or (q > 0) != (left > 0):
                    continue
                take = min(abs(q), abs(left)) * (1 if q > 0 else -1)
                out.append((o, c, take))
                left -= take
        return out

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

    # ------------------------------------------------------------------ inside

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

    def _owner_for(self, r: OrderReport) -> tuple[str, str | None, int | None]:
        """(owner, client_id, parent_id) of a venue order, from its customTag or its parent."""
        tag = r.custom_tag or ""
        rec = self.intent_of_tag(tag)
        if rec is not None:
            return rec.owner, rec.client_id, rec.parent_id or r.parent_id
        for suffix in ("-SL", "-TP"):
            rec = self.intent_of_tag(tag[:-len(suffix)]) if tag.endswith(suffix) else None
            if rec is not None:
                return rec.owner, tag, r.parent_id
        parent = self.orders.get(r.parent_id) if r.parent_id is not None else None
        if parent is not None:
            return parent.owner, tag or None, r.parent_id
        return EXTERNAL, tag or None, r.parent_id


__all__ = ["ACCOUNT", "AccountReport", "Blotter", "OrderChange", "OrderReport",
           "PositionReport", "TradeReport", "TradeTaken"]
