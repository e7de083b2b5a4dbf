"""The venue's reports applied: orders, trades, positions and the account, whether from the
user hub or from a REST read (gateway/reconcile.py). Each is decoded from the venue's model
into the blotter's plain report (trading/blotter/reports.py), applied there, and what changed is
journaled and published; a changed order is handed on (`on_order_changed`: the managed
brackets), a changed position too (`on_position_changed`: the marks watch its quotes).
Also the contracts' tick specs the P&L needs, fetched from the venue once per contract."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from chillly import topics
from chillly.bus import Bus
from chillly.calendar import session_start_ms
from chillly.clock import Clock
from gateway.journal import Journal
from gateway.publishing import Publisher, fill_msg
from topstepx.contracts import ContractNotFound, ContractResolver, symbol_of
from topstepx.errors import VenueError
from topstepx.hub import user_events
from topstepx.models import Account, Contract, HalfTrade, Order, Position
from trading.blotter import Blotter
from trading.blotter.reports import AccountReport, OrderReport, PositionReport, TradeReport
from trading.positions import ACCOUNT
from trading.orders.records import EXTERNAL, PLACED, OrderRecord
from trading.positions import Spec

log = logging.getLogger("gateway")


def order_report(o: Order) -> OrderReport:
    return OrderReport(
        order_id=o.id, account_id=o.account_id, contract=o.contract_id, side=o.side,
        size=o.size, order_type=o.type, status=o.status, fill_volume=o.fill_volume,
        filled_price=o.filled_price, limit_price=o.limit_price, stop_price=o.stop_price,
        custom_tag=o.custom_tag, parent_id=o.parent_order_id, created_ms=o.creation_timestamp,
        updated_ms=o.update_timestamp)


def trade_report(t: HalfTrade) -> TradeReport:
    return TradeReport(
        trade_id=t.id, order_id=t.order_id, account_id=t.account_id, contract=t.contract_id,
        side=t.side, size=t.size, price=t.price,
        fees=t.cost, pnl=t.profit_and_loss,
        created_ms=t.creation_timestamp, voided=bool(t.voided))


def position_report(p: Position) -> PositionReport:
    return PositionReport(contract=p.contract_id, side=p.type, size=p.size,
                          avg_price=p.average_price, account_id=p.account_id,
                          created_ms=p.creation_timestamp)


class Specs:
    """Each contract's tick size and value (what P&L and the tick grid need), from the venue."""

    def __init__(self, resolver: ContractResolver, blotter: Blotter) -> None:
        self.resolver, self.specs = resolver, blotter.book.specs

    def of_contract(self, contract: Contract) -> Spec:
        spec = Spec(float(contract.tick_size or 0.0), float(contract.tick_value or 0.0),
                    symbol_of(contract))
        self.specs[contract.id] = spec
        return spec

    def of(self, contract_id: str) -> Spec:
        return self.specs.get(contract_id) or Spec(0.0, 0.0, contract_id)

    async def ensure(self, contract_id: str) -> None:
        if contract_id and contract_id not in self.specs:
            try:
                self.of_contract(await self.resolver.resolve(contract_id))
            except (ContractNotFound, VenueError) as exc:
                log.warning("no metadata for %s: %s", contract_id, exc)


async def _nothing(_order: OrderRecord) -> None:
    return None


