"""The orders that reduce risk: cancel one, cancel many at once, and flatten (the gateway's own
market orders, one per owner's share). Used by the commands and by the risk gate's actions."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.gate import BUY, SELL
from gateway.orders import TERMINAL
from gateway.state import GatewayState
from topstepx.errors import ApiError, OutcomeUnknown

log = logging.getLogger("gateway")


class Closing(GatewayState):
    """Cancels and flattens."""

    async def _cancel(self, row: dict[str, Any]) -> dict[str, Any]:
        oid = row["order_id"]
        self.counters["cancels"] += 1
        if row["state"] in TERMINAL:
            return {"status": "rejected", "order_id": oid,
                    "message": f"order {oid} is already {row['state']}"}
        try:
            await self.client.cancel_order(self.account.id, oid)
        except ApiError as exc:
            return {"status": "rejected", "order_id": oid, "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self._safe_reconcile())
            return {"status": "unknown", "order_id": oid, "message": str(exc)}
        return {"status": "cancelled", "order_id": oid, "message": f"order {oid} cancelled"}

    async def _cancel_many(self, rows: list[dict[str, Any]]) -> dict[str, Any]:
        done: list[int] = []
        failed: list[int] = []
        # All at once: a flatten at the loss limit must not wait on each cancel in turn.
        for row, out in zip(rows, await asyncio.gather(*(self._cancel(r) for r in rows))):
            (done if out["status"] in ("cancelled", "unknown") else failed).append(
                row["order_id"])
        return {"status": "done" if not failed else "partial", "cancelled": done,
                "failed": failed, "message": f"{len(done)} cancelled"
                + (f", {len(failed)} failed" if failed else "")}

    async def flatten(self, contract: str | None, owner: str | None = None) -> dict[str, Any]:
        """Cancel the working orders (legs included), then close the position(s) with the
        gateway's own market orders, one per owner's share (so every fill stays attributed);
        whatever the venue holds beyond the owners' shares is closed as "manual". With an
        owner: only its orders and its share. Flattening reduces risk by construction, so these
        orders do not pass the gate (the gate's own Flatten action uses this)."""
        cancelled = await self._cancel_many(self._working(contract, owner))
        targets: list[tuple[str, str, int]] = []
        contracts = {c for (o, c), n in self.book.owners.items() if n.qty} | self.book.held()
        for c in sorted(contracts):
            if contract is not None and c != contract:
                continue
            shares = {o: n.qty for (o, cc), n in self.book.owners.items() if cc == c and n.qty}
            if owner is not None:
                if shares.get(owner):
                    targets.append((owner, c, shares[owner]))
                continue
            net = self.book.venue.get(c)
            residual = (net.qty if net else 0) - sum(shares.values())
            if residual:
                shares["manual"] = shares.get("manual", 0) + residual
            targets += [(o, c, q) for o, q in sorted(shares.items()) if q]
        placed: list[int] = []
        problems: list[str] = []
        recs = []
        for o, c, qty in targets:
            self._flat_n += 1
            cid = f"{o}-flat-{self.clock.now_ms()}-{self._flat_n}"
            recs.append(self._new_intent(cid, o, c, SELL if qty > 0 else BUY, abs(qty),
                                         "market"))
        replies = await asyncio.gather(*(self._send(rec, None) for rec in recs))
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
