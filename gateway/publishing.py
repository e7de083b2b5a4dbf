"""The gateway's events on the bus: orders, positions, the account and the risk gate's
(docs/wire-format.md, the `order`, `position`, `account` and `risk` types). The messages built
here are also the replies of the `orders`, `positions` and `account` queries."""

from __future__ import annotations

import logging
from typing import Any

from chillly import topics
from chillly.messages import AccountEvent, OrderEvent, PositionEvent, RiskEvent
from gateway.book import ACCOUNT
from gateway.state import GatewayState

log = logging.getLogger("gateway")


class Publishing(GatewayState):
    """Builds and publishes the gateway's events from the shared state."""

    def _order_msg(self, r: dict[str, Any]) -> OrderEvent:
        return OrderEvent(
            account=self.account.id, order_id=r["order_id"], contract=r["contract"],
            status=r["status"], side=r["side"], size=r["size"], order_type=r["order_type"],
            owner=r["owner"], state=r["state"], fill_volume=r["fill_volume"],
            filled_price=r["filled_price"], limit_price=r["limit_price"],
            stop_price=r["stop_price"], custom_tag=r["custom_tag"], client_id=r["client_id"],
            parent_id=r["parent_id"], vt=r.get("updated_ms"))

    def _publish_order(self, r: dict[str, Any]) -> None:
        self.bus.publish(topics.order_event(self.account.id, r["owner"]), self._order_msg(r))

    def _position_msg(self, contract: str, owner: str) -> PositionEvent:
        p = self.book.view(contract, owner)
        net = self.book.venue.get(contract) if owner == ACCOUNT else None
        return PositionEvent(account=self.account.id, contract=contract, side=p.side,
                             size=p.size, owner=owner, avg_price=p.avg_price,
                             realized_pnl=p.realized_pnl, open_pnl=p.open_pnl,
                             vt=net.vt if net else None)

    def _account_msg(self) -> AccountEvent:
        b = self.book
        open_pnl = b.open_pnl()
        return AccountEvent(account=self.account.id, name=self.account.name, balance=b.balance,
                            can_trade=b.can_trade, equity=round(b.balance + open_pnl, 2),
                            realized_pnl=b.realized(), open_pnl=open_pnl,
                            vt=self.clock.now_ms())

    def _publish_all(self) -> None:
        """Every second: held positions, those that changed, and the account."""
        due = set(self._publish_due)
        self._publish_due.clear()
        due |= {(ACCOUNT, c) for c in self.book.held()}
        due |= {(o, c) for (o, c), n in self.book.owners.items() if n.qty}
        for owner, contract in sorted(due):
            self.bus.publish(topics.position_event(self.account.id, owner),
                             self._position_msg(contract, owner))
        self.bus.publish(topics.account_event(self.account.id), self._account_msg())

    def _risk_event(self, event: str, reason: str, rule: str | None, owner: str | None = None,
                    client_id: str | None = None) -> None:
        view = self.view()
        g = self.risk.gate
        figures = dict(g.last_figures) if event == "reject" else {}
        figures.update(lots_allowed=g.max_lots(), day_pnl=round(g.day_pnl(view), 2))
        self.bus.publish(topics.risk_event(self.account.id), RiskEvent(
            account=self.account.id, event=event, state=self.trading_state, reason=reason,
            rule=rule, owner=owner, client_id=client_id, floor=g.floor(),
            equity=round(g.equity(view), 2), figures=figures))
