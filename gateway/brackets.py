"""Managed brackets (GATEWAY_BRACKET_MODE=managed, or an account in Position Brackets mode):
the gateway places the stop-loss and take-profit of a filled entry itself and keeps them one
cancels the other; the `unprotected` alarm while a filled entry's legs cover less than its
open position.

What an entry still has open is its fill volume less what its legs have filled. After every
report of the entry or a leg, each working leg is set to close exactly that (its own fill plus
the open lots): so legs grow with each part of the entry, a part-filled leg shrinks its sibling,
and a leg whose open is 0 is cancelled. Legs are priced from the entry's average fill price
(the venue's `filledPrice`) -/+ the ticks, on the tick grid toward the average, so the loss at
the stop is at most the ticks asked for on every lot (what the risk gate counted); when a later
part moves the average, the legs move with it (a leg moved by hand keeps its offset).

One runner per entry does the REST calls, off the hub's path: a report that arrives while it
runs makes it run once more with the newest state, so calls for one entry never overlap and no
part is missed. Leg placements are journaled intents like any order (never sent twice)."""

from __future__ import annotations

import logging
import math
from typing import Any

from gateway.gate import BUY, SELL
from gateway.orders import FILLED, TERMINAL
from gateway.requests import leg_prices
from gateway.state import GatewayState
from topstepx.errors import VenueError

log = logging.getLogger("gateway")

LEGS = (("-SL", "stop", "stop_price"), ("-TP", "limit", "limit_price"))


def leg_levels(side: int, avg: float, tick: float, sl_ticks: int | None,
               tp_ticks: int | None) -> tuple[float | None, float | None]:
    """Stop-loss and take-profit prices of an entry of `side` at average fill `avg`: the ticks
    away, rounded onto the tick grid toward the average (never farther than asked)."""
    def toward(px: float | None) -> float | None:
        if px is None:
            return None
        steps = px / tick
        n = math.ceil(steps - 1e-9) if px < avg else math.floor(steps + 1e-9)
        return round(n * tick, 10)
    sl, tp = leg_prices(side, avg, tick, sl_ticks, tp_ticks)
    return toward(sl), toward(tp)


