"""Order reports: the venue's reports of each order through the state machine
(trading/orders/machine.py), with the owner found from the order's tag or parent, fills
counted as not yet in a position, and fills taken before their order was known reattributed.
"""

from __future__ import annotations

from dataclasses import replace

from trading.orders.records import EXTERNAL, NOT_PLACED, SENDING, FillRecord
from trading.venue_codes import OrderStatus
from trading.blotter.reports import OrderChange, OrderReport
from trading.blotter.state import BlotterState, Unposted


class OrderReports(BlotterState):
    """The venue's order reports applied."""

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
            mine[order.order_id] = Unposted(order.side, (before.qty if before else 0) + grew,
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
