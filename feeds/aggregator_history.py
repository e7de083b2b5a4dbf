"""The aggregator's missing bucket heads (defect 18): fetch the 1m bars a bucket lacks.

The core (trading/aggregator.py) never lets a bucket whose first minutes it has not seen go
final; it calls `want(contract, start, end)` once instead. This asks service "feeds" for a
`backfill` of 1m bars over [start, end), collects the rows the feed publishes on
`hist.1m.<contract>.` before it replies, and on the reply hands them to every timeframe's
`fill`, which finishes the waiting buckets. Requests are coalesced per contract and retried
with back-off (1 s .. 30 s) until the feed answers, so a bucket is completed, never finalised
with part of its data; while nobody answers, it stays partial.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from chillly import topics
from chillly.bus import Bus, RequestTimeout
from chillly.clock import Clock
from chillly.codec import Envelope
from chillly.messages import Bar
from chillly.timeframes import row_problem
from trading.aggregator import Aggregators

log = logging.getLogger("aggregator.history")


class HeadFiller:
    def __init__(self, bus: Bus, clock: Clock, timeout_s: float, counters: dict[str, Any],
                 future_ms: int) -> None:
        self.bus = bus
        self.clock = clock
        self.timeout_s = timeout_s
        self.counters = counters
        self.future_ms = future_ms
        self.aggs: Aggregators | None = None
        self.wanted: dict[str, tuple[int, int]] = {}
        self.rows: dict[str, dict[int, Bar]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        counters.update({"history_requests": 0, "history_failures": 0, "history_fills": 0})
        bus.on(topics.HISTORY + "1m.", self._on_history)

    def want(self, contract: str, start: int, end: int) -> None:
        prev = self.wanted.get(contract)
        if prev is not None:
            start, end = min(prev[0], start), max(prev[1], end)
        self.wanted[contract] = (start, end)
        self.rows.setdefault(contract, {})
        if contract not in self.tasks:
            self.tasks[contract] = asyncio.ensure_future(self._fetch(contract))

    def _on_history(self, env: Envelope) -> None:
        p = env.payload
        window = self.wanted.get(p["contract"])
        if window is None:
            return
        start, end = window
        rows = p["rows"] if p["type"] == "bars" else [
            [p["t"], p["o"], p["h"], p["l"], p["c"], p["volume"]]]
        now = self.clock.now_ms()
        keep = self.rows[p["contract"]]
        for r in rows:
            if row_problem(r, now, self.future_ms) is None and start <= r[0] < end:
                keep[r[0]] = Bar(contract=p["contract"], tf="1m", t=r[0], o=r[1], h=r[2],
                                 l=r[3], c=r[4], volume=r[5], final=True, origin="poll")

    async def _fetch(self, contract: str) -> None:
        backoff = 1.0
        try:
            while contract in self.wanted:
                start, end = self.wanted[contract]
                self.counters["history_requests"] += 1
                try:
                    reply = await self.bus.request(
                        "feeds", "backfill", {"contract": contract, "tf": "1m", "start": start,
                                              "end": end}, timeout=self.timeout_s, attempts=1)
                except RequestTimeout:
                    reply = None
                if reply is None or not reply.ok:
                    self.counters["history_failures"] += 1
                    log.warning("no history for the first bucket of %s yet (%s); it stays "
                                "partial, retrying in %.0f s", contract,
                                "no answer" if reply is None else reply.error, backoff)
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
                    continue
                if self.wanted.get(contract) != (start, end):
                    continue   # widened meanwhile: ask again (rows collected so far are kept)
                del self.wanted[contract]
                bars = sorted(self.rows.pop(contract, {}).values(), key=lambda b: b.t)
                log.info("completing the first bucket(s) of %s with %d bar(s) of history",
                         contract, len(bars))
                assert self.aggs is not None
                for agg in self.aggs.for_contract(contract):
                    agg.fill(bars, start, self.clock.now_ms())
                self.counters["history_fills"] += 1
        finally:
            self.tasks.pop(contract, None)

    def cancel(self) -> None:
        for task in self.tasks.values():
            task.cancel()