class VenueEvents:
    """Applies venue orders, trades, positions and accounts; the user hub's handlers."""

    def __init__(self, blotter: Blotter, journal: Journal, publisher: Publisher, specs: Specs,
                 bus: Bus, clock: Clock, counters: dict[str, int]) -> None:
        self.blotter, self.journal, self.publisher, self.specs = blotter, journal, publisher, specs
        self.bus, self.clock, self.counters = bus, clock, counters
        #: wired by the service: the managed brackets, the marks (gateway/process.py)
        self.on_order_changed: Callable[[OrderRecord], Awaitable[None]] = _nothing
        self.on_position_changed: Callable[[], None] = lambda: None
        #: differences found with the venue since the current compare began, and the alarm
        self.diffs_now = 0
        self.diff_alarm = False

    def day_start(self) -> int:
        return session_start_ms(self.clock.now_ms())

    def diff(self, text: str) -> None:
        """The venue differed from what the gateway knew (it is authoritative): counted, alarm."""
        self.counters["reconcile_diffs"] += 1
        self.diffs_now += 1
        self.diff_alarm = True
        self.publisher.alarm("reconcile_diff", True, f"the venue differed: {text} (corrected)")

    async def apply_order(self, order: Order, source: str, read_mark: int | None = None) -> None:
        """A hub event, or a REST row read since `read_mark` (`Blotter.read_started`)."""
        ch = self.blotter.apply_order(order_report(order), self.clock.now_ms(), read_mark)
        if ch is None:
            return
        if ch.adopted:
            self.counters["external_adopted"] += 1
            log.info("adopted external order %d (%s)", order.id, order.contract_id)
        if ch.late is not None:
            ch.late.resolve(PLACED, order.id, None, None, self.clock.now_ms())
            self.journal.resolve_soon(ch.late)
            self.diff(f"order {order.id} ({ch.late.client_id}) arrived after it was recorded "
                      "as not placed; adopted")
        if ch.refused:
            log.info("order %d: %s (%s report refused)", order.id, ch.refused, source)
        for fill in ch.reattributed:     # its trades came first: now its owner's, told so
            self.counters["fills_reattributed"] += 1
            self.journal.write_soon(self.journal.fill_owner_job(fill))
            self.bus.publish(topics.fill_event(fill.account, fill.owner), fill_msg(fill, None))
            self.publisher.due.add((fill.owner, fill.contract))
            self.publisher.due.add((EXTERNAL, fill.contract))
        if ch.changed:
            # Appended in arrival order by the writer thread; not awaited, so the hub is never
            # held up by a disk (a crash loses at most what the venue still has: the restart
            # reads orders and today's trades back).
            self.journal.write_soon(self.journal.order_job(ch.order, self.clock.now_ms(),
                                                           source, True))
            self.publisher.order(ch.order)
            await self.on_order_changed(ch.order)

    async def apply_trade(self, t: HalfTrade, source: str) -> None:
        report = trade_report(t)
        if self.blotter.trade_is_new(report):
            await self.specs.ensure(report.contract or "")
        taken = self.blotter.apply_trade(report, self.clock.now_ms(), self.day_start())
        if taken is None:
            return
        fill = taken.fill
        self.journal.write_soon(self.journal.fill_job(fill))   # the venue's P&L
        self.counters["fills"] += 1
        self.bus.publish(topics.fill_event(fill.account, fill.owner),
                         fill_msg(fill, taken.owner_pnl))
        self.publisher.due.add((fill.owner, fill.contract))

    async def apply_position(self, p: Position, read_mark: int | None = None) -> None:
        """A hub event, or (`read_mark`) a row of a REST read begun at that mark."""
        if p.account_id not in (None, self.blotter.account_id) or not p.contract_id:
            return
        await self.specs.ensure(p.contract_id)
        if self.blotter.apply_position(position_report(p), read_mark):
            self.publisher.due.add((ACCOUNT, p.contract_id))
            self.on_position_changed()

    def apply_account(self, a: Account, read_mark: int | None = None) -> None:
        """A hub event, or a REST row read since `read_mark` (`Blotter.read_started`)."""
        was = self.blotter.book.can_cancel
        self.blotter.apply_account(AccountReport(a.id, a.balance, a.can_trade, a.simulated),
                                   read_mark)
        if was and not self.blotter.book.can_cancel:
            self.cannot_cancel("the venue lists it as a live account")

    def cannot_cancel(self, why: str) -> None:
        """One alarm when this account's orders turn out impossible to withdraw."""
        self.counters["cancel_unsupported"] += 1
        self.publisher.alarm("cancel_unsupported", True, (
            f"account {self.blotter.account_id} cannot cancel orders at the venue ({why}): "
            "resting entries and managed brackets are refused; a flatten closes a bracketed "
            "position by firing its stop through the market, the venue's OCO drops the target"))

    def subscribe(self, hub: Any) -> None:
        """The user hub's events, applied as they come."""
        hub.on("GatewayUserOrder", self._hub_order)
        hub.on("GatewayUserTrade", self._hub_trade)
        hub.on("GatewayUserPosition", self._hub_position)
        hub.on("GatewayUserAccount", self._hub_account)

    async def _hub_order(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self.apply_order(Order.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad order event from the hub: %s", exc)

    async def _hub_trade(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self.apply_trade(HalfTrade.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad trade event from the hub: %s", exc)

    async def _hub_position(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self.apply_position(Position.model_validate(data))
            except ValueError as exc:
                log.warning("bad position event from the hub: %s", exc)

    async def _hub_account(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                self.apply_account(Account.model_validate(data))
            except ValueError as exc:
                log.warning("bad account event from the hub: %s", exc)
