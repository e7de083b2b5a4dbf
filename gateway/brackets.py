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
from collections.abc import Callable, Coroutine
from typing import Any

from chillly.clock import Clock
from gateway.placing import Placer
from gateway.publishing import Publisher
from gateway.venue_events import Specs
from topstepx.client import ProjectXClient
from topstepx.errors import VenueError
from trading.blotter import Blotter
from trading.orders.records import FILLED, IntentRecord, OrderRecord
from trading.orders.requests import leg_prices
from trading.venue_codes import Side

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


class Brackets:
    """Protects filled managed entries and keeps their two legs OCO."""

    def __init__(self, client: ProjectXClient, blotter: Blotter, placer: Placer, specs: Specs,
                 publisher: Publisher, clock: Clock, counters: dict[str, int],
                 spawn: Callable[[Coroutine[Any, Any, None]], None]) -> None:
        self.client, self.blotter, self.placer, self.specs = client, blotter, placer, specs
        self.publisher, self.clock, self.counters, self.spawn = publisher, clock, counters, spawn
        #: entry id -> run again when the current pass ends
        self._runs: dict[int, bool] = {}
        #: leg client id -> the entry's average its price was last set from
        self._priced: dict[str, float] = {}
        #: entry id found short of legs -> (when to try again, the wait after that), market ms
        self._retry: dict[int, tuple[int, int]] = {}
        #: leg order id -> (its report count, size, price field, price) asked by a modify the
        #: venue has not reported yet: what the leg is taken to be until its next report
        self._asked: dict[int, tuple[int, int, str, float | None]] = {}
        self._alarm = False

    async def on_order_changed(self, row: OrderRecord) -> None:
        """A managed entry or one of its legs changed: bring the legs in line (in a task)."""
        self._asked.pop(row.order_id, None)     # the venue has spoken since
        entry = row if row.managed else None
        if entry is None and row.parent_id is not None:
            parent = self.blotter.orders.get(row.parent_id)
            entry = parent if parent is not None and parent.managed else None
        if entry is not None and entry.fill_volume > 0:
            self._sync_soon(entry.order_id)

    def _sync_soon(self, entry_id: int) -> None:
        if entry_id in self._runs:
            self._runs[entry_id] = True     # running: once more when this pass ends
            return
        self._runs[entry_id] = False
        self.spawn(self._sync_legs(entry_id))

    async def _sync_legs(self, entry_id: int) -> None:
        runs = self._runs
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

    def _size(self, leg: OrderRecord) -> int:
        asked = self._asked.get(leg.order_id)
        return asked[1] if asked is not None and asked[0] == leg.reports else leg.size

    def _price(self, leg: OrderRecord, field: str) -> float | None:
        asked = self._asked.get(leg.order_id)
        if asked is not None and asked[0] == leg.reports and asked[2] == field:
            return asked[3]
        return leg.stop_price if field == "stop_price" else leg.limit_price

    def _open_of(self, entry: OrderRecord) -> tuple[int, dict[str, OrderRecord | None]]:
        """(lots the entry still has open, its legs' orders by client id; None while a leg's
        placement is unresolved)."""
        rows = {r.client_id: self.blotter.orders.get(r.order_id or -1)
                for r in self.blotter.legs_of(entry.order_id)}
        exited = sum(r.fill_volume for r in rows.values() if r)
        return max(0, entry.fill_volume - exited), rows

    async def _sync_once(self, entry_id: int) -> None:
        entry = self.blotter.orders.get(entry_id)
        rec = self.blotter.intents.get(entry.client_id or "") if entry is not None else None
        if entry is None or rec is None or not entry.fill_volume \
                or entry.filled_price is None:
            return
        tick = self.specs.of(entry.contract).tick_size
        if tick <= 0:
            await self.specs.ensure(entry.contract)
            tick = self.specs.of(entry.contract).tick_size
        avg = float(entry.filled_price)
        levels = dict(zip(("-SL", "-TP"), leg_levels(entry.side, avg, tick, rec.sl_ticks,
                                                     rec.tp_ticks)))
        open_, rows = self._open_of(entry)
        priced = self._priced
        for suffix, otype, field in LEGS:
            px = levels[suffix]
            cid = f"{rec.client_id}{suffix}"
            if px is None:
                continue
            if cid not in rows:
                if open_ > 0:
                    priced[cid] = avg
                    await self._place_leg(entry, rec, cid, otype, open_, px)
                continue
            row = rows[cid]
            if row is None or row.terminal:
                continue
            try:
                if open_ == 0:
                    await self.client.cancel_order(self.blotter.account_id, row.order_id)
                    continue
                size = row.fill_volume + open_
                base = priced.setdefault(cid, avg)   # after a restart: as it is now
                old = self._price(row, field)
                new = old
                if base != avg and old is not None:
                    before = leg_levels(entry.side, base, tick, rec.sl_ticks,
                                        rec.tp_ticks)[0 if suffix == "-SL" else 1]
                    new = round(old + px - (before or px), 10)
                if size != self._size(row) or new != old:
                    reports = row.reports
                    await self.client.modify_order(
                        self.blotter.account_id, row.order_id, size=size,
                        **({field: new} if new != old else {}))
                    if row.reports == reports:      # no report since: taken as asked
                        self._asked[row.order_id] = (reports, size, field, new)
                priced[cid] = avg
            except VenueError as exc:
                log.warning("managed leg %s (order %d): %s", cid, row.order_id, exc)
        if open_ == 0 and not entry.terminal and any(
                r and r.state == FILLED for r in rows.values()):
            # A leg closed the trade while the entry still works: what filled later would have
            # no legs (they are done), so the rest of the entry goes.
            try:
                await self.client.cancel_order(self.blotter.account_id, entry_id)
            except VenueError as exc:
                log.warning("entry %d after its leg filled: %s", entry_id, exc)

    async def _place_leg(self, entry: OrderRecord, rec: IntentRecord, cid: str,
                         otype: str, size: int, px: float) -> None:
        leg = self.blotter.new_intent(
            cid, rec.owner, entry.contract, Side.SELL if entry.side == Side.BUY else Side.BUY,
            size, otype, self.clock.now_ms(), limit_price=px if otype == "limit" else None,
            stop_price=px if otype == "stop" else None, parent_id=entry.order_id)
        self.counters["managed_legs"] += 1
        reply = await self.placer.send(leg, None)
        if reply["status"] == "rejected":
            self._alarm = True  # the next check clears it when fine
            self.publisher.alarm("unprotected", True, f"{entry.client_id}: {cid[-2:]} leg "
                                 f"rejected: {reply['message']}")

    def check_protection(self) -> None:
        """One alarm `unprotected` while any filled managed entry whose position is still open
        has a leg it asked for that closes less than its open lots (after a 2 s grace): a leg
        missing, cancelled, rejected, or smaller than the position (a growth that failed).
        Such an entry's legs are synced again, with a growing wait."""
        now = self.clock.now_ms()
        speed = self.clock.speed
        bare: list[str] = []
        retry = self._retry
        short_now: set[int] = set()
        book = self.blotter.book
        # The venue's position is what must be covered, newest entries first: an older entry
        # closed by other means (flatten) still counts lots open, but not beyond the position.
        left: dict[str, int] = {}
        for row in sorted((r for r in self.blotter.orders.values()
                           if r.managed and r.fill_volume > 0), key=lambda r: -r.order_id):
            net = book.venue.get(row.contract)
            if net is None or net.qty == 0:
                continue
            open_, rows = self._open_of(row)
            need = min(open_, left.setdefault(row.contract, abs(net.qty)))
            left[row.contract] -= need
            if need == 0:
                continue
            last = max([int(r.updated_ms or 0) for r in (row, *rows.values()) if r] or [now])
            if now - last < 2000 * speed:
                continue
            rec = self.blotter.intents.get(row.client_id or "")
            short = []
            for suffix, ticks in (("-SL", rec.sl_ticks if rec else None),
                                  ("-TP", rec.tp_ticks if rec else None)):
                leg = rows.get(f"{rec.client_id if rec else None}{suffix}")
                cover = 0 if leg is None or leg.terminal else self._size(leg) - leg.fill_volume
                if ticks and cover < need:
                    short.append(f"{suffix[1:]} {cover}")
            if short:
                bare.append(f"{row.client_id} ({row.contract}: {need} open, "
                            f"{', '.join(short)})")
                oid = row.order_id
                short_now.add(oid)
                # Try to put it right (a failed modify is not retried otherwise): at once, then
                # after 2, 4, 8 ... 30 s, so a venue that keeps refusing costs few requests.
                due, wait = retry.get(oid, (0, int(2000 * speed)))
                if now >= due:
                    self._sync_soon(oid)
                    retry[oid] = (now + wait, min(2 * wait, int(30_000 * speed)))
        for oid in [o for o in retry if o not in short_now]:
            del retry[oid]
        active = bool(bare)
        if self._alarm != active:
            self._alarm = active
            if active:
                self.counters["unprotected_alarms"] += 1
            self.publisher.alarm("unprotected", active,
                                 "positions without their protective legs: " + ", ".join(bare)
                                 if active else "every managed position is protected")
