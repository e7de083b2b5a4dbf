"""Reconciliation with the venue, which is authoritative: the start-up catch-up (journal fills,
intents left `sending`, a full compare, the risk book's history), the compare every
GATEWAY_RECONCILE_INTERVAL, and the gap read after a user hub reconnect (nothing is replayed)."""

from __future__ import annotations

import asyncio
import logging

from gateway import journal as J
from gateway.book import ACCOUNT
from gateway.orders import TERMINAL
from gateway.risk_runtime import HISTORY_MS
from gateway.state import SEARCH_MARGIN_MS, GatewayState
from topstepx.errors import VenueError
from topstepx.hub import HubAgent
from topstepx.models import Order

log = logging.getLogger("gateway")


class Reconciliation(GatewayState):
    """Reads the venue's orders, trades, positions and account back and applies them."""

    async def _catch_up(self) -> None:
        """Start-up steps 4 to 6 (docs/gateway.md), before any order command is accepted:
        today's P&L and owners' shares from the journal's fills, every intent left `sending`
        resolved by its customTag, a full compare with the venue, and the risk book's history
        from the venue's trades when the journal had none."""
        day = self._day_start()
        for f in self._journal_fills:  # today's P&L and owners' shares from our own record
            if (f["vt"] or f["at_ms"]) >= day:
                await self._ensure_spec(f["contract"])
                self.book.add_trade(f["contract"], f["owner"], f["side"], f["size"], f["price"],
                                    f["fees"], f["pnl"])
        pending = [r for r in self.intents.values() if r["status"] == J.SENDING]
        if pending:
            log.info("resolving %d intents left without a venue id", len(pending))
            await asyncio.gather(*(self._resolve(r, since_restart=True) for r in pending))
        await self.reconcile(start=True)
        if not self._risk_known:
            trades = await self.client.search_trades(self.account.id,
                                                     self.clock.now_ms() - HISTORY_MS)
            await self.risk.bootstrap(
                [(t.creation_timestamp, float(t.profit_and_loss or 0.0) - float(t.fees or 0.0))
                 for t in trades if t.creation_timestamp is not None and not t.voided],
                self.book.balance)

    async def _on_hub_open(self, agent: HubAgent) -> None:
        await self._subscribe_hub(agent)
        self._hub_opens += 1
        if self._hub_opens > 1 and self.ready:
            # Nothing is replayed after a reconnect: read the gap back by REST.
            self.counters["hub_gap_reads"] += 1
            asyncio.ensure_future(self._safe_reconcile())

    async def reconcile(self, start: bool = False) -> None:
        """Read the venue's orders (incl. suspended children), trades of the day, positions
        and account, and apply them: the venue is authoritative."""
        self.counters["reconciles"] += 1
        self._diffs_now = 0
        acc = self.account.id
        day = self._day_start()
        since = min([day] + [r["created_ms"] for r in self._open.values()
                             if r.get("created_ms") and r["state"] not in TERMINAL])
        orders = await self.client.search_orders(acc, since - SEARCH_MARGIN_MS)
        suspended: list[Order] = []
        while True:  # the venue caps a page at 100 rows
            page, _ = await self.client.query_orders(acc, statuses=[1, 6, 7, 8], page_size=100,
                                                     page_offset=len(suspended))
            suspended += page
            if len(page) < 100:
                break
        seen = {o.id for o in orders}
        venue_open = {o.id for o in orders if o.status in (1, 6, 7, 8)} | {o.id for o in suspended}
        for o in sorted(orders + [o for o in suspended if o.id not in seen],
                        key=lambda o: (o.creation_timestamp or 0, o.id)):
            before = self.orders.get(o.id, {}).get("state")
            await self._apply_order(o, "rest")
            after = self.orders.get(o.id, {}).get("state")
            if not start and before is not None and before != after:
                self._diff(f"order {o.id}: {before} -> {after} found by REST")
        # our working orders the venue no longer lists as open: ask for each
        for oid, row in list(self.orders.items()):
            if row["state"] not in TERMINAL and oid not in venue_open and oid not in seen:
                try:
                    o = await self.client.order_by_id(acc, oid)
                    await self._apply_order(o, "rest")
                except VenueError:
                    pass
        trades = await self.client.search_trades(acc, day)
        for t in sorted(trades, key=lambda t: t.id):
            if t.id not in self.ledger.seen and not start:
                self._diff(f"trade {t.id} found by REST")
            await self._apply_trade(t, "rest")
        seq = self._unposted_seq
        positions = await self.client.search_open_positions(acc)
        for c in list(self._unposted):   # fills known before this read are in its positions
            self._unposted[c] = {o: v for o, v in self._unposted[c].items() if v[2] > seq}
        held = {p.contract_id for p in positions}
        for p in positions:
            await self._apply_position(p)
        for contract in list(self.book.held()):
            if contract not in held:
                self._diff(f"position {contract} flat at the venue")
                self.book.set_venue_position(contract, 0, 0, None)
                self._publish_due.add((ACCOUNT, contract))
        for a in await self.client.search_accounts(only_active=True):
            self._apply_account(a)
        if self._diffs_now == 0 and self._alarms.get("reconcile_diff"):
            self._alarms["reconcile_diff"] = False
            self._alarm("reconcile_diff", False, "the venue and the gateway agree again")

    def _diff(self, text: str) -> None:
        self.counters["reconcile_diffs"] += 1
        self._diffs_now += 1
        self._alarms["reconcile_diff"] = True
        self._alarm("reconcile_diff", True, f"the venue differed: {text} (corrected)")

    async def _safe_reconcile(self) -> None:
        try:
            await self.reconcile()
        except VenueError as exc:
            log.warning("reconcile failed: %s", exc)

    async def _reconcile_loop(self) -> None:
        while True:
            await self.clock.sleep(self.s.gateway_reconcile_interval)
            await self._safe_reconcile()