class ManagedBrackets(GatewayState):
    """Protects filled managed entries and keeps their two legs OCO."""

    def _bracket_state(self) -> tuple[dict[int, bool], dict[str, float],
                                      dict[int, tuple[int, int]]]:
        """(entry id -> run again, leg client id -> the average its price was set from, entry
        id found short of legs -> (when to try again, the wait after that), market ms)."""
        st: tuple[dict[int, bool], dict[str, float], dict[int, tuple[int, int]]] | None = \
            self.__dict__.get("_brackets")
        if st is None:
            st = self.__dict__["_brackets"] = ({}, {}, {})
        return st

    async def _on_order_changed(self, row: dict[str, Any]) -> None:
        """A managed entry or one of its legs changed: bring the legs in line (in a task)."""
        entry: dict[str, Any] | None = row if row.get("managed") else None
        if entry is None and row.get("parent_id") is not None:
            parent = self.orders.get(row["parent_id"])
            entry = parent if parent is not None and parent.get("managed") else None
        if entry is not None and entry["fill_volume"] > 0:
            self._sync_soon(entry["order_id"])

    def _sync_soon(self, entry_id: int) -> None:
        runs = self._bracket_state()[0]
        if entry_id in runs:
            runs[entry_id] = True     # running: once more when this pass ends
            return
        runs[entry_id] = False
        self._spawn(self._sync_legs(entry_id))

    async def _sync_legs(self, entry_id: int) -> None:
        runs = self._bracket_state()[0]
        try:
            while True:
                runs[entry_id] = False
                await self._sync_once(entry_id)
                if not runs.get(entry_id):
                    return
        except Exception:  # noqa: BLE001 - the alarm covers what is left unprotected
            log.exception("managed legs of order %d", entry_id)
        finally:
            runs.pop(entry_id, None)

    def _legs(self, entry_id: int) -> list[dict[str, Any]]:
        return [r for r in self.intents.values() if r["parent_id"] == entry_id]

    def _open_of(self, entry: dict[str, Any]) -> tuple[int, dict[str, dict[str, Any] | None]]:
        """(lots the entry still has open, its legs' order rows by client id; None while a
        leg's placement is unresolved)."""
        rows = {r["client_id"]: self.orders.get(r.get("order_id") or -1)
                for r in self._legs(entry["order_id"])}
        exited = sum(int(r["fill_volume"] or 0) for r in rows.values() if r)
        return max(0, int(entry["fill_volume"]) - exited), rows

    async def _sync_once(self, entry_id: int) -> None:
        entry = self.orders.get(entry_id)
        rec = self.intents.get((entry or {}).get("client_id") or "")
        if entry is None or rec is None or not entry["fill_volume"] \
                or entry["filled_price"] is None:
            return
        tick = self._spec_of(entry["contract"]).tick_size
        if tick <= 0:
            await self._ensure_spec(entry["contract"])
            tick = self._spec_of(entry["contract"]).tick_size
        avg = float(entry["filled_price"])
        levels = dict(zip(("-SL", "-TP"), leg_levels(entry["side"], avg, tick, rec["sl_ticks"],
                                                     rec["tp_ticks"])))
        open_, rows = self._open_of(entry)
        priced = self._bracket_state()[1]
        for suffix, otype, field in LEGS:
            px = levels[suffix]
            cid = f"{rec['client_id']}{suffix}"
            if px is None:
                continue
            if cid not in rows:
                if open_ > 0:
                    priced[cid] = avg
                    await self._place_leg(entry, rec, cid, otype, open_, px)
                continue
            row = rows[cid]
            if row is None or row["state"] in TERMINAL:
                continue
            try:
                if open_ == 0:
                    await self.client.cancel_order(self.account.id, row["order_id"])
                    continue
                size = int(row["fill_volume"] or 0) + open_
                base = priced.setdefault(cid, avg)   # after a restart: as it is now
                old = row[field]
                new = old
                if base != avg and old is not None:
                    before = leg_levels(entry["side"], base, tick, rec["sl_ticks"],
                                        rec["tp_ticks"])[0 if suffix == "-SL" else 1]
                    new = round(old + px - (before or px), 10)
                if size != row["size"] or new != old:
                    await self.client.modify_order(
                        self.account.id, row["order_id"], size=size,
                        **({field: new} if new != old else {}))
                    row["size"], row[field] = size, new
                priced[cid] = avg
            except VenueError as exc:
                log.warning("managed leg %s (order %d): %s", cid, row["order_id"], exc)
        if open_ == 0 and entry["state"] not in TERMINAL and any(
                r and r["state"] == FILLED for r in rows.values()):
            # A leg closed the trade while the entry still works: what filled later would have
            # no legs (they are done), so the rest of the entry goes.
            try:
                await self.client.cancel_order(self.account.id, entry_id)
            except VenueError as exc:
                log.warning("entry %d after its leg filled: %s", entry_id, exc)

    async def _place_leg(self, entry: dict[str, Any], rec: dict[str, Any], cid: str,
                         otype: str, size: int, px: float) -> None:
        leg = self._new_intent(
            cid, rec["owner"], entry["contract"], SELL if entry["side"] == BUY else BUY, size,
            otype, limit_price=px if otype == "limit" else None,
            stop_price=px if otype == "stop" else None, parent_id=entry["order_id"])
        self.counters["managed_legs"] += 1
        reply = await self._send(leg, None)
        if reply["status"] == "rejected":
            self._alarms["unprotected"] = True  # the next check clears it when fine
            self._alarm("unprotected", True, f"{entry['client_id']}: {cid[-2:]} leg "
                        f"rejected: {reply['message']}")

    def _check_protection(self) -> None:
        """One alarm `unprotected` while any filled managed entry whose position is still open
        has a leg it asked for that closes less than its open lots (after a 2 s grace): a leg
        missing, cancelled, rejected, or smaller than the position (a growth that failed).
        Such an entry's legs are synced again, with a growing wait."""
        now = self.clock.now_ms()
        bare: list[str] = []
        retry = self._bracket_state()[2]
        short_now: set[int] = set()
        # The venue's position is what must be covered, newest entries first: an older entry
        # closed by other means (flatten) still counts lots open, but not beyond the position.
        left: dict[str, int] = {}
        for row in sorted((r for r in self.orders.values()
                           if r.get("managed") and r["fill_volume"] > 0),
                          key=lambda r: -int(r["order_id"])):
            net = self.book.venue.get(row["contract"])
            if net is None or net.qty == 0:
                continue
            open_, rows = self._open_of(row)
            need = min(open_, left.setdefault(row["contract"], abs(net.qty)))
            left[row["contract"]] -= need
            if need == 0:
                continue
            last = max([int(r.get("updated_ms") or 0) for r in (row, *rows.values()) if r]
                       or [now])
            if now - last < 2000 * self.clock.speed:
                continue
            rec = self.intents.get(row["client_id"] or "", {})
            short = []
            for suffix, ticks in (("-SL", rec.get("sl_ticks")), ("-TP", rec.get("tp_ticks"))):
                leg = rows.get(f"{rec.get('client_id')}{suffix}")
                cover = 0 if leg is None or leg["state"] in TERMINAL else \
                    int(leg["size"]) - int(leg["fill_volume"] or 0)
                if ticks and cover < need:
                    short.append(f"{suffix[1:]} {cover}")
            if short:
                bare.append(f"{row['client_id']} ({row['contract']}: {need} open, "
                            f"{', '.join(short)})")
                oid = row["order_id"]
                short_now.add(oid)
                # Try to put it right (a failed modify is not retried otherwise): at once, then
                # after 2, 4, 8 ... 30 s, so a venue that keeps refusing costs few requests.
                due, wait = retry.get(oid, (0, int(2000 * self.clock.speed)))
                if now >= due:
                    self._sync_soon(oid)
                    retry[oid] = (now + wait, min(2 * wait, int(30_000 * self.clock.speed)))
        for oid in [o for o in retry if o not in short_now]:
            del retry[oid]
        active = bool(bare)
        if self._alarms.get("unprotected", False) != active:
            self._alarms["unprotected"] = active
            if active:
                self.counters["unprotected_alarms"] += 1
            self._alarm("unprotected", active,
                        "positions without their protective legs: " + ", ".join(bare)
                        if active else "every managed position is protected")
