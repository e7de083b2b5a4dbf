"""Reconciliation with the venue, which is authoritative: the start-up catch-up (journal fills,
intents left `sending`, a full compare, the risk book's history), the compare every
GATEWAY_RECONCILE_INTERVAL, and the gap read after a user hub reconnect (nothing is replayed)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from chillly.clock import Clock
from gateway.placing import SEARCH_MARGIN_MS, Placer
from gateway.publishing import Publisher
from gateway.risk_runtime import HISTORY_MS, RiskRuntime, net_history
from gateway.venue_events import VenueEvents
from topstepx.client import ProjectXClient
from topstepx.budget import priority
from topstepx.errors import VenueError
from topstepx.hub import HubAgent, OpenHandler
from topstepx.models import Order
from trading.blotter import Blotter
from trading.positions import ACCOUNT
from trading.orders.records import FillRecord
from trading.venue_codes import WORKING_STATUSES

log = logging.getLogger("gateway")


class Reconciler:
    """Reads the venue's orders, trades, positions and account back and applies them."""

    def __init__(self, client: ProjectXClient, blotter: Blotter, venue: VenueEvents,
                 placer: Placer, risk: RiskRuntime, publisher: Publisher, clock: Clock,
                 counters: dict[str, int], interval_s: float,
                 subscribe_hub: OpenHandler, ready: Callable[[], bool]) -> None:
        self.client, self.blotter, self.venue, self.placer = client, blotter, venue, placer
        self.risk, self.publisher, self.clock, self.counters = risk, publisher, clock, counters
        self.interval_s, self._subscribe_hub, self.ready = interval_s, subscribe_hub, ready
        self._hub_opens = 0

    async def catch_up(self, journal_fills: list[FillRecord], risk_known: bool) -> None:
        """Start-up steps 4 to 6 (docs/gateway.md), before any order command is accepted:
        today's P&L and owners' shares from the journal's fills, every intent left `sending`
        resolved by its customTag, a full compare with the venue, and the risk book's history
        from the venue's trades: all of it when the journal had none, else the days missed
        while stopped."""
        day = self.venue.day_start()
        for f in journal_fills:  # today's P&L and owners' shares from our own record
            if (f.vt or f.at_ms) >= day:
                await self.venue.specs.ensure(f.contract)
                self.blotter.replay_fill(f, day)
        pending = self.blotter.unresolved()
        if pending:
            log.info("resolving %d intents left without a venue id", len(pending))
            await asyncio.gather(*(self.placer.resolve(r, since_restart=True) for r in pending))
        await self.reconcile(start=True)
        if not risk_known:
            trades = await self.client.search_trades(self.blotter.account_id,
                                                     self.clock.now_ms() - HISTORY_MS)
            await self.risk.bootstrap(net_history(trades), self.blotter.book.balance)
        elif (since := self.risk.missed_since_ms()) is not None:
            # stopped across 17:00 CT: the days missed, from what the venue did meanwhile
            trades = await self.client.search_trades(self.blotter.account_id, since)
            await self.risk.catch_up(net_history(trades), self.blotter.book.balance)

    async def on_hub_open(self, agent: HubAgent) -> None:
        await self._subscribe_hub(agent)
        self._hub_opens += 1
        if self._hub_opens > 1 and self.ready():
            # Nothing is replayed after a reconnect: read the gap back by REST.
            self.counters["hub_gap_reads"] += 1
            asyncio.ensure_future(self.safe_reconcile())

    async def reconcile(self, start: bool = False) -> None:
        """Read the venue's orders (incl. suspended children), trades of the day, positions
        and account, and apply them: the venue is authoritative. Its calls may use the venue
        budget's reserved share (topstepx/budget.py)."""
        with priority():
            await self._reconcile(start)

    async def _reconcile(self, start: bool) -> None:
        self.counters["reconciles"] += 1
        venue, blotter = self.venue, self.blotter
        venue.diffs_now = 0
        acc = blotter.account_id
        day = venue.day_start()
        since = min([day] + [r.created_ms for r in blotter.working() if r.created_ms])
        mark = blotter.read_started()   # never over a report that comes while the read is out
        orders = await self.client.search_orders(acc, since - SEARCH_MARGIN_MS)
        suspended: list[Order] = []
        while True:  # the venue caps a page at 100 rows
            page, _ = await self.client.query_orders(
                acc, statuses=sorted(WORKING_STATUSES), page_size=100,
                page_offset=len(suspended))
            suspended += page
            if len(page) < 100:
                break
        seen = {o.id for o in orders}
        venue_open = {o.id for o in orders if o.status in WORKING_STATUSES} \
            | {o.id for o in suspended}
        for o in sorted(orders + [o for o in suspended if o.id not in seen],
                        key=lambda o: (o.creation_timestamp or 0, o.id)):
            known = blotter.orders.get(o.id)
            before = known.state if known is not None else None
            await venue.apply_order(o, "rest", read_mark=mark)
            known = blotter.orders.get(o.id)
            after = known.state if known is not None else None
            if not start and before is not None and before != after:
                venue.diff(f"order {o.id}: {before} -> {after} found by REST")
        # our working orders the venue no longer lists as open: ask for each
        for oid, row in list(blotter.orders.items()):
            if not row.terminal and oid not in venue_open and oid not in seen:
                try:
                    mark = blotter.read_started()
                    await venue.apply_order(await self.client.order_by_id(acc, oid), "rest",
                                            read_mark=mark)
                except VenueError:
                    pass
        trades = await self.client.search_trades(acc, day)
        for t in sorted(trades, key=lambda t: t.id):
            if t.id not in blotter.ledger.seen and not start:
                venue.diff(f"trade {t.id} found by REST")
            await venue.apply_trade(t, "rest")
        mark = blotter.read_started()
        positions = await self.client.search_open_positions(acc)
        blotter.position_read_done(mark)   # fills known before this read are in its positions
        for p in positions:    # never over an event that came while the read was under way
            await venue.apply_position(p, read_mark=mark)
        for contract in blotter.flat_unless({p.contract_id for p in positions
                                             if p.contract_id}, read_mark=mark):
            venue.diff(f"position {contract} flat at the venue")
            self.publisher.due.add((ACCOUNT, contract))
        mark = blotter.read_started()
        for a in await self.client.search_accounts(only_active=True):
            venue.apply_account(a, read_mark=mark)
        if venue.diffs_now == 0 and venue.diff_alarm:
            venue.diff_alarm = False
            self.publisher.alarm("reconcile_diff", False, "the venue and the gateway agree again")

    async def safe_reconcile(self) -> None:
        try:
            await self.reconcile()
        except VenueError as exc:
            log.warning("reconcile failed: %s", exc)

    async def loop(self) -> None:
        while True:
            await self.clock.sleep(self.interval_s)
            await self.safe_reconcile()
