"""Placing an order exactly once (docs/gateway.md, "Exactly once"): journal the intent, send
it once, record the venue's clear answer, and resolve an unclear one by its customTag (adopt the
order found, or record it not placed after GATEWAY_UNKNOWN_WAIT). Nothing here ever resends."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from typing import Any

from gateway import journal as J
from gateway.requests import VENUE_TYPE, venue_brackets
from gateway.state import SEARCH_MARGIN_MS, GatewayState
from topstepx.errors import ApiError, OutcomeUnknown, VenueError

log = logging.getLogger("gateway")

POSITION_BRACKETS = "position brackets"   # the venue's refusal text (errorCode 2), lower case


class Placing(GatewayState):
    """Sends journaled intents to the venue and resolves every outcome."""

    def _rejected(self, cid: Any, rule: str, message: str, counter: str,
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

    async def _send(self, rec: dict[str, Any], trail_price: float | None) -> dict[str, Any]:
        """Journal the intent, then place it once. Never resends; an unclear answer is
        resolved by customTag (`_resolve`)."""
        cid = rec["client_id"]
        managed = bool(rec["sl_ticks"] or rec["tp_ticks"]) and self.position_brackets
        rec["managed"] = int(managed)
        try:
            await self.journal.add_intent(rec)
        except sqlite3.IntegrityError:
            return self._rejected(cid, "duplicate", f"client id {cid} was already used",
                                  "rejected_duplicate")
        except sqlite3.Error as exc:  # a full or broken disk: nothing may be sent unjournaled
            self._alarm("journal", True, f"cannot write the journal: {exc}")
            return self._rejected(cid, "journal", f"the journal cannot be written ({exc}); "
                                  "nothing was sent", "rejected_invalid")
        self.intents[cid] = rec
        self.by_tag[rec["custom_tag"]] = cid
        sl, tp = (None, None) if managed else venue_brackets(rec["side"], rec["sl_ticks"],
                                                             rec["tp_ticks"])
        try:
            order_id = await self.client.place_order(
                self.account.id, rec["contract"], VENUE_TYPE[rec["order_type"]], rec["side"],
                rec["size"], limit_price=rec["limit_price"], stop_price=rec["stop_price"],
                trail_price=trail_price, custom_tag=rec["custom_tag"],
                stop_loss_bracket=sl, take_profit_bracket=tp)
        except ApiError as exc:
            vid = exc.payload.get("orderId") if isinstance(exc.payload, dict) else None
            msg = exc.message or f"errorCode {exc.code}"
            if (exc.code == 2 and POSITION_BRACKETS in msg.lower() and not managed
                    and rec["parent_id"] is None):
                return await self._retry_managed(rec, trail_price, msg)
            self._resolve_soon(rec, J.REJECTED, None, exc.code, msg)
            return self._rejected(cid, "venue", msg, "rejected_venue", code=exc.code,
                                  order_id=vid if isinstance(vid, int) else None)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            log.warning("%s: %s", cid, exc)
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        except VenueError as exc:  # refused before acting (HTTP 400 etc.): not placed
            self._resolve_soon(rec, J.NOT_PLACED, None, None, str(exc))
            return self._rejected(cid, "venue", str(exc), "rejected_venue")
        return self._accepted(rec, order_id, managed, f"order {order_id} accepted")

    async def _retry_managed(self, rec: dict[str, Any], trail_price: float | None,
                             why: str) -> dict[str, Any]:
        """The account is in Position Brackets mode: the venue refused the bracketed order
        outright (a clear answer, nothing is working), so place the entry alone under a new tag
        and protect it ourselves when it fills."""
        log.warning("venue refuses brackets (%s): the gateway manages the OCO from now on", why)
        self.position_brackets = True
        await self._resolve_as(rec, J.REJECTED, None, 2, why)
        rec = dict(rec, custom_tag=f"{rec['client_id']}-E", status=J.SENDING, code=None,
                   message=None, created_ms=self.clock.now_ms())
        rec["managed"] = 1
        await self.journal.retag_intent(rec["client_id"], rec["custom_tag"], rec["created_ms"])
        self.intents[rec["client_id"]] = rec
        self.by_tag[rec["custom_tag"]] = rec["client_id"]
        return await self._send_again_managed(rec, trail_price)

    async def _send_again_managed(self, rec: dict[str, Any],
                                  trail_price: float | None) -> dict[str, Any]:
        cid = rec["client_id"]
        try:
            order_id = await self.client.place_order(
                self.account.id, rec["contract"], VENUE_TYPE[rec["order_type"]], rec["side"],
                rec["size"], limit_price=rec["limit_price"], stop_price=rec["stop_price"],
                trail_price=trail_price, custom_tag=rec["custom_tag"])
        except ApiError as exc:
            msg = exc.message or f"errorCode {exc.code}"
            self._resolve_soon(rec, J.REJECTED, None, exc.code, msg)
            return self._rejected(cid, "venue", msg, "rejected_venue", code=exc.code)
        except OutcomeUnknown as exc:
            self.counters["unknown_outcomes"] += 1
            self._spawn_resolve(rec)
            return {"status": "unknown", "client_id": cid,
                    "message": f"no clear answer from the venue ({exc.why}): being reconciled"}
        return self._accepted(rec, order_id, True,
                              f"order {order_id} accepted (brackets managed by the gateway)")

    def _accepted(self, rec: dict[str, Any], order_id: int, managed: bool,
                  message: str) -> dict[str, Any]:
        """The venue placed it: journal the outcome (unless a hub event settled it first),
        note the order and answer."""
        if rec["status"] == J.SENDING:
            self._resolve_soon(rec, J.PLACED, order_id)
        self._note_placed(rec, order_id, managed)
        self.counters["accepted"] += 1
        return {"status": "accepted", "client_id": rec["client_id"], "order_id": order_id,
                "message": message}

    def _note_placed(self, rec: dict[str, Any], order_id: int, managed: bool) -> None:
        if order_id not in self.orders:
            self._store_order(self._row_from_intent(rec, order_id))
        if managed:
            self.orders[order_id]["managed"] = True

    def _resolve_soon(self, rec: dict[str, Any], status: str, order_id: int | None,
                      code: int | None = None, message: str | None = None) -> None:
        """Record a clear venue answer: in memory now, in the journal without holding up the
        reply (a crash before that commit leaves the intent `sending`, which the restart
        resolves by customTag: the same outcome)."""
        rec.update(status=status, order_id=order_id or rec.get("order_id"), code=code,
                   message=message, resolved_ms=self.clock.now_ms())
        self.journal.write_soon(self.journal.resolve_job(
            rec["client_id"], status, rec["resolved_ms"], order_id, code, message))

    async def _resolve_as(self, rec: dict[str, Any], status: str, order_id: int | None,
                          code: int | None = None, message: str | None = None) -> None:
        rec.update(status=status, order_id=order_id or rec.get("order_id"), code=code,
                   message=message, resolved_ms=self.clock.now_ms())
        await self.journal.resolve_intent(rec["client_id"], status, rec["resolved_ms"],
                                          order_id, code, message)

    def _spawn_resolve(self, rec: dict[str, Any]) -> None:
        cid = rec["client_id"]
        if cid not in self._resolving:
            task = asyncio.ensure_future(self._resolve(rec))
            self._resolving[cid] = task
            task.add_done_callback(lambda _t: self._resolving.pop(cid, None))

    async def _resolve(self, rec: dict[str, Any], since_restart: bool = False) -> None:
        """Find an intent whose outcome is unknown by its customTag and adopt the order, or
        after GATEWAY_UNKNOWN_WAIT real seconds record it as not placed. Never sends."""
        deadline = time.monotonic() + self.s.gateway_unknown_wait
        tag = rec["custom_tag"]
        while rec["status"] == J.SENDING:
            try:
                found = [o for o in await self.client.search_orders(
                    self.account.id, rec["created_ms"] - SEARCH_MARGIN_MS)
                    if o.custom_tag == tag]
            except VenueError as exc:
                log.warning("%s: search by tag failed (%s); retrying", rec["client_id"], exc)
                found = []
            if found:
                order = found[0]
                if order.status == 5:
                    await self._resolve_as(rec, J.REJECTED, order.id, None,
                                           "rejected by the venue (found by customTag)")
                else:
                    await self._resolve_as(rec, J.PLACED, order.id)
                    self._note_placed(rec, order.id, bool(rec.get("managed")))
                self.counters["adopted_unknown"] += 1
                log.info("%s: found at the venue as order %d (status %s)", rec["client_id"],
                         order.id, order.status)
                await self._apply_order(order, "rest")
                return
            if time.monotonic() >= deadline:
                await self._resolve_as(rec, J.NOT_PLACED, None, None,
                                       "not found at the venue by customTag")
                self.counters["not_placed"] += 1
                log.warning("%s: not placed (no order with tag %s after %.0fs)",
                            rec["client_id"], tag, self.s.gateway_unknown_wait)
                return
            await asyncio.sleep(0.5)
