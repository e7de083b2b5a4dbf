"""Managed brackets (GATEWAY_BRACKET_MODE=managed, or an account in Position Brackets mode):
the gateway places the stop-loss and take-profit of a filled entry itself and keeps them one
cancels the other; the `unprotected` alarm while a filled entry lacks its legs."""

from __future__ import annotations

import logging
from typing import Any

from gateway.gate import BUY, SELL
from gateway.orders import FILLED, TERMINAL
from gateway.requests import leg_prices
from gateway.state import GatewayState
from topstepx.errors import VenueError

log = logging.getLogger("gateway")


class ManagedBrackets(GatewayState):
    """Protects filled managed entries and keeps their two legs OCO."""

    async def _on_order_changed(self, row: dict[str, Any]) -> None:
        """Managed OCO: protect a filling entry, and keep the sibling of a filling leg no
        larger than what is still open (cancelled once the leg is filled). Run as tasks so
        the hub is not held up by the REST calls."""
        if row.get("managed") and row["fill_volume"] > 0:
            self._spawn(self._protect(row))
        parent = row.get("parent_id")
        if parent is not None and row["fill_volume"] > 0:
            entry = self.orders.get(parent)
            if entry is not None and entry.get("managed"):
                self._spawn(self._adjust_sibling(entry, row))

    def _legs(self, entry_id: int) -> list[dict[str, Any]]:
        return [r for r in self.intents.values() if r["parent_id"] == entry_id]

    async def _protect(self, entry: dict[str, Any]) -> None:
        """Place the stop-loss and take-profit of a filled managed entry (once each, for the
        filled size at fill price -/+ the ticks); when more of the entry fills later, grow the
        working legs to the filled size."""
        rec = self.intents.get(entry["client_id"] or "")
        if rec is None or entry["filled_price"] is None:
            return
        legs = {r["client_id"]: r for r in self._legs(entry["order_id"])}
        spec = self._spec_of(entry["contract"])
        sl_px, tp_px = leg_prices(entry["side"], entry["filled_price"], spec.tick_size,
                                  rec["sl_ticks"], rec["tp_ticks"])
        exit_side = SELL if entry["side"] == BUY else BUY
        for suffix, otype, px in (("-SL", "stop", sl_px), ("-TP", "limit", tp_px)):
            cid = f"{rec['client_id']}{suffix}"
            if px is None or cid in self._reserved:
                continue
            if cid in legs:
                await self._grow_leg(legs[cid], entry["fill_volume"])
                continue
            self._reserved.add(cid)
            try:
                leg = self._new_intent(
                    cid, rec["owner"], entry["contract"], exit_side, entry["fill_volume"], otype,
                    limit_price=px if otype == "limit" else None,
                    stop_price=px if otype == "stop" else None, parent_id=entry["order_id"])
                self.counters["managed_legs"] += 1
                reply = await self._send(leg, None)
                if reply["status"] == "rejected":
                    self._alarms["unprotected"] = True  # the next check clears it when fine
                    self._alarm("unprotected", True, f"{entry['client_id']}: {suffix[1:]} leg "
                                f"rejected: {reply['message']}")
            finally:
                self._reserved.discard(cid)

    async def _grow_leg(self, leg: dict[str, Any], filled: int) -> None:
        row = self.orders.get(leg.get("order_id") or -1)
        if row is None or row["state"] in TERMINAL or row["size"] >= filled:
            return
        try:
            await self.client.modify_order(self.account.id, row["order_id"], size=filled)
            row["size"] = filled
        except VenueError as exc:
            self._alarms["unprotected"] = True
            self._alarm("unprotected", True, f"{leg['client_id']}: cannot grow to {filled} "
                        f"contracts: {exc}")

    async def _adjust_sibling(self, entry: dict[str, Any], leg_row: dict[str, Any]) -> None:
        """A leg filled (partly): the other leg covers what is still open, or goes."""
        still_open = max(0, leg_row["size"] - leg_row["fill_volume"])
        for leg in self._legs(entry["order_id"]):
            oid = leg.get("order_id")
            if not oid or oid == leg_row["order_id"]:
                continue
            row = self.orders.get(oid)
            if row is None or row["state"] in TERMINAL:
                continue
            try:
                if still_open == 0 or leg_row["state"] == FILLED:
                    await self.client.cancel_order(self.account.id, oid)
                elif row["size"] - row["fill_volume"] > still_open:
                    await self.client.modify_order(self.account.id, oid,
                                                   size=row["fill_volume"] + still_open)
            except VenueError as exc:
                log.warning("OCO: adjusting %d failed: %s", oid, exc)

    def _check_protection(self) -> None:
        """One alarm `unprotected` while any filled managed entry whose position is still open
        has fewer working legs than it asked for (after a 2 s grace for placing them)."""
        now = self.clock.now_ms()
        bare: list[str] = []
        for row in self.orders.values():
            if not row.get("managed") or row["fill_volume"] <= 0:
                continue
            net = self.book.venue.get(row["contract"])
            if net is None or net.qty == 0:
                continue
            if now - int(row.get("updated_ms") or now) < 2000 * self.clock.speed:
                continue
            legs = [self.orders.get(r["order_id"]) for r in self._legs(row["order_id"])
                    if r.get("order_id")]
            live = [lg for lg in legs if lg and lg["state"] not in TERMINAL]
            rec = self.intents.get(row["client_id"] or "", {})
            want = (1 if rec.get("sl_ticks") else 0) + (1 if rec.get("tp_ticks") else 0)
            if not any(lg and lg["state"] == FILLED for lg in legs) and len(live) < want:
                bare.append(f"{row['client_id']} ({row['contract']})")
        active = bool(bare)
        if self._alarms.get("unprotected", False) != active:
            self._alarms["unprotected"] = active
            if active:
                self.counters["unprotected_alarms"] += 1
            self._alarm("unprotected", active,
                        "positions without their protective legs: " + ", ".join(bare)
                        if active else "every managed position is protected")
