"""The orders that reduce risk: cancel one, cancel many at once, and flatten (the gateway's own
market orders, one per owner's share; on an account that cannot cancel, the position's own
brackets fired through the market), used by the commands and by the risk gate's actions."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from chillly.clock import Clock
from gateway.placing import Placer
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError, OutcomeUnknown, VenueError
from trading.blotter import Blotter
from trading.marks import QuoteView
from trading.orders.leg_close import LegFire, plan_close
from trading.orders.records import OrderRecord
from trading.venue_codes import CLOSE_IMPOSSIBLE, OrderType, Side

log = logging.getLogger("gateway")


class Closer:
    """Cancels and flattens. `reconcile` is run when a cancel's outcome is unknown."""

    def __init__(self, client: ProjectXClient, blotter: Blotter, placer: Placer, clock: Clock,
                 counters: dict[str, int],
                 reconcile: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.client, self.blotter, self.placer, self.clock = client, blotter, placer, clock
        self.counters, self.reconcile = counters, reconcile
        self._flat_n = 0
        self._flatten_lock = asyncio.Lock()
        #: orders a flatten of an account that cannot cancel had to leave working
        self._stranded: set[int] = set()
        #: leg -> how often the venue refused to move it through the market (the bracket's
        #: other leg is fired next: trading/orders/leg_close.py `_pick`)
        self._unmovable: dict[int, int] = {}
        #: the last trade price of a contract (GateRunner.last_price), to fire legs through
        self.last_price: Callable[[str], Coroutine[Any, Any, float | None]] | None = None

    async def cancel(self, row: OrderRecord) -> dict[str, Any]:
        oid = row.order_id
        self.counters["cancels"] += 1
        if row.terminal:
            return {"status": "rejected", "order_id": oid,
                    "message": f"order {oid} is already {row.state}"}
        try:
            await self.client.cancel_order(self.blotter.account_id, oid)
        except ApiError as exc:
            if self.blotter.cancel_refused(exc.code):
                self.placer.venue.cannot_cancel(f"Order/cancel: {exc.message or exc.code}")
            return {"status": "rejected", "order_id": oid, "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self.reconcile())
            return {"status": "unknown", "order_id": oid, "message": str(exc)}
        return {"status": "cancelled", "order_id": oid, "message": f"order {oid} cancelled"}

    async def cancel_many(self, rows: list[OrderRecord]) -> dict[str, Any]:
        done: list[int] = []
        failed: list[int] = []
        unknown: list[int] = []
        # All at once: a flatten at the loss limit must not wait on each cancel in turn.
        for row, out in zip(rows, await asyncio.gather(*(self.cancel(r) for r in rows))):
            (done if out["status"] in ("cancelled", "unknown") else failed).append(row.order_id)
            if out["status"] == "unknown":
                unknown.append(row.order_id)
        # A bracket leg whose entry was cancelled in this batch goes with it at the venue, so
        # its own cancel may find it gone: cancelled, not failed.
        parent = {r.order_id: r.parent_id for r in rows}
        with_entry = [oid for oid in failed if parent.get(oid) in done]
        failed = [oid for oid in failed if oid not in with_entry]
        done += with_entry
        return {"status": "done" if not failed else "partial", "cancelled": done,
                "failed": failed, "unknown": unknown, "message": f"{len(done)} cancelled"
                + (f" ({len(with_entry)} with their entry)" if with_entry else "")
                + (f", {len(failed)} failed" if failed else "")}

    async def flatten(self, contract: str | None, owner: str | None = None) -> dict[str, Any]:
        """Close the position(s) with the gateway's own market orders, one per owner's share
        (so every fill stays attributed); whatever the venue holds beyond the owners' shares is
        closed as "manual". With an owner: only its orders and its share. Flattening reduces
        risk by construction, so these orders do not pass the gate (the gate's own Flatten
        action uses this).

        One flatten at a time (the gate's, a strategy's and the trader's queue here), so a
        second one sizes from what the first left: `Blotter.closing_shares` counts the closes
        already on their way and never sends more than the net. In order: cancel the entries
        (orders without a parent) and wait for the venue's answers; if any failed or had no
        clear answer, read the venue back before sizing; send the closes; and only once every
        close was accepted cancel the protective legs: a close the venue refuses because no
        order can pass now (the market shut, the account locked: `CLOSE_IMPOSSIBLE`) leaves
        the position with its stop and target, never naked. Refused for another reason (the
        venue's maximum position counting the legs beside the close), the legs are cancelled
        and the close sent once more, sized again."""
        async with self._flatten_lock:
            if not self.blotter.book.can_cancel:
                return await self._flatten_through_legs(contract, owner)
            working = self.blotter.working(contract, owner)
            cancelled = await self.cancel_many([r for r in working if r.parent_id is None])
            if not self.blotter.book.can_cancel:
                # learnt just now from the venue's refusal (a follower account): the legs
                # cannot be cancelled after the close either
                return await self._flatten_through_legs(contract, owner)
            if cancelled["failed"] or cancelled["unknown"]:
                self.counters["flatten_rereads"] += 1
                try:
                    await self.reconcile()
                except VenueError as exc:
                    log.warning("flatten: the read after a failed cancel failed: %s", exc)
            placed, problems, codes = await self._close(
                    self.blotter.closing_shares(contract, owner))
            legs: dict[str, Any] = {"cancelled": [], "failed": []}
            protective = [r for r in self.blotter.working(contract, owner)
                          if r.parent_id is not None]
            if problems and protective and not codes & CLOSE_IMPOSSIBLE:
                # Refused for another reason (the venue's maximum position counts the legs
                # beside the close): the legs go first, then the close once more.
                legs = await self.cancel_many(protective)
                more, problems, codes = await self._close(
                    self.blotter.closing_shares(contract, owner))
                placed += more
            elif not problems:
                legs = await self.cancel_many(protective)
            if problems:
                self.counters["flatten_refused"] += 1
            if legs["failed"] and not self.blotter.book.can_cancel:
                self.strand(legs["failed"])     # a follower, learnt from these refusals
            kept = protective if problems and not legs["cancelled"] else []
            done = cancelled["cancelled"] + legs["cancelled"]
            return {"status": "done" if not problems else "partial",
                    "orders": placed, "cancelled": done, "problems": problems,
                    "message": f"cancelled {len(done)}, {len(placed)} closing orders"
                    + (f"; problems: {'; '.join(problems)}" if problems else "")
                    + (f"; {len(kept)} protective orders kept" if kept else "")}

    async def _flatten_through_legs(self, contract: str | None,
                                    owner: str | None) -> dict[str, Any]:
        """The flatten of an account whose orders the venue will not cancel (a live or
        follower account): each bracket of the position is fired through the market with
        `Order/modify` (the venue's OCO drops its sibling), only lots no leg covers are closed
        by market order, and no cancel is sent (trading/orders/leg_close.py decides). What
        stays working beyond the position (`stranded`) is named in alarm `orders_stranded`."""
        b = self.blotter
        scope = b.working(contract, owner)
        legs = [r for r in scope if r.parent_id is not None]
        # a venue child of an entry the gateway does not manage is the venue's OCO bracket
        parents = {r.parent_id: b.orders.get(r.parent_id) for r in legs
                   if r.parent_id is not None}
        native = {pid: p is None or not p.managed for pid, p in parents.items()}
        ticks = {c: spec.tick_size for c, spec in b.book.specs.items()}
        quotes = b.book.marks()
        for c in {r.contract for r in legs}:      # a fresh price to fire them through
            px = await self.last_price(c) if self.last_price is not None else None
            if px is not None:
                quotes[c] = QuoteView(c, None, None, px, self.clock.now_ms())
        plan = plan_close(b.closing_shares(contract, owner), legs, native, quotes, ticks,
                          self._unmovable)
        fired = await asyncio.gather(*(self._fire(f) for f in plan.fires))
        placed, refused, _codes = await self._close(list(plan.market))
        problems = [*plan.problems, *(p for p in fired if p), *refused]
        stranded = [*plan.stranded, *(r.order_id for r in scope if r.parent_id is None
                                      and r.order_type != OrderType.MARKET)]
        if stranded:
            self.strand(stranded)
        if problems:
            self.counters["flatten_refused"] += 1
        moved = [f.order_id for f, p in zip(plan.fires, fired) if p is None]
        return {"status": "done" if not problems else "partial", "orders": placed,
                "cancelled": [], "fired": moved, "stranded": stranded, "problems": problems,
                "message": f"{len(moved)} brackets fired through the market, {len(placed)} "
                "closing orders (this account cannot cancel)"
                + (f"; problems: {'; '.join(problems)}" if problems else "")
                + (f"; {len(stranded)} orders left working at the venue: {stranded}"
                   if stranded else "")}

    async def _fire(self, f: LegFire) -> str | None:
        """Move one leg through the market (its size to the lots it closes): None, or why not."""
        self.counters["flatten_fired"] += 1
        try:
            await self.client.modify_order(self.blotter.account_id, f.order_id, size=f.size,
                                           **{f.field: f.price})
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self.reconcile())
            return f"{f.owner} {f.contract}: order {f.order_id}: no clear answer ({exc.why})"
        except ApiError as exc:
            # A clear refusal (the venue may not take a stop beyond the market): the next
            # flatten, on fresh reports, fires the bracket's other leg instead. Never at once:
            # a stop that has just filled is refused too, and its target is then cancelled.
            self._unmovable[f.order_id] = self._unmovable.get(f.order_id, 0) + 1
            return (f"{f.owner} {f.contract}: order {f.order_id} not moved through the market: "
                    f"{exc}")
        except VenueError as exc:
            return (f"{f.owner} {f.contract}: order {f.order_id} not moved through the market: "
                    f"{exc}")
        return None

    def strand(self, order_ids: list[int]) -> None:
        """Orders a flatten left working that it could not withdraw: one alarm naming them
        until none of them can fill any more (`check_stranded`)."""
        new = set(order_ids) - self._stranded
        self._stranded |= set(order_ids)
        if new:
            self.counters["orders_stranded"] += len(new)
            self._stranded_alarm()

    def check_stranded(self) -> None:
        """Called every publish interval: clears the alarm once every stranded order is done
        (filled, or cancelled on the venue's platform)."""
        if not self._stranded:
            return
        left = {o for o in self._stranded
                if o in self.blotter.orders and not self.blotter.orders[o].terminal}
        if left != self._stranded:
            self._stranded = left
            self._stranded_alarm()

    def _stranded_alarm(self) -> None:
        ids = sorted(self._stranded)
        self.placer.publisher.alarm("orders_stranded", bool(ids), (
            f"orders {ids} are working at the venue beyond the position and this account "
            "cannot cancel them through the API: cancel them on the venue's platform, or one "
            "may fill and open a position") if ids else "no stranded order is left working")

    async def _close(self, targets: list[tuple[str, str, int]]
                     ) -> tuple[list[int], list[str], set[int]]:
        """The closing market orders of `targets` (owner, contract, signed qty; sized just
        before, `Blotter.closing_shares`): the order ids placed, the problems, and the venue's
        error codes of the refusals."""
        recs = []
        for o, c, qty in targets:
            self._flat_n += 1
            now = self.clock.now_ms()
            recs.append(self.blotter.new_intent(
                f"{o}-flat-{now}-{self._flat_n}", o, c, Side.SELL if qty > 0 else Side.BUY,
                abs(qty), "market", now))
        replies = await asyncio.gather(*(self.placer.send(rec, None) for rec in recs))
        placed: list[int] = []
        problems: list[str] = []
        codes: set[int] = set()
        for (o, c, _qty), reply in zip(targets, replies):
            if reply["status"] == "accepted":
                placed.append(reply["order_id"])
            else:
                problems.append(f"{o} {c}: {reply['status']}: {reply['message']}")
                if isinstance(reply.get("code"), int):
                    codes.add(reply["code"])
        return placed, problems, codes
