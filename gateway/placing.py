"""The orders the gateway sends. Placing one exactly once (docs/gateway.md, "Exactly once"):
journal the intent, send it once, record the venue's clear answer, and resolve an unclear one
by its customTag (adopt the order found, or record it not placed after GATEWAY_UNKNOWN_WAIT);
nothing here ever resends. The orders that reduce risk (cancel, flatten) are gateway/closing.py."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

from chillly.clock import Clock
from gateway.journal import Journal
from gateway.publishing import Publisher
from gateway.venue_events import VenueEvents
from topstepx.client import ProjectXClient
from topstepx.errors import ApiError, OutcomeUnknown, VenueError
from trading.blotter import Blotter
from trading.orders.records import NOT_PLACED, PLACED, REJECTED, SENDING, IntentRecord
from trading.venue_codes import OrderStatus, Side
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
                why = self.blotter.bracket_refusal(True, True)
                if why is None:
                    return await self._retry_managed(rec, trail_price, msg)
                self._resolve_soon(rec, REJECTED, None, exc.code, msg)
                return self.rejected(cid, "cannot_cancel", f"{msg} ({why})", "rejected_invalid",
                                     code=exc.code)
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
            mark = self.blotter.read_started()
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
                await self.venue.apply_order(order, "rest", read_mark=mark)
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
