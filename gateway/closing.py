"""The orders that reduce risk: cancel one, cancel many at once, and flatten (the gateway's own
market orders, one per owner's share). Used by the commands and by the risk gate's actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from chillly.clock import Clock
from gateway.placing import Placer
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError, OutcomeUnknown
from gateway.blotter import Blotter
from trading.orders.records import OrderRecord
from trading.venue_codes import Side

log = logging.getLogger("gateway")


class Closer:
    """Cancels and flattens. `reconcile` is run when a cancel's outcome is unknown."""

    def __init__(self, client: ProjectXClient, blotter: Blotter, placer: Placer, clock: Clock,
                 counters: dict[str, int],
                 reconcile: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.client, self.blotter, self.placer, self.clock = client, blotter, placer, clock
        self.counters, self.reconcile = counters, reconcile
        self._flat_n = 0

    async def cancel(self, row: OrderRecord) -> dict[str, Any]:
        oid = row.order_id
        self.counters["cancels"] += 1
        if row.terminal:
            return {"status": "rejected", "order_id": oid,
                    "message": f"order {oid} is already {row.state}"}
        try:
            await self.client.cancel_order(self.blotter.account_id, oid)
        except ApiError as exc:
            return {"status": "rejected", "order_id": oid, "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self.reconcile())
            return {"status": "unknown", "order_id": oid, "message": str(exc)}
        return {"status": "cancelled", "order_id": oid, "message": f"order {oid} cancelled"}

    async def cancel_many(self, rows: list[OrderRecord]) -> dict[str, Any]:
        done: list[int] = []
        failed: list[int] = []
        # All at once: a flatten at the loss limit must not wait on each cancel in turn.
        for row, out in zip(rows, await asyncio.gather(*(self.cancel(r) for r in rows))):
            (done if out["status"] in ("cancelled", "unknown") else failed).append(row.order_id)
        # A bracket leg whose entry was cancelled in this batch goes with it at the venue, so
        # its own cancel may find it gone: cancelled, not failed.
        parent = {r.order_id: r.parent_id for r in rows}
        with_entry = [oid for oid in failed if parent.get(oid) in done]
        failed = [oid for oid in failed if oid not in with_entry]
        done += with_entry
        return {"status": "done" if not failed else "partial", "cancelled": done,
                "failed": failed, "message": f"{len(done)} cancelled"
                + (f" ({len(with_entry)} with their entry)" if with_entry else "")
                + (f", {len(failed)} failed" if failed else "")}

    async def flatten(self, contract: str | None, owner: str | None = None) -> dict[str, Any]:
        """Cancel the working orders (legs included), then close the position(s) with the
        gateway's own market orders, one per owner's share (so every fill stays attributed);
        whatever the venue holds beyond the owners' shares is closed as "manual". With an
        owner: only its orders and its share. Flattening reduces risk by construction, so these
        orders do not pass the gate (the gate's own Flatten action uses this)."""
        cancelled = await self.cancel_many(self.blotter.working(contract, owner))
        targets = self.blotter.book.closing_shares(contract, owner)
        placed: list[int] = []
        problems: list[str] = []
        recs = []
        for o, c, qty in targets:
            self._flat_n += 1
            now = self.clock.now_ms()
            recs.append(self.blotter.new_intent(
                f"{o}-flat-{now}-{self._flat_n}", o, c, Side.SELL if qty > 0 else Side.BUY,
                abs(qty), "market", now))
        replies = await asyncio.gather(*(self.placer.send(rec, None) for rec in recs))
        for (o, c, qty), reply in zip(targets, replies):
            if reply["status"] == "accepted":
                placed.append(reply["order_id"])
            else:
                problems.append(f"{o} {c}: {reply['status']}: {reply['message']}")
        return {"status": "done" if not problems else "partial",
                "orders": placed, "cancelled": cancelled["cancelled"], "problems": problems,
                "message": f"cancelled {len(cancelled['cancelled'])}, "
                           f"{len(placed)} closing orders"
                + (f"; problems: {'; '.join(problems)}" if problems else "")}
