"""The orders the gateway sends. Placing one exactly once (docs/gateway.md, "Exactly once"):
journal the intent, send it once, record the venue's clear answer, and resolve an unclear one
by its customTag (adopt the order found, or record it not placed after GATEWAY_UNKNOWN_WAIT);
nothing here ever resends (`Placer`). And the orders that reduce risk (`Closer`): cancel one,
cancel many at once, and flatten (the gateway's own market orders, one per owner's share),
used by the commands and by the risk gate's actions."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Coroutine
from typing import Any

from chillly.clock import Clock
from gateway.journal import Journal
from gateway.publishing import Publisher
from gateway.venue_events import VenueEvents
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError, OutcomeUnknown, VenueError
from trading.blotter import Blotter
from trading.orders.records import NOT_PLACED, PLACED, REJECTED, SENDING, IntentRecord, OrderRecord
from trading.venue_codes import CLOSE_IMPOSSIBLE, OrderStatus, Side
from trading.orders.requests import VENUE_TYPE, venue_brackets

log = logging.getLogger("gateway")

POSITION_BRACKETS = "position brackets"   # the venue's refusal text (errorCode 2), lower case
#: Clock skew margin when searching the venue's orders by time.
SEARCH_MARGIN_MS = 5 * 60_000


class Placer:
    """Sends journaled intents to the venue and resolves every outcome."""

    def __init__(self, client: ProjectXClient, journal: Journal, blotter: Blotter,
                 venue: VenueEvents, publisher: Publisher, clock: Clock,
                 counters: dict[str, int], unknown_wait_s: float, managed: bool) -> None:
        self.client, self.journal, self.blotter, self.venue = client, journal, blotter, venue
        self.publisher, self.clock, self.counters = publisher, clock, counters
        self.unknown_wait_s = unknown_wait_s
        #: the gateway manages brackets itself (GATEWAY_BRACKET_MODE=managed, or the venue
        #: refused them: Position Brackets mode)
        self.position_brackets = managed
        #: unknown outcomes being searched for, by client id
        self.resolving: dict[str, asyncio.Task[None]] = {}

    def rejected(self, cid: Any, rule: str, message: str, counter: str,
                 code: int | None = None, order_id: int | None = None) -> dict[str, Any]:
        self.counters["rejected"] += 1
        self.counters[counter] += 1
        log.info("rejected %s: %s (%s)", cid, message, rule)
        out: dict[str, Any] = {"status": "rejected", "client_id": cid, "rule": rule,
                               "message": message}
        if code is not None:
            out["code"] = code
        if order_id is not None:
            out["order_id"] = order_id
        return out

    async def send(self, rec: IntentRecord, trail_price: float | None) -> dict[str, Any]:
        """Journal the intent, then place it once. Never resends; an unclear answer is
        resolved by customTag (`resolve`)."""
        cid = rec.client_id
        managed = bool(rec.sl_ticks or rec.tp_ticks) and self.position_brackets
        rec.managed = managed
        try:
            await self.journal.add_intent(rec)
        except sqlite3.IntegrityError:
            return self.rejected(cid, "duplicate", f"client id {cid} was already used",
                                 "rejected_duplicate")
        except sqlite3.Error as exc:  # a full or broken disk: nothing may be sent unjournaled
            self.publisher.alarm("journal", True, f"cannot write the journal: {exc}")
            return self.rejected(cid, "journal", f"the journal cannot be written ({exc}); "
                                 "nothing was sent", "rejected_invalid")
        self.blotter.add_intent(rec)
        sl, tp = (None, None) if managed else venue_brackets(rec.side, rec.sl_ticks,
                                                             rec.tp_ticks)
        try:
            order_id = await self.client.place_order(
                rec.account, rec.contract, VENUE_TYPE[rec.order_type], Side(rec.side), rec.size,
                limit_price=rec.limit_price, stop_price=rec.stop_price, trail_price=trail_price,
                custom_tag=rec.custom_tag, stop_loss_bracket=sl, take_profit_bracket=tp)
        except ApiError as exc:
            vid = exc.payload.get("orderId") if isinstance(exc.payload, dict) else None
            msg = exc.message or f"errorCode {exc.code}"
            if (exc.code == 2 and POSITION_BRACKETS in msg.lower() and not managed
                    and rec.parent_id is None):
                return await self._retry_managed(rec, trail_price, msg)
            self._resolve_soon(rec, REJECTED, None, exc.code, msg)
            return self.rejected(cid, "venue", msg, "rejected_venue", code=exc.code,
                                 order_id=vid if isinstance(vid, int) else None)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            log.warning("%s: %s", cid, exc)
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        except VenueError as exc:  # refused before acting (HTTP 400 etc.): not placed
            self._resolve_soon(rec, NOT_PLACED, None, None, str(exc))
            return self.rejected(cid, "venue", str(exc), "rejected_venue")
        return self._accepted(rec, order_id, managed, f"order {order_id} accepted")

    async def _retry_managed(self, rec: IntentRecord, trail_price: float | None,
                             why: str) -> dict[str, Any]:
        """The account is in Position Brackets mode: the venue refused the bracketed order
        outright (a clear answer, nothing is working), so place the entry alone under a new tag
        and protect it ourselves when it fills."""
        log.warning("venue refuses brackets (%s): the gateway manages the OCO from now on", why)
        self.position_brackets = True
        rec.resolve(REJECTED, None, 2, why, self.clock.now_ms())
        await self.journal.resolve_intent(rec)
        # the same intent, sent again under a new tag (a new record: the rejected one is done)
        rec = IntentRecord(**{**vars(rec), "custom_tag": f"{rec.client_id}-E",
                              "status": SENDING, "code": None, "message": None,
                              "resolved_ms": None, "created_ms": self.clock.now_ms(),
                              "managed": True})
        await self.journal.retag_intent(rec.client_id, rec.custom_tag, rec.created_ms)
        self.blotter.add_intent(rec)
        return await self._send_again_managed(rec, trail_price)

    async def _send_again_managed(self, rec: IntentRecord,
                                  trail_price: float | None) -> dict[str, Any]:
        cid = rec.client_id
        try:
            order_id = await self.client.place_order(
                rec.account, rec.contract, VENUE_TYPE[rec.order_type], Side(rec.side), rec.size,
                limit_price=rec.limit_price, stop_price=rec.stop_price, trail_price=trail_price,
                custom_tag=rec.custom_tag)
        except ApiError as exc:
            msg = exc.message or f"errorCode {exc.code}"
            self._resolve_soon(rec, REJECTED, None, exc.code, msg)
            return self.rejected(cid, "venue", msg, "rejected_venue", code=exc.code)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        return self._accepted(rec, order_id, True,
                              f"order {order_id} accepted (brackets managed by the gateway)")

    def _accepted(self, rec: IntentRecord, order_id: int, managed: bool,
                  message: str) -> dict[str, Any]:
        """The venue placed it: journal the outcome (unless a hub event settled it first),
        note the order and answer."""
        if rec.status == SENDING:
            self._resolve_soon(rec, PLACED, order_id)
        self.blotter.placed(rec, order_id, managed)
        self.counters["accepted"] += 1
        return {"status": "accepted", "client_id": rec.client_id, "order_id": order_id,
                "message": message}

    def _resolve_soon(self, rec: IntentRecord, status: str, order_id: int | None,
                      code: int | None = None, message: str | None = None) -> None:
        """Record a clear venue answer: in memory now, in the journal without holding up the
        reply (a crash before that commit leaves the intent `sending`, which the restart
        resolves by customTag: the same outcome)."""
        rec.resolve(status, order_id, code, message, self.clock.now_ms())
        self.journal.resolve_soon(rec)

    async def _resolve_as(self, rec: IntentRecord, status: str, order_id: int | None,
                          code: int | None = None, message: str | None = None) -> None:
        rec.resolve(status, order_id, code, message, self.clock.now_ms())
        await self.journal.resolve_intent(rec)

    def _spawn_resolve(self, rec: IntentRecord) -> None:
        cid = rec.client_id
        if cid not in self.resolving:
            task = asyncio.ensure_future(self.resolve(rec))
            self.resolving[cid] = task
            task.add_done_callback(lambda _t: self.resolving.pop(cid, None))

    async def resolve(self, rec: IntentRecord, since_restart: bool = False) -> None:
        """Find an intent whose outcome is unknown by its customTag and adopt the order, or
        after GATEWAY_UNKNOWN_WAIT real seconds record it as not placed. Never sends."""
        deadline = time.monotonic() + self.unknown_wait_s
        tag = rec.custom_tag
        while rec.status == SENDING:
            try:
                found = [o for o in await self.client.search_orders(
                    rec.account, rec.created_ms - SEARCH_MARGIN_MS) if o.custom_tag == tag]
            except VenueError as exc:
                log.warning("%s: search by tag failed (%s); retrying", rec.client_id, exc)
                found = []
            if found:
                order = found[0]
                if order.status == OrderStatus.REJECTED:
                    await self._resolve_as(rec, REJECTED, order.id, None,
                                           "rejected by the venue (found by customTag)")
                else:
                    await self._resolve_as(rec, PLACED, order.id)
                    self.blotter.placed(rec, order.id, rec.managed)
                self.counters["adopted_unknown"] += 1
                log.info("%s: found at the venue as order %d (status %s)", rec.client_id,
                         order.id, order.status)
                await self.venue.apply_order(order, "rest")
                return
            if time.monotonic() >= deadline:
                await self._resolve_as(rec, NOT_PLACED, None, None,
                                       "not found at the venue by customTag")
                self.publisher.not_placed(rec)
                self.counters["not_placed"] += 1
                log.warning("%s: not placed (no order with tag %s after %.0fs)",
                            rec.client_id, tag, self.unknown_wait_s)
                return
            await asyncio.sleep(0.5)


class Closer:
    """Cancels and flattens. `reconcile` is run when a cancel's outcome is unknown."""

    def __init__(self, client: ProjectXClient, blotter: Blotter, placer: Placer, clock: Clock,
                 counters: dict[str, int],
                 reconcile: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self.client, self.blotter, self.placer, self.clock = client, blotter, placer, clock
        self.counters, self.reconcile = counters, reconcile
        self._flat_n = 0
        self._flatten_lock = asyncio.Lock()

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
            working = self.blotter.working(contract, owner)
            cancelled = await self.cancel_many([r for r in working if r.parent_id is None])
            if cancelled["failed"] or cancelled["unknown"]:
                self.counters["flatten_rereads"] += 1
                try:
                    await self.reconcile()
                except VenueError as exc:
                    log.warning("flatten: the read after a failed cancel failed: %s", exc)
            placed, problems, codes = await self._close(contract, owner)
            legs: dict[str, Any] = {"cancelled": [], "failed": []}
            protective = [r for r in self.blotter.working(contract, owner)
                          if r.parent_id is not None]
            if problems and protective and not codes & CLOSE_IMPOSSIBLE:
                # Refused for another reason (the venue's maximum position counts the legs
                # beside the close): the legs go first, then the close once more.
                legs = await self.cancel_many(protective)
                more, problems, codes = await self._close(contract, owner)
                placed += more
            elif not problems:
                legs = await self.cancel_many(protective)
            if problems:
                self.counters["flatten_refused"] += 1
            kept = protective if problems and not legs["cancelled"] else []
            done = cancelled["cancelled"] + legs["cancelled"]
            return {"status": "done" if not problems else "partial",
                    "orders": placed, "cancelled": done, "problems": problems,
                    "message": f"cancelled {len(done)}, {len(placed)} closing orders"
                    + (f"; problems: {'; '.join(problems)}" if problems else "")
                    + (f"; {len(kept)} protective orders kept" if kept else "")}

    async def _close(self, contract: str | None, owner: str | None
                     ) -> tuple[list[int], list[str], set[int]]:
        """The closing market orders, sized now (`Blotter.closing_shares`): the order ids
        placed, the problems, and the venue's error codes of the refusals."""
        targets = self.blotter.closing_shares(contract, owner)
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
