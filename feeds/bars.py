"""The `feed-bars` process: polled 1m bars, exactly one final per minute, and history on demand.

- Follows the subscription set (`subs.set.`; asks the subscriptions service at start).
- Polls History/retrieveBars for each subscribed contract (1 minute, partial bar included) every
  FEED_POLL_INTERVAL market seconds, aligned to the minute plus FEED_FINAL_DELAY so a minute's
  final goes out right after it closes. `finals.FinalTracker` decides what to publish on
  `bar.1m.<id>.`; the high-water mark of every contract is saved in RUN_DIR/<venue>/feed-bars-hwm.json
  after each batch of finals, so a restart resumes exactly where the stream stopped.
- Publishes `ClockTick` on `clock.<tf>.` when a bucket of a FEED_CLOCK_TIMEFRAMES timeframe
  closes in market time (only for buckets in which the market was open).
- Serves `feeds.backfill` (final bars on `hist.<tf>.<id>.`, reply with count and range) and the
  `chillly backfill` tool.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Callable
from typing import Any

from chillly.anchor import refuse_earlier
from chillly.bus import CommandError
from chillly import topics
from chillly.calendar import is_market_open
from chillly.clock import DAY_MS, MINUTE_MS, ms_to_iso
from chillly.messages import BarBatch, ClockTick
from chillly.process import StartupError, run_service
from chillly.timeframes import BucketSpec, tf_arg, tf_ms
from feeds.venue_service import VenueService
from topstepx.client import tf_to_unit
from topstepx.contracts import ContractNotFound, ContractResolver, is_contract_id
from topstepx.errors import VenueError
from feeds.finals import FinalTracker, minute_floor
from feeds.settings import FeedSettings, market_hours
from feeds.state import JsonState

log = logging.getLogger("feeds.bars")

#: Bars per `BarBatch` on `hist.`: about 25 KB of msgpack, far below any frame limit.
HISTORY_BATCH = 500

SERVICE = "feeds"
HWM_FILE = "feed-bars-hwm.json"
UNREACHABLE_AFTER = 3  # poll intervals (market time) without a good poll round before the alarm


def closing_buckets(tfs: list[str], minute_t: int,
                    market_open: Callable[[int], bool] = is_market_open,
                    spec_of: Callable[[str], BucketSpec] = BucketSpec.of
                    ) -> list[tuple[str, int]]:
    """(tf, bucket open) of every bucket whose last trading minute is the minute opening at
    `minute_t`, for buckets in which the market was open at some minute we can see cheaply (its
    first or its last minute). The tick goes out when the bucket is over for trading, as its
    final does: a daily bucket at the 16:00 CT halt (12:00 CT on an early close), not at the
    next session's open. `spec_of` gives each timeframe's buckets: the process passes
    `settings.spec`, so ticks follow AGGREGATOR_SESSION_OPEN and FEED_MARKET_HOURS as the
    aggregator's bars do."""
    out = []
    for tf in tfs:
        if tf == "1m":
            start = minute_t
        else:
            spec = spec_of(tf)
            start, b_end = spec.bounds(minute_t)
            if spec.last_minute(start, b_end) != minute_t:
                continue
        if market_open(start) or market_open(minute_t):
            out.append((tf, start))
    return out


