"""The risk gate's side of the gateway: the view of the book it judges (working, in-flight and
not yet posted orders included), the quotes that mark held contracts, and the gate's due actions
(trading state, cancels, flatten) run after every quote and every second."""

from __future__ import annotations

import asyncio
import logging
import time

from chillly import topics
from chillly.codec import Envelope
from gateway import journal as J
from gateway.gate import (
    BookView,
    CancelEntries,
    CancelOrders,
    Flatten,
    QuoteView,
    SetTradingState,
    WorkingOrder,
)
from gateway.requests import TYPE_NAME
from gateway.state import GatewayState
from topstepx.errors import VenueError

log = logging.getLogger("gateway")

#: How long a fill without its Position event yet is counted by the risk gate (real seconds).
UNPOSTED_S = 0.5


class GateRunner(GatewayState):
    """Builds the gate's view, marks quotes and runs the gate's actions."""

    def _watch_quotes(self) -> None:
        """Mark held contracts from their quotes: take `quote.<contract>.` and ask the
        subscriptions service to stream the contract (fire and forget: without a feed the
        open P&L stays 0 and the periodic compare still keeps positions right)."""
        for contract in self.book.held() | {r["contract"] for r in self._working()}:
            prefix = topics.quote(contract)
            if prefix not in self._quoted:
                self._quoted.add(prefix)
                self.bus.on(prefix, self._on_quote)
                self._tasks.append(asyncio.ensure_future(self._ask_subscribe(contract)))

    async def _ask_subscribe(self, contract: str) -> None:
        try:
            await self.bus.request("subscriptions", "subscribe", {"contract": contract},
                                   timeout=2.0, attempts=3)
        except Exception as exc:
            log.info("could not subscribe %s for marking (%s)", contract, exc)

    async def _last_price(self, contract: str) -> float | None:
        """The last trade price: from the quotes, else the venue's forming 1m bar."""
        q = self.book.quotes.get(contract)
        if q is not None and q.last is not None:
            return q.last
        now = self.clock.now_ms()
        try:
            bars = await self.client.retrieve_bars(contract, now - 3_600_000, now, limit=1,
                                                   include_partial=True)
        except VenueError:
            return None
        return max(bars, key=lambda b: b.t).c if bars else None

    def _on_quote(self, env: Envelope) -> None:
        p = env.payload
        old = self.book.quotes.get(p["contract"])
        self.book.set_quote(QuoteView(
            p["contract"], p.get("bid") if p.get("bid") is not None else (old.bid if old else None),
            p.get("ask") if p.get("ask") is not None else (old.ask if old else None),
            p.get("last") if p.get("last") is not None else (old.last if old else None),
            self.clock.now_ms()))
        if self.ready:
            self._run_gate()

    def view(self) -> BookView:
        b = self.book
        working = tuple(WorkingOrder(
            order_id=r["order_id"], client_id=r["client_id"], owner=r["owner"],
            contract=r["contract"], side=r["side"], size=r["size"],
            remaining=max(0, r["size"] - r["fill_volume"]),
            order_type=TYPE_NAME.get(r["order_type"], "unknown"), status=r["status"],
            limit_price=r["limit_price"], stop_price=r["stop_price"], parent_id=r["parent_id"],
            protective=r["parent_id"] is not None) for r in self._working())
        # Orders the gate let through that are not venue orders yet (in flight, or an unknown
        # outcome being resolved) may still fill: the gate counts them too.
        placed = self._placed_cids
        pending = [(i.client_id, i.owner, i.contract, i.side, i.size, i.order_type)
                   for i in self._inflight.values()]
        pending += [(r["client_id"], r["owner"], r["contract"], r["side"], r["size"],
                     r["order_type"]) for r in self.intents.values()
                    if r["status"] == J.SENDING and r["client_id"] not in self._inflight
                    and r["parent_id"] is None]
        working += tuple(WorkingOrder(
            order_id=-(n + 1), client_id=cid, owner=owner, contract=contract, side=side,
            size=size, remaining=size, order_type=otype, status=6)
            for n, (cid, owner, contract, side, size, otype) in enumerate(pending)
            if cid not in placed)
        # Filled at the venue but not yet in its position: still counted, as if working, for
        # at most UNPOSTED_S real seconds (a Position event normally follows within ms).
        fresh = time.monotonic() - UNPOSTED_S
        working += tuple(WorkingOrder(
            order_id=-oid, client_id=None, owner=self.orders.get(oid, {}).get("owner", "?"),
            contract=contract, side=side, size=qty, remaining=qty, order_type="market",
            status=2) for contract, fills in self._unposted.items()
            for oid, (side, qty, _, at) in fills.items() if at >= fresh)
        return BookView(account_id=self.account.id, account_name=self.account.name,
                        now_ms=self.clock.now_ms(), balance=b.balance, realized_pnl=b.realized(),
                        open_pnl=b.open_pnl(), can_trade=b.can_trade,
                        trading_state=self.trading_state, positions=tuple(b.positions()),
                        orders=working, quotes=dict(b.quotes))

    def _run_gate(self) -> None:
        try:
            actions = self.gate.due(self.view(), self.clock.now_ms())
        except Exception:
            log.exception("gate.due failed")
            return
        self.risk.save_soon()
        for action in actions:
            self.counters["gate_actions"] += 1
            log.info("risk gate: %s", action)
            if isinstance(action, SetTradingState):
                if action.state != self.trading_state:
                    self.trading_state = action.state
                    self._risk_event("state", action.reason, action.rule)
            elif isinstance(action, CancelEntries):
                rows = [r for r in self._working(action.contract, action.owner)
                        if r["parent_id"] is None]
                self._risk_event("action", f"cancel entries: {action.reason}", action.rule)
                asyncio.ensure_future(self._cancel_many(rows))
            elif isinstance(action, CancelOrders):
                ids = set(action.order_ids)
                rows = [r for r in self._working() if r["order_id"] in ids]
                self._risk_event("action", f"cancel {sorted(ids)}: {action.reason}", action.rule)
                asyncio.ensure_future(self._cancel_many(rows))
            elif isinstance(action, Flatten):
                if self._flattening:
                    continue        # one gate flatten at a time: never a second closing order
                self._risk_event("action", f"flatten: {action.reason}", action.rule,
                                 action.owner)
                asyncio.ensure_future(self._gate_flatten(action))

    async def _gate_flatten(self, action: Flatten) -> None:
        self._flattening = True
        try:
            await self.flatten(action.contract, action.owner)
        except Exception:
            log.exception("gate flatten failed")
        finally:
            self._flattening = False
