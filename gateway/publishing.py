"""The gateway's events on the bus: orders, positions, the account, the risk gate's and the
gateway's alarms (docs/wire-format.md, the `order`, `position`, `account`, `risk` and `alarm`
types). The messages built here are also the replies of the `orders`, `positions`, `account`,
`fills` and `refusals` queries: a refusal of the gate is journaled as the event published."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Hashable
from typing import Any

from chillly import topics
from chillly.bus import Bus
from chillly.clock import Clock
from chillly.messages import AccountEvent, Alarm, FillEvent, OrderEvent, PositionEvent, RiskEvent
from gateway.journal import Journal
from trading.risk.gate import RiskGate
from trading.risk.types import Intent
from trading.blotter import Blotter
from trading.positions import ACCOUNT
from trading.orders.records import FillRecord, IntentRecord, OrderRecord
from trading.orders.requests import TYPE_NAME, VENUE_TYPE
from trading.venue_codes import OrderStatus

log = logging.getLogger("gateway")


def fill_msg(fill: FillRecord, pnl: float | None) -> FillEvent:
    """A fill as the bus carries it; `pnl` is what its owner is told (None on an opening)."""
    return FillEvent(account=fill.account, trade_id=fill.trade_id, order_id=fill.order_id,
                     contract=fill.contract, side=fill.side, size=fill.size, price=fill.price,
                     owner=fill.owner, client_id=fill.client_id, fees=fill.fees, pnl=pnl,
                     vt=fill.vt)


def intent_fields(intent: Intent) -> dict[str, Any]:
    """A refused submit or modify as the gate judged it (a modify: the order after the change),
    the `order` of its refusal."""
    return {"kind": intent.kind, "order_id": intent.order_id, "contract": intent.contract,
            "symbol": intent.symbol, "side": intent.side, "size": intent.size,
            "order_type": intent.order_type, "limit_price": intent.limit_price,
            "stop_price": intent.stop_price, "trail_ticks": intent.trail_ticks,
            "sl_ticks": intent.sl_ticks, "tp_ticks": intent.tp_ticks}


def order_fields(kind: str, order: OrderRecord | None, contract: str | None) -> dict[str, Any]:
    """A refused cancel (`order`) or cancel-all (`contract`, None: every contract), the
    `order` of its refusal."""
    if order is None:
        return {"kind": kind, "contract": contract}
    return {"kind": kind, "order_id": order.order_id, "contract": order.contract,
            "side": order.side, "size": order.size,
            "order_type": TYPE_NAME.get(order.order_type, "unknown"),
            "limit_price": order.limit_price, "stop_price": order.stop_price}


class Publisher:
    """Builds and publishes the gateway's events from the blotter."""

    def __init__(self, bus: Bus, name: str, alarms: dict[str, str], blotter: Blotter,
                 gate: RiskGate, journal: Journal, clock: Clock) -> None:
        self.bus, self.name, self.alarms = bus, name, alarms
        self.blotter, self.gate, self.journal, self.clock = blotter, gate, journal, clock
        self.refusals = 0                 # the gate's refusals published by this instance
        #: (owner, contract) positions changed since the last publication
        self.due: set[tuple[str, str]] = set()
        #: the account goes out on change, at most 4 a real second (gateway/throttle.py)
        self.account_out = ChangeThrottle()

    @property
    def account(self) -> int:
        return self.blotter.account_id

    def order_msg(self, r: OrderRecord) -> OrderEvent:
        return OrderEvent(
            account=self.account, order_id=r.order_id, contract=r.contract, status=r.status,
            side=r.side, size=r.size, order_type=r.order_type, owner=r.owner, state=r.state,
            fill_volume=r.fill_volume, filled_price=r.filled_price, limit_price=r.limit_price,
            stop_price=r.stop_price, custom_tag=r.custom_tag, client_id=r.client_id,
            parent_id=r.parent_id, vt=r.updated_ms)

    def order(self, r: OrderRecord) -> None:
        self.bus.publish(topics.order_event(self.account, r.owner), self.order_msg(r))

    def not_placed(self, rec: IntentRecord) -> None:
        """An intent recorded as not placed (no venue order): its owner is told, as a rejected
        order without a venue id, so it keeps no phantom pending order."""
        self.bus.publish(topics.order_event(self.account, rec.owner), OrderEvent(
            account=self.account, order_id=0, contract=rec.contract,
            status=OrderStatus.REJECTED, side=rec.side, size=rec.size,
            order_type=VENUE_TYPE[rec.order_type], owner=rec.owner, state="rejected",
            limit_price=rec.limit_price, stop_price=rec.stop_price, custom_tag=rec.custom_tag,
            client_id=rec.client_id, parent_id=rec.parent_id,
            reason=f"not placed: {rec.message or 'not found at the venue'}",
            vt=rec.resolved_ms))

    def position_msg(self, contract: str, owner: str) -> PositionEvent:
        book = self.blotter.book
        p = book.view(contract, owner)
        net = book.venue.get(contract) if owner == ACCOUNT else None
        return PositionEvent(account=self.account, contract=contract, side=p.side,
                             size=p.size, owner=owner, avg_price=p.avg_price,
                             realized_pnl=p.realized_pnl, open_pnl=p.open_pnl,
                             vt=net.vt if net else None)

    def account_msg(self) -> AccountEvent:
        b = self.blotter.book
        open_pnl = b.open_pnl()
        return AccountEvent(account=self.account, name=self.blotter.account_name,
                            balance=b.balance, can_trade=b.can_trade,
                            equity=round(b.balance + open_pnl, 2), realized_pnl=b.realized(),
                            open_pnl=open_pnl, vt=self.clock.now_ms())

    def positions_and_account(self) -> None:
        """Every GATEWAY_PUBLISH_INTERVAL: held positions and those that changed; the account
        when it changed, at most 4 times a real second, every 5 s unchanged."""
        book = self.blotter.book
        due = set(self.due)
        self.due.clear()
        due |= {(ACCOUNT, c) for c in book.held()}
        due |= {(o, c) for (o, c), n in book.owners.items() if n.qty}
        for owner, contract in sorted(due):
            self.bus.publish(topics.position_event(self.account, owner),
                             self.position_msg(contract, owner))
        msg = self.account_msg()
        self.account_out.send((msg.balance, msg.equity, msg.realized_pnl, msg.open_pnl,
                               msg.can_trade, msg.name),
                              lambda: self.bus.publish(topics.account_event(self.account), msg))

    def risk_msg(self, event: str, reason: str, rule: str | None, owner: str | None = None,
                 client_id: str | None = None, refusal_id: str | None = None,
                 order: dict[str, Any] | None = None) -> RiskEvent:
        view = self.blotter.view(self.clock.now_ms())
        g = self.gate
        figures = dict(g.last_figures) if event == "reject" else {}
        figures.update(lots_allowed=g.max_lots(), day_pnl=round(g.day_pnl(view), 2))
        return RiskEvent(
            account=self.account, event=event, state=self.blotter.trading_state, reason=reason,
            rule=rule, owner=owner, client_id=client_id, floor=g.floor(),
            equity=round(g.equity(view), 2), figures=figures, refusal_id=refusal_id,
            order=order)

    def risk_event(self, event: str, reason: str, rule: str | None,
                   owner: str | None = None) -> None:
        """A change of trading state or an action of the gate."""
        self.bus.publish(topics.risk_event(self.account), self.risk_msg(event, reason, rule,
                                                                        owner))

    async def refusal(self, reason: str, rule: str | None, owner: str, client_id: str | None,
                      order: dict[str, Any]) -> None:
        """A refusal of the gate: published, and journaled as that very event before its
        sender is answered, so the day's refusals outlive a restart of the page or of the
        gateway, even a SIGKILL (the `refusals` command). The id is this instance's and a
        count: unique across restarts."""
        self.refusals += 1
        msg = self.risk_msg("reject", reason, rule, owner, client_id,
                            f"{self.bus.instance}:{self.refusals}", order)
        self.bus.publish(topics.risk_event(self.account), msg)
        await self.journal.add_refusal(msg, self.clock.now_ms())

    def alarm(self, code: str, active: bool, text: str) -> None:
        """Raise or clear one of the gateway's alarms, published every time it is called."""
        (log.warning if active else log.info)("alarm %s: %s", code, text)
        # Carried in every heartbeat while active (Service.alarms): `chillly status`, which
        # listens for a few seconds only, sees an alarm raised before it started.
        if active:
            self.alarms[code] = text
        else:
            self.alarms.pop(code, None)
        self.bus.publish(topics.alarm(self.name), Alarm(
            name=self.name, code=code, active=active, text=text))


class ChangeThrottle:
    """Publish a message when its content changes, at most every `min_gap_s` real seconds,
    and again every `refresh_s` even unchanged (late subscribers, the page, `tap`). Real
    seconds, not market ones: the rate a reader can follow does not speed up with the market
    clock (the account message went out 57 times a second at CLOCK_SPEED=60)."""

    def __init__(self, min_gap_s: float = 0.25, refresh_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s = min_gap_s
        self.refresh_s = refresh_s
        self.clock = clock
        self.last_key: Hashable = object()
        self.last_at = float("-inf")

    def send(self, key: Hashable, publish: Callable[[], None]) -> bool:
        """Call `publish` if content `key` should go out now; True if it did.

        The gap is measured from the end of the last `publish`, not from its check: the bus
        stamps a message's time inside `publish`, so a process descheduled between the check
        and the stamp (a loaded machine) would otherwise send two stamps closer than
        `min_gap_s` (test_gateway_account_rate judges the stamps)."""
        now = self.clock()
        since = now - self.last_at
        if since < self.min_gap_s or (key == self.last_key and since < self.refresh_s):
            return False
        publish()
        self.last_key, self.last_at = key, self.clock()
        return True