class FeedBarsService(VenueService):
    name = "feed-bars"
    settings_cls = FeedSettings

    async def on_start(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        specs: dict[str, BucketSpec] = {}
        for tf in s.feed_clock_timeframes:
            try:
                if tf != "1m":
                    specs[tf] = s.spec(tf)
            except ValueError as exc:
                raise StartupError(f"FEED_CLOCK_TIMEFRAMES: {exc}") from None
        self._spec = specs.__getitem__
        self.connect_venue()
        self.resolver = ContractResolver(self.client)
        self.hwm_state = JsonState(s.venue_run_dir / HWM_FILE)
        try:
            saved = self.hwm_state.load({}) or {}
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        self.hwms: dict[str, int] = {k: int(v) for k, v in saved.items() if isinstance(v, int)}
        # A mark names a minute whose final went out, so that minute had closed.
        refuse_earlier(f"the feed marks in {self.hwm_state.path}",
                       max(self.hwms.values()) + MINUTE_MS if self.hwms else None,
                       self.clock.now_ms())
        self.trackers: dict[str, FinalTracker] = {}
        self.contracts: list[str] = []
        self.have_set = asyncio.Event()
        self.last_ok_ms = self.clock.now_ms()
        self.alarmed = False
        self.counters.update({"polls": 0, "poll_failures": 0, "finals": 0, "partials": 0,
                              "clock_ticks": 0, "backfills": 0, "backfill_bars": 0,
                              "corrections": 0,
                              "sets": 0})
        self.bus.on(topics.subscription_set(), self._on_set)
        self.bus.serve(SERVICE, {"backfill": self.cmd_backfill})

    # ------------------------------------------------------------------ the subscription set

    def _on_set(self, env: Any) -> None:
        contracts = self.set_of(env)
        if contracts is not None:
            self.apply_set(contracts)

    def apply_set(self, contracts: list[str]) -> None:
        self.counters["sets"] += 1
        if contracts != self.contracts:
            log.info("following %s", ", ".join(contracts) or "nothing")
        self.contracts = list(contracts)
        for cid in contracts:
            if cid not in self.trackers:
                s: FeedSettings = self.settings  # type: ignore[assignment]
                self.trackers[cid] = FinalTracker(cid, self.hwms.get(cid),
                                                  int(s.feed_revise_window * 1000))
        self.have_set.set()

    async def _ask_set(self) -> None:
        """At start: ask the subscriptions service for the set (until it or a broadcast comes)."""
        contracts = await self.ask_subscription_set(self.have_set)
        if contracts is not None:
            self.apply_set(contracts)

    # ------------------------------------------------------------------ polling

    async def run(self) -> None:
        await asyncio.gather(self._ask_set(), self._poll_loop(), self._clock_loop(),
                             self.client.auth.keep_fresh())

    def next_poll_ms(self, now: int) -> int:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        interval = int(s.feed_poll_interval * 1000)
        delay = int(s.feed_final_delay * 1000)
        base = now - delay
        return base - base % interval + interval + delay

    async def _poll_loop(self) -> None:
        await self.have_set.wait()
        while True:
            await self.poll_all()
            await self.clock.sleep_until(self.next_poll_ms(self.clock.now_ms()))

    async def poll_all(self) -> None:
        contracts = list(self.contracts)
        if not contracts:
            return
        results = await asyncio.gather(*(self.poll(cid) for cid in contracts))
        now = self.clock.now_ms()
        if all(results):
            self.last_ok_ms = now
            if self.alarmed:
                self._alarm(False, "venue answers again")
        else:
            s: FeedSettings = self.settings  # type: ignore[assignment]
            quiet = now - self.last_ok_ms
            if quiet >= UNREACHABLE_AFTER * s.feed_poll_interval * 1000 and not self.alarmed:
                self._alarm(True, f"no good poll for {quiet / 1000:.0f}s of market time")

    def _alarm(self, active: bool, text: str) -> None:
        self.alarmed = active
        self.alarm("venue_unreachable", active, text)

    async def poll(self, cid: str) -> bool:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        tracker = self.trackers[cid]
        request_ms = self.clock.now_ms()
        start = tracker.start_ms(request_ms, s.feed_initial_lookback_min,
                                 int(s.feed_catchup_max_days * DAY_MS))
        end = minute_floor(request_ms) + 2 * MINUTE_MS
        self.counters["polls"] += 1
        try:
            bars = await self.client.bars_between(cid, start, end, include_partial=True)
        except VenueError as exc:
            self.counters["poll_failures"] += 1
            log.warning("poll %s failed: %s", cid, exc)
            return False
        if cid not in self.trackers or self.trackers[cid] is not tracker:
            return True  # unsubscribed meanwhile
        before = tracker.hwm
        out = tracker.on_bars(bars, request_ms, int(s.feed_final_delay * 1000))
        try:
            if tracker.hwm is not None and tracker.hwm != before:
                # Write-ahead: the mark is on disk before its finals go out, so a restart never
                # publishes a final twice. A crash in the microseconds between the two leaves
                # at most a hole, which consumers heal: a publisher restart makes the store
                # backfill from its newest stored bar (store/process.py).
                self.hwms[cid] = tracker.hwm
                await self.hwm_state.save(dict(self.hwms))
        finally:
            # Published even when a SIGTERM cancels the save (which itself completes).
            topic = topics.bar("1m", cid)
            for bar in out:
                self.bus.publish(topic, bar)
                self.counters["finals" if bar.final else "partials"] += 1
            fixes = tracker.take_corrections()
            if fixes:
                # The venue revised finals already published: history, not a second final.
                self.bus.publish(topics.history_bar("1m", cid), BarBatch(
                    contract=cid, tf="1m", origin="poll",
                    rows=[[b.t, b.o, b.h, b.l, b.c, b.volume] for b in fixes]))
                self.counters["corrections"] += len(fixes)
        return True

    async def on_stop(self) -> None:
        # The marks in memory are the truth (set before their save was awaited): a SIGTERM that
        # cancelled a poll mid-save must not leave an older mark on disk, or the restart would
        # publish that minute's final a second time.
        if hasattr(self, "hwm_state"):
            await self.hwm_state.save(dict(self.hwms))
        await super().on_stop()

    # ------------------------------------------------------------------ clock ticks

    async def _clock_loop(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        next_end = minute_floor(self.clock.now_ms()) + MINUTE_MS
        while True:
            await self.clock.sleep_until(next_end)
            now = self.clock.now_ms()
            if now - next_end > 5 * MINUTE_MS:  # we were paused: do not replay a backlog
                next_end = minute_floor(now)
            minute_t = next_end - MINUTE_MS
            for tf, start in closing_buckets(s.feed_clock_timeframes, minute_t,
                                             market_hours(s), self._spec):
                self.bus.publish(topics.clock_tick(tf), ClockTick(tf=tf, t=start))
                self.counters["clock_ticks"] += 1
            next_end += MINUTE_MS

    # ------------------------------------------------------------------ backfill

    async def cmd_backfill(self, args: dict[str, Any]) -> dict[str, Any]:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        text = args.get("contract")
        if not isinstance(text, str) or not text.strip():
            raise CommandError('expected {"contract": id or symbol, "days": N} or start/end ms')
        tf = args.get("tf", "1m")
        try:
            unit, number = tf_to_unit(tf) if isinstance(tf, str) else (0, 0)
            length = tf_ms(tf)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        if not unit:
            raise CommandError("tf: expected a string like 1m, 5m, 1h, 1d")
        now = self.clock.now_ms()
        if "days" in args:
            days = args["days"]
            if isinstance(days, bool) or not isinstance(days, (int, float)) or days <= 0:
                raise CommandError("days: expected a number > 0")
            if days > s.feed_backfill_max_days:
                raise CommandError(f"days: at most {s.feed_backfill_max_days:g}")
            start, end = now - int(days * DAY_MS), now
        else:
            start_arg, end_arg = args.get("start"), args.get("end", now)
            if (not isinstance(start_arg, int) or isinstance(start_arg, bool)
                    or not isinstance(end_arg, int) or isinstance(end_arg, bool)):
                raise CommandError("start/end: expected epoch ms integers (or give days)")
            start, end = start_arg, end_arg
            if end <= start:
                raise CommandError("end must be after start")
        try:
            contract = (text.strip() if is_contract_id(text.strip())
                        else (await self.resolver.resolve(text)).id)
            bars = await self.client.bars_between(contract, start, end, unit=unit,
                                                  unit_number=number, include_partial=False)
        except ContractNotFound as exc:
            raise CommandError(str(exc)) from None
        except VenueError as exc:
            raise CommandError(f"venue: {exc}") from None
        topic = topics.history_bar(tf, contract)
        # Only finals are history (a bar still forming is left out); sent in batches.
        rows = [[vb.t, vb.o, vb.h, vb.l, vb.c, vb.v] for vb in bars if vb.t + length <= now]
        published = [r[0] for r in rows]
        for i in range(0, len(rows), HISTORY_BATCH):
            self.bus.publish(topic, BarBatch(contract=contract, tf=tf,
                                             rows=rows[i:i + HISTORY_BATCH], origin="poll"))
            await asyncio.sleep(0)
        self.counters["backfills"] += 1
        self.counters["backfill_bars"] += len(published)
        log.info("backfill %s %s: %d bars", contract, tf, len(published))
        return {"contract": contract, "tf": tf, "count": len(published),
                "first": published[0] if published else None,
                "last": published[-1] if published else None}


def cli(args: argparse.Namespace) -> int:
    return run_service(FeedBarsService)


# ---------------------------------------------------------------------- `chillly backfill`


def add_backfill_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("contract", help="a symbol (ES) or a contract id (CON.F.US.EP.Z26)")
    p.add_argument("--days", type=float, default=1.0, help="how many days back (default 1)")
    p.add_argument("--tf", default="1m", type=tf_arg,
                   help="timeframe: 1m (default), 5m, 1h, 1d ...")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the reply")


def cli_backfill(ns: argparse.Namespace) -> int:
    from chillly.oneshot import ask_sync

    ok, result, error = ask_sync(
        SERVICE, "backfill", {"contract": ns.contract, "days": ns.days, "tf": ns.tf},
        timeout=ns.timeout)
    if not ok:
        print(f"chillly backfill: {error}", file=sys.stderr)
        return 1
    first, last = result.get("first"), result.get("last")
    span = f"{ms_to_iso(first)} .. {ms_to_iso(last)}" if first is not None else "no bars"
    print(f"{result.get('contract')} {result.get('tf')}: {result.get('count')} bars, {span}")
    return 0
