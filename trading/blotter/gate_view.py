"""The gate's view of the account: the venue's working orders plus what may still fill that the
venue does not list yet, so the risk gate never judges an order against less than can fill.
"""

from __future__ import annotations

from trading.risk.types import BookView, WorkingOrder
from trading.orders.requests import TYPE_NAME
from trading.orders.records import SENDING
from trading.venue_codes import OrderStatus
from trading.blotter.state import BlotterState


class GateView(BlotterState):
    """The `BookView` the risk gate judges."""

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
