"""The `store` process: the only writer of the market database (DATABASE_PATH).

It subscribes to final bars of every timeframe (`bar.` live, `hist.` re-sent), contract
metadata and, with STORE_RECORD_TICKS, quotes and trades, and hands rows to the writer thread
(store/writer.py): the event loop never touches the disk.

Partial bars are not stored: the database holds what is settled, the series process holds the
forming bar in memory. Every stored row is a final, so a reader never has to filter.

Recovery (what it missed while down, or lost on the bus):
- At start, for every contract it knows, it asks service "feeds" to `backfill` 1m bars from its
  newest stored 1m bar to now (the feed publishes them on `hist.1m.<contract>.` before it
  replies), waits until they are committed, then asks service "aggregator" to `reconcile` the
  same window: the aggregator recomputes the higher timeframes from the database and publishes
  what the database lacks.
- When the bus reports a sequence gap on a `bar.` topic, the same is done for that contract
  from its newest stored 1m bar. Requests are coalesced per contract and retried with backoff
  while the feed is not answering.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from pydantic import Field

from chillly.bus import BusNotReady, RequestTimeout
from chillly.codec import Envelope
from chillly import topics
from chillly.clock import DAY_MS, MINUTE_MS
from chillly.periodic import every
from chillly.process import Service, StartupError
from chillly.singleton import acquire
from chillly.timeframes import TimeframeSettings, bar_problem, is_tf, row_problem, tf_ms
from store import queries
from store.db import WrongVenue, claim_venue, open_writer
from store.queries import open_reader
from store.migrations import MigrationError
from store.writer import Writer


log = logging.getLogger("store")


class StoreSettings(TimeframeSettings):
    store_batch_rows: int = Field(default=2000, ge=1)
    store_flush_interval: float = Field(default=0.2, gt=0, le=10)
    store_record_ticks: bool = False
    store_recover: bool = True
    store_recover_days: float = Field(default=5.0, gt=0)
    store_request_timeout: float = Field(default=15.0, gt=0)


class Store(Service):
    name = "store"
    settings_cls = StoreSettings
    settings: StoreSettings

    async def on_start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        # The only writer of the database (defect 19): a second store exits 2 naming the first.
        self._lock = acquire(s.database_path, "store")
        try:
            conn = await loop.run_in_executor(None, open_writer, s.database_path)
            # Bars of one venue only (defect 7): a sim database never feeds real history.
            await loop.run_in_executor(None, claim_venue, conn, s.venue, s.database_path)
        except WrongVenue as exc:
            raise StartupError(str(exc)) from None
        except (sqlite3.Error, MigrationError, OSError) as exc:
            raise StartupError(f"cannot open {s.database_path}: {exc}") from None
        # Read before subscribing: where each contract's stored series end at start.
        self._future_ms = s.future_ms
        newest = await loop.run_in_executor(None, self._read_newest)
        self._last1m: dict[str, int] = {c: t for (c, tf), t in newest.items() if tf == "1m"}
        self.writer = Writer(conn, s.store_batch_rows, s.store_flush_interval)
        self.writer.start()
        self._add = self.writer.add
        self.counters.update({"bars_in": 0, "partials_skipped": 0, "contracts_in": 0,
                              "quotes_in": 0, "trades_in": 0, "recoveries": 0,
                              "recovery_failures": 0, "bar_gaps": 0, "venue_htf_skipped": 0,
                              "rejected": 0})
        # contract -> (backfill 1m from, reconcile higher timeframes from)
        self._dirty: dict[str, tuple[int, int]] = {}
        self._wake = asyncio.Event()
        self.bus.on(topics.bars(), self._on_bar)
        self.bus.on(topics.HISTORY, self._on_history)
        self.bus.on(topics.CONTRACTS, self._on_contract)
        if s.store_record_ticks:
            self.bus.on(topics.QUOTES, self._on_quote)
            self.bus.on(topics.TRADES, self._on_trade)
        self.bus.on_gap = self._on_gap
        self.bus.on_restart = self._on_restart
        try:
            await self.bus.ready(timeout=10)   # our subscriptions reached the broker
        except BusNotReady as exc:
            raise StartupError(f"no broker: {exc}") from None
        if s.store_recover:
            for contract, t in self._last1m.items():
                # Higher-timeframe finals trail their 1m bars and may sit in a later batch than
                # the newest stored 1m bar: reconcile from the oldest "newest row" of any tf.
                agg = [v for (c, tf), v in newest.items() if c == contract and tf != "1m"]
                self._mark(contract, t, min(agg + [t]) if agg else t - DAY_MS)

    def _read_newest(self) -> dict[tuple[str, str], int]:
        conn = open_reader(self.settings.database_path)
        try:
            # A row dated beyond market time (stored before bars were checked) must not set
            # where recovery starts: count back from now, not from the future.
            before = self.clock.now_ms() + self._future_ms + 1
            return {(c, tf): t for c, tf in queries.series_keys(conn)
                    if (t := queries.last_time(conn, c, tf, before)) is not None}
        finally:
            conn.close()

    # ------------------------------------------------------------------ ingest (loop side)

    def _on_history(self, env: Envelope) -> None:
        if env.payload["type"] == "bars":
            self._on_batch(env)
        else:
            self._on_bar(env)

    def _on_batch(self, env: Envelope) -> None:
        """History in bulk: every row a final bar; bad rows are rejected one by one."""
        p = env.payload
        contract, tf, origin, ts = p["contract"], p["tf"], p.get("origin", "poll"), p["ts"]
        if tf != "1m":
            self.counters["venue_htf_skipped"] += len(p["rows"])
            return
        good = []
        now, future = self.clock.now_ms(), self._future_ms
        for row in p["rows"]:
            problem = row_problem(row, now, future)
            if problem:
                self._reject(env.topic, problem)
                continue
            good.append((contract, tf, row[0], row[1], row[2], row[3], row[4], row[5], 1, 0,
                         origin, ts))
        if good:
            self.writer.add_many("bars", good)
            self.counters["bars_in"] += len(good)

    def _on_bar(self, env: Envelope) -> None:
        # The hot path: no typed message, no per-row bookkeeping beyond one counter.
        p = env.payload
        if not p["final"]:          # partial revisions, and bars built from trade prints
            self.counters["partials_skipped"] += 1
            return
        if p["tf"] != "1m" and p.get("origin") != "agg":
            # Venue bars of other units (a `chillly backfill --tf 1d`) are aligned the venue's
            # way (UTC days): our higher timeframes are always the aggregator's.
            self.counters["venue_htf_skipped"] += 1
            return
        problem = bar_problem(p, self.clock.now_ms(), self._future_ms)
        if problem:
            self._reject(env.topic, problem)
            return
        self._add("bars", (p["contract"], p["tf"], p["t"], p["o"], p["h"], p["l"], p["c"],
                           p["volume"], 1, p.get("rev", 0), p.get("origin", "poll"), p["ts"]))
        self.counters["bars_in"] += 1
        if p["tf"] == "1m":
            # Where a recovery starts if the next message reveals a gap (on_gap runs first).
            self._last1m[p["contract"]] = p["t"]

    def _reject(self, topic: str, problem: str) -> None:
        self.counters["rejected"] += 1
        n = self.counters["rejected"]
        if n <= 10 or n % 1000 == 0:
            log.warning("rejected a bar on %s: %s (%d so far)", topic, problem, n)

    def _on_contract(self, env: Envelope) -> None:
        p = env.payload
        self.writer.add("contracts", (p["contract"], p["symbol"], p["symbol_id"], p["name"],
                                      p["description"], p["tick_size"], p["tick_value"],
                                      int(p["active"]), p["ts"]))
        self.counters["contracts_in"] += 1

    def _on_quote(self, env: Envelope) -> None:
        p = env.payload
        self.writer.add("quotes", (p["contract"], p.get("vt") or p["ts"], p.get("bid"),
                                   p.get("ask"), p.get("last"), p.get("volume")))
        self.counters["quotes_in"] += 1

    def _on_trade(self, env: Envelope) -> None:
        p = env.payload
        self.writer.add("trades", (p["contract"], p["t"], p["price"], p["size"], p["aggressor"]))
        self.counters["trades_in"] += 1

    # ------------------------------------------------------------------ recovery

    def _on_gap(self, src: str, topic: str, first: int, last: int) -> None:
        self._recover_topic(topic, f"lost {last - first + 1} message(s) from {src}")

    def _on_restart(self, src: str, topic: str) -> None:
        # A publisher that restarted (or crashed) may not have sent everything it meant to.
        self._recover_topic(topic, f"{src} restarted")

    def _recover_topic(self, topic: str, why: str) -> None:
        if not topic.startswith("bar.") or not self.settings.store_recover:
            return
        parts = topic.split(".", 2)
        if len(parts) < 3:
            return
        contract = parts[2].rstrip(".")
        self.counters["bar_gaps"] += 1
        log.warning("%s on %s: recovering %s", why, topic, contract)
        since = self._last1m.get(contract, self.clock.now_ms() - DAY_MS)
        tf = parts[1]
        # A lost higher-timeframe final belongs to a bucket that ended by the last 1m bar seen.
        back = MINUTE_MS if tf == "1m" else MINUTE_MS + (tf_ms(tf) if is_tf(tf) else DAY_MS)
        self._mark(contract, since, since - back)

    def _mark(self, contract: str, backfill_since: int, reconcile_since: int) -> None:
        """Queue a recovery of `contract`; windows of repeated marks merge (earliest wins)."""
        prev = self._dirty.get(contract)
        if prev is not None:
            backfill_since = min(prev[0], backfill_since)
            reconcile_since = min(prev[1], reconcile_since)
        self._dirty[contract] = (backfill_since, reconcile_since)
        self._wake.set()

    async def _recovery_loop(self) -> None:
        while True:
            try:
                await self.bus.ready(timeout=5)
                break
            except BusNotReady:
                log.warning("bus not ready yet; recovery waits")
        backoff = 1.0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._dirty:
                contract = min(self._dirty)
                since = self._dirty.pop(contract)
                if await self._recover(contract, *since):
                    backoff = 1.0
                    continue
                self.counters["recovery_failures"] += 1
                self._mark(contract, *since)
                self._wake.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _recover(self, contract: str, since: int, reconcile_since: int) -> bool:
        """Backfill 1m from `since` to now, then have the aggregator re-publish the higher
        timeframes the database lacks from `reconcile_since`. False when the feed did not
        answer (retry later)."""
        s = self.settings
        end = self.clock.now_ms()
        horizon = end - int(s.store_recover_days * DAY_MS)
        start = max(since, horizon)
        if start < end:
            try:
                reply = await self.bus.request(
                    "feeds", "backfill", {"contract": contract, "tf": "1m", "start": start,
                                          "end": end},
                    timeout=s.store_request_timeout, attempts=1)
            except RequestTimeout:
                log.warning("feeds did not answer backfill of %s; will retry", contract)
                return False
            if not reply.ok:
                log.warning("feeds refused backfill of %s: %s", contract, reply.error)
                return False
            log.info("backfilled %s from %d: %s", contract, start, reply.result)
        await asyncio.wrap_future(self.writer.barrier())
        try:
            reply = await self.bus.request(
                "aggregator", "reconcile",
                {"contract": contract, "start": max(min(reconcile_since, start - MINUTE_MS),
                                                    horizon), "end": end},
                timeout=s.store_request_timeout, attempts=1)
            if not reply.ok:
                log.warning("aggregator refused reconcile of %s: %s", contract, reply.error)
        except RequestTimeout:
            # The aggregator's own warm-up recomputes from the database when it starts.
            log.warning("aggregator did not answer reconcile of %s", contract)
        self.counters["recoveries"] += 1
        return True

    # ------------------------------------------------------------------ lifecycle

    async def run(self) -> None:
        recovery = asyncio.create_task(self._recovery_loop())
        try:
            await every(0.5, self._writer_counters, self.stopping)
        finally:
            recovery.cancel()

    def _writer_counters(self) -> None:
        self.counters.update(self.writer.counters)
        self.counters["queued"] = self.writer.pending()

    async def on_stop(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is None:
            return
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, writer.close, 1.2):
            log.error("writer did not finish; %d rows unwritten", writer.pending())
        else:
            log.info("flushed; %d rows written in %d commits", writer.counters["rows_written"],
                     writer.counters["commits"])
            self._lock.release()
