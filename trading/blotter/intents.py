"""The intent ledger: a client id claimed once, an intent judged by the gate and counted as
working until the venue's order exists, journaled, then tied to the venue's order id.
"""

from __future__ import annotations

from trading.risk.types import Intent
from trading.orders.requests import VENUE_TYPE
from trading.orders.records import IntentRecord, OrderRecord
from trading.blotter.state import BlotterState


class IntentLedger(BlotterState):
    """The order path from a submit to the venue's order id."""

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
