"""The `aggregator` process: 5m..1d bars from final 1m bars (core: trading/aggregator.py).

- Input: final bars on `bar.1m.` (partials and `hist.` re-sends are ignored; the store's
  recovery asks us to `reconcile` from the database instead, see below).
- Output: `bar.<tf>.<contract>.` partials, finals and revisions, origin "agg"; unchanged finals
  re-sent for a reader that missed them go on `hist.<tf>.<contract>.`.
- Completion: by the bars themselves (the bucket's last trading minute, or a bar of a later
  bucket), else by this process's clock once AGGREGATOR_GRACE market seconds have passed the
  bucket's end. The clock is the shared one (CLOCK_SPEED), so accelerated runs agree.
- Warm-up: on start, for every contract with stored 1m bars, the last AGGREGATOR_WARMUP_DAYS of
  1m bars and the stored higher-timeframe bars are read from the database (read-only), so a
  restart mid-bucket continues the bucket, and buckets finished while we were down are
  published.
- Service "aggregator", command `reconcile {"contract", "start", "end"}`: recompute that window
  from the database and publish what the database lacks (the store calls it after a backfill).
  A sequence gap on our `bar.1m.` input triggers the same, after the store had time to commit.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sqlite3
from typing import Any

from pydantic import Field

from chillly.bus import CommandError
from chillly.codec import Envelope
from chillly import topics
from chillly.clock import DAY_MS, MINUTE_MS
from chillly.messages import Bar
from chillly.periodic import every
from chillly.process import Service, StartupError
from chillly.timeframes import BucketSpec, TimeframeSettings, bar_problem
from trading.aggregator import Aggregators
from feeds.aggregator_history import HeadFiller
from store import queries
from store.queries import open_reader

log = logging.getLogger("aggregator")

class AggregatorSettings(TimeframeSettings):
    """Session timeframes, session open, market hours and the future tolerance come from
    TimeframeSettings (shared with the feeds, the store and the series cache)."""

    aggregator_grace: float = Field(default=120.0, ge=0)  # market seconds after a bucket's end
    aggregator_retention_days: float = Field(default=3.0, gt=0)
    aggregator_warmup_days: float = Field(default=1.0, ge=0)

    aggregator_gap_delay: float = Field(default=1.0, ge=0)  # real s before a gap reconcile
    aggregator_request_timeout: float = Field(default=15.0, gt=0)  # s for a history backfill

    def specs(self) -> list[BucketSpec]:
        return [self.spec(tf) for tf in dict.fromkeys(self.aggregator_timeframes)]


class AggregatorProcess(Service):
    name = "aggregator"
    settings_cls = AggregatorSettings
    settings: AggregatorSettings

    async def on_start(self) -> None:
        s = self.settings
        # Never build bars from another venue's history (the store refuses it too).
        problem = await asyncio.to_thread(queries.refuse_other_venue, s.database_path, s.venue)
        if problem:
            raise StartupError(problem)
        # Warming up from nothing must show (alarm no_database) until the store creates it.
        self._db_watch = asyncio.ensure_future(self.alarm_while(
            lambda: queries.missing_database(s.database_path), "no_database"))
        self.specs = s.specs()
        # A bucket whose first minutes were not seen is completed from history (defect 18).
        self.heads = HeadFiller(self.bus, self.clock, s.aggregator_request_timeout,
                                self.counters, s.future_ms)
        self.aggs = Aggregators(self.specs, self._emit, self.clock,
                                grace_ms=int(s.aggregator_grace * 1000),
                                retention_ms=int(s.aggregator_retention_days * DAY_MS),
                                need_history=self.heads.want)
        self.heads.aggs = self.aggs
        self.counters.update({"bars_in": 0, "emitted": 0, "resent": 0, "reconciles": 0,
                              "rejected": 0})
        self._future_ms = s.future_ms
        self._held: list[Bar] | None = []     # live bars that arrive during warm-up
        self._last_seen: dict[str, int] = {}
        self._db_lock = asyncio.Lock()
        self._tasks: set[asyncio.Task[int]] = set()
        self.bus.on(topics.bars("1m"), self._on_bar)
        self.bus.serve("aggregator", {"reconcile": self._cmd_reconcile})
        self.bus.on_gap = self._on_gap
        await self.bus.ready(timeout=10)   # our subscriptions reached the broker
        await self._warm_up()
        held, self._held = self._held or [], None
        for bar in held:
            self.aggs.handle_bar(bar)

    # ------------------------------------------------------------------ live

    def _emit(self, bar: Bar, resend: bool) -> None:
        if resend:
            self.bus.publish(topics.history_bar(bar.tf, bar.contract), bar)
            self.counters["resent"] += 1
        else:
            self.bus.publish(topics.bar(bar.tf, bar.contract), bar)
            self.counters["emitted"] += 1

    def _on_bar(self, env: Envelope) -> None:
        if not env.payload["final"]:
            return
        problem = bar_problem(env.payload, self.clock.now_ms(), self._future_ms)
        if problem:
            self.counters["rejected"] += 1
            if self.counters["rejected"] <= 10:
                log.warning("rejected a 1m bar on %s: %s", env.topic, problem)
            return
        bar = env.message()
        assert isinstance(bar, Bar)
        self.counters["bars_in"] += 1
        if bar.t > self._last_seen.get(bar.contract, -1):
            self._last_seen[bar.contract] = bar.t
        if self._held is not None:
            self._held.append(bar)
        else:
            self.aggs.handle_bar(bar)

    def _on_gap(self, src: str, topic: str, first: int, last: int) -> None:
        if not topic.startswith(topics.bars("1m")):
            return
        contract = topic[len(topics.bars("1m")):].rstrip(".")
        since = self._last_seen.get(contract, self.clock.now_ms() - DAY_MS)
        log.warning("lost 1m bars of %s; reconciling from the database", contract)
        asyncio.get_running_loop().call_later(
            self.settings.aggregator_gap_delay, self._spawn_reconcile, contract, since)

    def _spawn_reconcile(self, contract: str, since: int) -> None:
        task = asyncio.ensure_future(self._reconcile(contract, since, self.clock.now_ms()))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        await every(0.25, self._tick, self.stopping)

    def _tick(self) -> None:
        self.aggs.on_time(self.clock.now_ms())
        self.counters.update(self.aggs.counters())

    # ------------------------------------------------------------------ database side

    def _read(self, contract: str | None, start: int | None, end: int
              ) -> list[tuple[str, int, list[Bar], dict[str, list[Bar]], bool]]:
        """(contract, start, 1m bars, stored bars per tf, whole) for one contract's window, or
        for every stored contract's warm-up window when `contract` is None. `whole`: the
        database holds 1m bars from before the window and owes no backfill, so the window has
        every bar of it (a bucket at its start is not missing its head)."""

        try:
            conn = open_reader(self.settings.database_path)
        except sqlite3.OperationalError:
            return []   # no database yet: nothing to warm up from
        now = self.clock.now_ms()
        before = now + self._future_ms + 1   # a stored future bar must not move the windows

        def good(bars: list[Bar]) -> list[Bar]:
            return [b for b in bars if bar_problem(b.body(), now, self._future_ms) is None]

        try:
            if contract is None:
                jobs = []
                st = self.settings
                for c in queries.known_contracts(conn):
                    last = queries.last_time(conn, c, "1m", before)
                    if last is None:
                        continue
                    # From the warm-up span, or from where a timeframe's stored rows stop if
                    # that is older (we were down longer), but not beyond the retention.
                    since = last - int(st.aggregator_warmup_days * DAY_MS)
                    for spec in self.specs:
                        t = queries.last_time(conn, c, spec.tf, before)
                        if t is not None:
                            since = min(since, t)
                    jobs.append((c, max(since, last - int(st.aggregator_retention_days * DAY_MS))))
            else:
                # Never further back than we keep buckets (behind the newest stored 1m bar).
                newest = queries.last_time(conn, contract, "1m", before) or 0
                horizon = newest - int(self.settings.aggregator_retention_days * DAY_MS)
                jobs = [(contract, max(start or 0, horizon))]
            try:
                owed = queries.recovery_owed(conn)
            except ValueError:
                owed = {}
            out = []
            for c, s in jobs:
                lo = min(spec.bounds(s)[0] for spec in self.specs)
                hi = min(end + MINUTE_MS, before)
                m1 = good(queries.bars_between(conn, c, "1m", lo, hi))
                stored = {spec.tf: good(queries.bars_between(conn, c, spec.tf, lo,
                                                             min(end + DAY_MS, before)))
                          for spec in self.specs}
                # Whole only while the store owes no 1m backfill for it: during a recovery the
                # database has a hole the store has not refilled yet.
                whole = (queries.last_time(conn, c, "1m", lo) is not None
                         and owed.get(c, (None, 0))[0] is None)
                out.append((c, s, m1, stored, whole))
            return out
        except sqlite3.Error as exc:
            log.warning("cannot read the database: %s", exc)
            return []
        finally:
            conn.close()

    def _apply(self, contract: str, start: int, m1: list[Bar], stored: dict[str, list[Bar]],
               whole: bool) -> None:
        now = self.clock.now_ms()
        for agg in self.aggs.for_contract(contract):
            lo = agg.spec.bounds(start)[0]
            ref = {b.t: b for b in stored.get(agg.spec.tf, []) if b.t >= lo}
            agg.load([b for b in m1 if b.t >= lo], now, reference=ref,
                     covered_from=lo if whole else None)

    async def _reconcile(self, contract: str | None, start: int | None, end: int) -> int:
        loop = asyncio.get_running_loop()
        async with self._db_lock:
            before = self.counters["emitted"] + self.counters["resent"]
            jobs = await loop.run_in_executor(None, self._read, contract, start, end)
            for c, s, m1, stored, whole in jobs:
                self._apply(c, s, m1, stored, whole)
            self.counters["reconciles"] += 1
            return self.counters["emitted"] + self.counters["resent"] - before

    async def _warm_up(self) -> None:
        n = await self._reconcile(None, None, self.clock.now_ms())
        log.info("warmed up from %s: %d bar(s) published", self.settings.database_path, n)

    async def _cmd_reconcile(self, args: dict[str, Any]) -> dict[str, Any]:
        contract = args.get("contract")
        start, end = args.get("start"), args.get("end", self.clock.now_ms())
        if not isinstance(contract, str) or not contract.startswith("CON."):
            raise CommandError("reconcile needs a full contract id")
        if not isinstance(start, int) or not isinstance(end, int) or start > end:
            raise CommandError("reconcile needs integer ms start <= end")
        n = await self._reconcile(contract, start, end)
        return {"contract": contract, "published": n}


    async def on_stop(self) -> None:
        heads = getattr(self, "heads", None)
        if heads is not None:
            heads.cancel()


def cli(args: argparse.Namespace) -> int:
    from chillly.process import run_service

    return run_service(AggregatorProcess)
