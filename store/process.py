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

import argparse
import asyncio
import json
import logging
import math
import sqlite3

from pydantic import Field

from chillly.bus import BusNotReady, RequestTimeout
from chillly.codec import Envelope
from chillly import topics
from chillly.clock import DAY_MS, MINUTE_MS
from chillly.periodic import every
from chillly.messages import Alarm, Bar
from chillly.process import Service, State, StartupError, run_service
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
    store_max_queued: int = Field(default=1_000_000, ge=1)   # rows waiting for the disk
    store_retry_max: float = Field(default=5.0, gt=0, le=300)  # longest back-off after a failure


class Store(Service):
    name = "store"
    settings_cls = StoreSettings
    settings: StoreSettings

    async def on_start(self) -> None:
        s = self.settings
        loop = asyncio.get_running_loop()
        # The only writer of the database (defect 19): a second store exits 2 naming the first.
        # An old store still stopping gets its stop budget (2 s) to let go first.
        self._lock = await asyncio.to_thread(acquire, s.database_path, "store", 3.0)
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
        owed = await loop.run_in_executor(None, self._read_owed)
        self._last1m: dict[str, int] = {c: t for (c, tf), t in newest.items() if tf == "1m"}
        self.writer = Writer(conn, s.store_batch_rows, s.store_flush_interval,
                             max_rows=s.store_max_queued, retry_max_s=s.store_retry_max)
        self.writer.start()
        self._add = self.writer.add
        self.counters.update({"bars_in": 0, "partials_skipped": 0, "contracts_in": 0,
                              "quotes_in": 0, "trades_in": 0, "recoveries": 0,
                              "recovery_failures": 0, "bar_gaps": 0, "venue_htf_skipped": 0,
                              "rejected": 0, "refused": 0, "reconcile_failures": 0})
        # What a full queue refused, per contract: (oldest 1m t or None, oldest other t or
        # None). Fetched again once the writer has room (nothing refused is forgotten).
        self._refused: dict[str, tuple[int | None, int | None]] = {}
        # contract -> (backfill 1m from, reconcile higher timeframes from)
        self._dirty: dict[str, tuple[int | None, int]] = {}
        # The same windows until each recovery is done, kept in the database (meta
        # `recovery_owed`, committed with the rows that follow the gap): a store killed with a
        # recovery pending owes it after its restart too, not just from its newest row.
        self._owed: dict[str, tuple[int | None, int]] = {}
        self._wake = asyncio.Event()
        # Keys of bars stored live from our subscription until the start-up catch-up is done
        # (None otherwise): a bar both received live and found in the bus's history is
        # stored once.
        self._seen: set[tuple[str, str, int]] | None = (
            set() if s.store_recover and self.bus.keeps_history("bar") else None)
        self.bus.on(topics.bars(), self._on_bar)
        self.bus.on(topics.HISTORY, self._on_history)
        self.bus.on(topics.CONTRACTS, self._on_contract)
        if s.store_record_ticks:
            self.bus.on(topics.QUOTES, self._on_quote)
            self.bus.on(topics.TRADES, self._on_trade)
        self.bus.on_gap = self._on_gap
        self.bus.on_restart = self._on_restart
        await self.bus.ready(timeout=10)   # our subscriptions reached the broker
        if s.store_recover:
            stored_1m = dict(self._last1m)   # the backfill starts where the database ends,
            await self._catch_up(newest)      # whatever the (capped) history held after it
            for contract, (since, reconcile_since) in owed.items():
                self._mark(contract, since, reconcile_since)
            for contract, t in stored_1m.items():
                # Higher-timeframe finals trail their 1m bars and may sit in a later batch than
                # the newest stored 1m bar: reconcile from the oldest "newest row" of any tf.
                agg = [v for (c, tf), v in newest.items() if c == contract and tf != "1m"]
                self._mark(contract, t, min(agg + [t]) if agg else t - DAY_MS)

    async def _catch_up(self, newest: dict[tuple[str, str], int]) -> None:
        """Store the final bars published while we were down, from the history the bus
        backend keeps (Redis: the capped `bar` stream): every final bar newer than its series'
        newest stored row, de-duplicated by its key (contract, tf, t) against what arrives
        live meanwhile and within the history. The feed's backfill below still covers what
        the history no longer holds (it is capped) and every backend that keeps none."""
        seen = self._seen
        if seen is None:
            log.info("no bar history to catch up from on BUS_BACKEND=%s (only redis with "
                     "REDIS_STREAM_MAXLEN > 0 keeps one): bars missed while down come from the "
                     "feed's backfill", self.bus.backend.kind)
            return
        prefix = topics.bars()
        caught, after = 0, "-"
        try:
            while True:
                envs, next_after = await self.bus.replay("bar", after)
                if next_after == after:
                    break
                after = next_after
                for env in envs:
                    p = env.payload
                    if env.cls is not Bar or not env.topic.startswith(prefix) or not p["final"]:
                        continue
                    key = (p["contract"], p["tf"], p["t"])
                    stored = newest.get((key[0], key[1]))
                    if (stored is not None and key[2] <= stored) or key in seen:
                        continue
                    before = self.counters["bars_in"]
                    self._on_bar(env)   # checked and written as if it arrived live
                    caught += self.counters["bars_in"] - before
        except Exception as exc:   # a link down, an ACL without XRANGE: the backfill remains
            log.warning("catch-up from the bus's bar history stopped (%s: %s) after %d bar(s); "
                        "the feed's backfill still runs", exc.__class__.__name__, exc, caught)
        finally:
            self._seen = None
        self.counters["caught_up"] = caught
        log.info("caught up %d final bar(s) from the bus's history", caught)

    def _read_owed(self) -> dict[str, tuple[int | None, int]]:
        conn = open_reader(self.settings.database_path)
        try:
            return queries.recovery_owed(conn)
        except ValueError as exc:
            log.warning("%s: ignored", exc)
            return {}
        except sqlite3.Error:
            return {}
        finally:
            conn.close()

    def _save_owed(self) -> None:
        self.writer.add("meta", ("recovery_owed", json.dumps(self._owed, sort_keys=True)))

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
        p = env.payload
        if p["type"] == "bars":
            self._on_batch(env)
            return
        before = self.counters["bars_in"]
        self._on_bar(env)
        if p["tf"] == "1m" and self.counters["bars_in"] > before and self.settings.store_recover:
            self._mark(p["contract"], None, p["t"])   # as for a batch: reconcile over it

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
            if self.writer.add_many("bars", good):
                self.counters["bars_in"] += len(good)
                if self.settings.store_recover:
                    # History may correct stored finals (a later reading wins): once it is on
                    # disk, the aggregator recomputes the higher timeframes over it.
                    self._mark(contract, None, good[0][2])
            else:
                self._refuse(contract, tf, good[0][2], len(good))

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
        if not self._add("bars", (p["contract"], p["tf"], p["t"], p["o"], p["h"], p["l"], p["c"],
                                  p["volume"], 1, p.get("rev", 0), p.get("origin", "poll"),
                                  p["ts"])):
            self._refuse(p["contract"], p["tf"], p["t"], 1)
            return
        self.counters["bars_in"] += 1
        if self._seen is not None:
            self._seen.add((p["contract"], p["tf"], p["t"]))
        if p["tf"] == "1m":
            # Where a recovery starts if the next message reveals a gap (on_gap runs first).
            self._last1m[p["contract"]] = p["t"]

    def _refuse(self, contract: str, tf: str, t: int, n: int) -> None:
        """The writer's queue is full: remember what was not taken, to fetch it again."""
        self.counters["refused"] += n
        m1, other = self._refused.get(contract, (None, None))
        if tf == "1m":
            m1 = t if m1 is None else min(m1, t)
        else:
            other = t if other is None else min(other, t)
        self._refused[contract] = (m1, other)

    def _reject(self, topic: str, problem: str) -> None:
        self.counters["rejected"] += 1
        n = self.counters["rejected"]
        if n <= 10 or n % 1000 == 0:
            log.warning("rejected %s: %s (%d so far)", topic, problem, n)

    def _on_contract(self, env: Envelope) -> None:
        p = env.payload
        problem = contract_problem(p)
        if problem:
            self._reject(env.topic, problem)
            return
        self.writer.add("contracts", (p["contract"], p["symbol"], p["symbol_id"], p["name"],
                                      p["description"], p["tick_size"], p["tick_value"],
                                      int(p["active"]), p["ts"]))
        self.counters["contracts_in"] += 1

    def _on_quote(self, env: Envelope) -> None:
        p = env.payload
        if not all(_price(p.get(k), True) for k in ("bid", "ask", "last")) or (
                p.get("volume") or 0) < 0:
            self._reject(env.topic, "a price that is not a price, or a negative volume")
            return
        self.writer.add("quotes", (p["contract"], p.get("vt") or p["ts"], p.get("bid"),
                                   p.get("ask"), p.get("last"), p.get("volume")))
        self.counters["quotes_in"] += 1

    def _on_trade(self, env: Envelope) -> None:
        p = env.payload
        if not (_price(p["price"]) and p["size"] > 0 and p["aggressor"] in (0, 1)
                and p["t"] >= 0):
            self._reject(env.topic, "impossible trade (price, size, aggressor or time)")
            return
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

    def _mark(self, contract: str, backfill_since: int | None, reconcile_since: int) -> None:
        """Queue a recovery of `contract` (`backfill_since` None: only the reconcile is owed);
        windows of repeated marks merge (earliest wins)."""
        prev = self._dirty.get(contract)
        if prev is not None:
            if prev[0] is not None:
                backfill_since = prev[0] if backfill_since is None else min(prev[0],
                                                                            backfill_since)
            reconcile_since = min(prev[1], reconcile_since)
        self._dirty[contract] = (backfill_since, reconcile_since)
        owed = self._owed.get(contract)
        if owed is not None:   # merge with what is owed already (a recovery may be running)
            backfill_since = (owed[0] if backfill_since is None else backfill_since
                              if owed[0] is None else min(owed[0], backfill_since))
            reconcile_since = min(owed[1], reconcile_since)
        if self._owed.get(contract) != (backfill_since, reconcile_since):
            self._owed[contract] = (backfill_since, reconcile_since)
            self._save_owed()
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
                    # Done up to now; what was marked meanwhile is still owed.
                    if contract in self._dirty:
                        self._owed[contract] = self._dirty[contract]
                    else:
                        self._owed.pop(contract, None)
                    self._save_owed()
                    continue
                self.counters["recovery_failures"] += 1
                self._wake.clear()
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _recover(self, contract: str, since: int | None, reconcile_since: int) -> bool:
        """Backfill 1m from `since` to now, then have the aggregator re-publish the higher
        timeframes the database lacks from `reconcile_since`. Whatever step is not acknowledged
        is queued again (the caller backs off) and False returned: a refused or unanswered
        reconcile is retried until the aggregator confirms it, never counted as done.

        A long backfill is fetched in chunks of at most half the writer's queue, so a recovery
        can never overflow the queue it refills (a refused row would be fetched forever)."""
        s = self.settings
        end = self.clock.now_ms()
        horizon = end - int(s.store_recover_days * DAY_MS)
        lo = max(min(reconcile_since, (since if since is not None else end) - MINUTE_MS), horizon)
        if since is not None:
            start = max(since, horizon)
            chunk_end = min(end, start + max(1, self.writer.max_rows // 2) * MINUTE_MS)
            if start < chunk_end:
                try:
                    reply = await self.bus.request(
                        "feeds", "backfill", {"contract": contract, "tf": "1m", "start": start,
                                              "end": chunk_end},
                        timeout=s.store_request_timeout, attempts=1)
                except RequestTimeout:
                    reply = None
                if reply is None or not reply.ok:
                    log.warning("feeds %s backfill of %s; will retry", "did not answer"
                                if reply is None else f"refused ({reply.error})", contract)
                    self._mark(contract, since, reconcile_since)
                    return False
                log.info("backfilled %s from %d: %s", contract, start, reply.result)
                if chunk_end < end:   # the rest in the next round; reconcile once at the end
                    self._mark(contract, chunk_end, lo)
                    return True
        await asyncio.wrap_future(self.writer.barrier())
        try:
            reply = await self.bus.request(
                "aggregator", "reconcile", {"contract": contract, "start": lo, "end": end},
                timeout=s.store_request_timeout, attempts=1)
        except RequestTimeout:
            reply = None
        if reply is None or not reply.ok:
            self.counters["reconcile_failures"] += 1
            log.warning("aggregator %s reconcile of %s; will retry", "did not answer"
                        if reply is None else f"refused ({reply.error})", contract)
            self._mark(contract, None, lo)
            return False
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
        w = self.writer
        self.counters.update(w.counters)
        self.counters["queued"] = w.pending()
        if w.fault is not None and self.state is State.RUNNING:
            self.state = State.FAULTED
            self._alarm(True, f"cannot write {self.settings.database_path}: {w.fault}; "
                        f"{w.pending()} rows kept")
        elif w.fault is None and self.state is State.FAULTED:
            self.state = State.RUNNING
            self._alarm(False, "writes succeed again")
        if self._refused and w.fault is None and w.pending() <= w.max_rows // 2:
            refused, self._refused = self._refused, {}
            now = self.clock.now_ms()
            for contract, (m1, other) in refused.items():
                log.warning("refetching what a full queue refused for %s", contract)
                back = m1 if m1 is not None else now
                self._mark(contract, back, min(x for x in (m1, other, now) if x is not None))

    def _alarm(self, active: bool, text: str) -> None:
        (log.error if active else log.warning)("%s", text)
        self.bus.publish(topics.alarm(self.name), Alarm(name=self.name, code="store_write_failed",
                                                        active=active, text=text))

    async def on_stop(self) -> None:
        writer = getattr(self, "writer", None)
        if writer is None:
            return
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, writer.close, 1.2):
            # Exit non-zero: rows were accepted and are not on disk (the start-up recovery
            # fetches them again).
            raise RuntimeError(f"writer did not finish; {writer.pending()} rows unwritten")
        else:
            log.info("flushed; %d rows written in %d commits", writer.counters["rows_written"],
                     writer.counters["commits"])
            self._lock.release()


def _price(x: object, optional: bool = False) -> bool:
    """A storable price: a finite number >= 0 (None only where the field is optional)."""
    if x is None:
        return optional
    return isinstance(x, (int, float)) and math.isfinite(x) and x >= 0


def contract_problem(p: dict) -> str | None:  # type: ignore[type-arg]
    """Why contract metadata cannot be stored (it would overwrite the real row), or None:
    a tick size or value that is not a finite positive number, an empty id or symbol."""
    for key in ("tick_size", "tick_value"):
        x = p[key]
        if not (math.isfinite(x) and x > 0):
            return f"{key} {x!r} is not a positive number"
    if not p["contract"] or not p["symbol"]:
        return "empty contract id or symbol"
    return None


def cli(args: argparse.Namespace) -> int:
    """`chillly store`."""
    return run_service(Store)
