"""The venue's reports applied to the gateway's state: orders, trades, positions and the
account, whether from the user hub or from a REST read (reconcile). Each order report goes
through the order state machine, is journaled when it changed, and published."""

from __future__ import annotations

import logging
import time
from typing import Any

from chillly import topics
from chillly.messages import FillEvent
from gateway import journal as J
from gateway.book import ACCOUNT
from gateway.state import GatewayState
from topstepx.hub import user_events
from topstepx.models import Account, HalfTrade, Order, Position

log = logging.getLogger("gateway")


class VenueEvents(GatewayState):
    """Applies venue orders, trades, positions and accounts; the user hub's handlers."""

    def _owner_for(self, order: Order) -> tuple[str, str | None, int | None]:
        """(owner, client_id, parent_id) of a venue order, from its customTag or its parent."""
        tag = order.custom_tag or ""
        parent = order.parent_order_id
        if tag in self.by_tag:
            rec = self.intents[self.by_tag[tag]]
            return rec["owner"], rec["client_id"], rec["parent_id"] or parent
        for suffix in ("-SL", "-TP"):
            if tag.endswith(suffix) and tag[:-len(suffix)] in self.by_tag:
                rec = self.intents[self.by_tag[tag[:-len(suffix)]]]
                return rec["owner"], tag, parent
        if parent is not None and parent in self.orders:
            return self.orders[parent]["owner"], tag or None, parent
        return "external", tag or None, parent

    async def _apply_order(self, order: Order, source: str) -> None:
        if order.account_id not in (None, self.account.id):
            return
        known = self.orders.get(order.id)
        if known is not None:
            owner, cid, parent = known["owner"], known["client_id"], known["parent_id"]
            if owner == "external":
                owner, cid, parent = self._owner_for(order)
        else:
            owner, cid, parent = self._owner_for(order)
            if owner == "external":
                self.counters["external_adopted"] += 1
                log.info("adopted external order %d (%s)", order.id, order.contract_id)
        # A hub event can beat the place() reply: it resolves the intent too.
        managed = False
        if order.custom_tag in self.by_tag:
            rec = self.intents[self.by_tag[order.custom_tag]]
            if rec["custom_tag"] == order.custom_tag:
                managed = bool(rec.get("managed"))
                if rec["status"] == J.SENDING and rec.get("order_id") is None:
                    rec["order_id"] = order.id
                elif rec["status"] == J.NOT_PLACED and order.status != 5:
                    # it reached the venue after the bounded wait after all: adopt it
                    self._resolve_soon(rec, J.PLACED, order.id)
                    self._diff(f"order {order.id} ({rec['client_id']}) arrived after it was "
                               "recorded as not placed; adopted")
        base = known or {}
        size = order.size if order.size is not None else base.get("size", 0)
        tr = self.machine.apply(order.id, order.status, size, order.fill_volume,
                                order.filled_price, order.limit_price, order.stop_price)
        st = self.machine.orders.get(order.id)
        if tr.refused:
            log.info("order %d: %s (%s report refused)", order.id, tr.why, source)
        if st is None:
            return
        row = {"order_id": order.id, "account": self.account.id, "client_id": cid,
               "owner": owner, "contract": order.contract_id or base.get("contract", ""),
               "side": order.side if order.side is not None else base.get("side", 0),
               "size": st.size,
               "order_type": order.type if order.type is not None else base.get("order_type", 0),
               "status": st.status, "state": st.state, "fill_volume": st.fill_volume,
               "filled_price": st.filled_price, "limit_price": st.limit_price,
               "stop_price": st.stop_price, "custom_tag": order.custom_tag,
               "parent_id": parent,
               "created_ms": order.creation_timestamp or base.get("created_ms"),
               "updated_ms": order.update_timestamp or self.clock.now_ms()}
        changed = tr.changed or known is None or known.get("owner") != owner \
            or known.get("state") != st.state
        if managed or base.get("managed"):
            row["managed"] = True
        grew = st.fill_volume - int(base.get("fill_volume") or 0)
        if grew > 0 and row["contract"]:
            self._unposted_seq += 1
            mine = self._unposted.setdefault(row["contract"], {})
            mine[order.id] = (row["side"], mine.get(order.id, (0, 0, 0, 0.0))[1] + grew,
                              self._unposted_seq, time.monotonic())
        self._store_order(row)
        if changed:
            # Appended in arrival order by the writer thread; not awaited, so the hub is never
            # held up by a disk (a crash loses at most what the venue still has: the restart
            # reads orders and today's trades back).
            self.journal.write_soon(self.journal.order_job(
                {k: v for k, v in row.items() if k != "managed"}, self.clock.now_ms(), source,
                True))
            self._publish_order(row)
            await self._on_order_changed(row)

    async def _apply_trade(self, t: HalfTrade, source: str) -> None:
        if t.account_id not in (None, self.account.id) or t.order_id is None:
            return
        if t.id in self.ledger.seen:
            self.ledger.add(t.id)
            return
        order = self.orders.get(t.order_id)
        owner = order["owner"] if order else "external"
        cid = order["client_id"] if order else None
        row: dict[str, Any] = {"trade_id": t.id, "account": self.account.id, "order_id": t.order_id,
               "owner": owner, "client_id": cid, "contract": t.contract_id or "",
               "side": t.side or 0, "size": t.size or 0, "price": float(t.price or 0.0),
               "fees": float(t.fees or 0.0) + float(t.commissions or 0.0),
               "pnl": t.profit_and_loss, "vt": t.creation_timestamp,
               "at_ms": self.clock.now_ms()}
        self.ledger.add(t.id)
        self.journal.write_soon(self.journal.fill_job(row))
        self.counters["fills"] += 1
        await self._ensure_spec(row["contract"])
        own: float | None = None   # the owner's P&L of this fill (the journal keeps the venue's)
        if t.creation_timestamp is None or t.creation_timestamp >= self._day_start():
            own = self.book.add_trade(row["contract"], owner, row["side"], row["size"],
                                      row["price"], row["fees"], row["pnl"], bool(t.voided))
        self.bus.publish(topics.fill_event(self.account.id, owner), FillEvent(
            account=self.account.id, trade_id=t.id, order_id=t.order_id,
            contract=row["contract"], side=row["side"], size=row["size"], price=row["price"],
            owner=owner, client_id=cid, fees=row["fees"], pnl=own, vt=row["vt"]))
        self._publish_due.add((owner, row["contract"]))

    async def _apply_position(self, p: Position) -> None:
        if p.account_id not in (None, self.account.id) or not p.contract_id:
            return
        await self._ensure_spec(p.contract_id)
        self._unposted.pop(p.contract_id, None)   # the venue's position now includes them
        if self.book.set_venue_position(p.contract_id, p.type or 0, p.size or 0,
                                        p.average_price, p.creation_timestamp):
            self._publish_due.add((ACCOUNT, p.contract_id))
            self._watch_quotes()

    def _apply_account(self, a: Account) -> None:
        if a.id != self.account.id:
            return
        if a.balance is not None:
            self.book.balance = float(a.balance)
        if a.can_trade is not None:
            self.book.can_trade = bool(a.can_trade)

    async def _hub_order(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_order(Order.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad order event from the hub: %s", exc)

    async def _hub_trade(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_trade(HalfTrade.model_validate(data), "hub")
            except ValueError as exc:
                log.warning("bad trade event from the hub: %s", exc)

    async def _hub_position(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                await self._apply_position(Position.model_validate(data))
            except ValueError as exc:
                log.warning("bad position event from the hub: %s", exc)

    async def _hub_account(self, args: list[Any]) -> None:
        for _action, data in user_events(args):
            try:
                self._apply_account(Account.model_validate(data))
            except ValueError as exc:
                log.warning("bad account event from the hub: %s", exc)
