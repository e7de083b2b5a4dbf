"""The `series` process: the last N bars per (contract, timeframe) in memory, served on the bus.

Strategies and tools ask for a window (`window {"contract", "tf", "last"}` on service "series")
instead of each opening the database: the answer includes the bar still forming (partial),
which the database does not hold. The cache is warmed from the database (read-only) at start,
then follows `bar.` and `hist.` live. A request for more than the cache holds is completed from
the database.

Merge rule per key (contract, tf, t): a final replaces a partial; a later reading replaces an
earlier one (the reading time is the envelope `ts`, or `updated_ms` for a row read from the
database; `rev` counts one publisher's publications and cannot order two sources, so a
corrected bar from a backfill replaces an early live final); a partial never replaces a final. Partials built from trade
prints (origin "trades") are not cached: they are a different construction of the same minute.
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
from chillly.process import Service, StartupError, run_service
from chillly.timeframes import TimeframeSettings, bar_problem, is_tf, row_problem
from store import queries
from store.queries import open_reader

log = logging.getLogger("series")

# A cached bar: [t, o, h, l, c, volume, final, rev, read_ms] (a window row + rev + reading time).
Row = list[Any]


class SeriesSettings(TimeframeSettings):
    series_size: int = Field(default=1000, ge=1)
    series_max_window: int = Field(default=20_000, ge=1)


class SeriesCache:
    """The pure part: per-key bounded maps of bars with the merge rule above."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.data: dict[tuple[str, str], dict[int, Row]] = {}

    def put(self, contract: str, tf: str, row: Row) -> bool:
        series = self.data.setdefault((contract, tf), {})
        t, final, read = row[0], row[6], row[8]
        old = series.get(t)
        if old is not None:
            if old[6] and not final:
                return False
            if read < old[8] and final == old[6]:
                return False
        series[t] = row
        if len(series) > self.size + self.size // 4 + 8:
            for k in sorted(series)[: len(series) - self.size]:
                del series[k]
        return True

    def window(self, contract: str, tf: str, last: int) -> list[Row]:
        series = self.data.get((contract, tf), {})
        return [series[t] for t in sorted(series)[-last:]] if last > 0 else []

    def contracts(self) -> list[str]:
        return sorted({c for c, _ in self.data})


class Series(Service):
    name = "series"
    settings_cls = SeriesSettings
    settings: SeriesSettings

    async def on_start(self) -> None:
        # Never serve another venue's bars (a sim history to a live strategy's warm-up).
        problem = await asyncio.to_thread(queries.refuse_other_venue,
                                          self.settings.database_path, self.settings.venue)
        if problem:
            raise StartupError(problem)
        # Serving from nothing must show (alarm no_database) until the store creates the file.
        self._db_watch = asyncio.ensure_future(self.alarm_while(
            lambda: queries.missing_database(self.settings.database_path), "no_database"))
        self.cache = SeriesCache(self.settings.series_size)
        self.counters.update({"bars_in": 0, "stale_ignored": 0, "windows": 0, "db_reads": 0,
                              "rejected": 0})
        self._future_ms = self.settings.future_ms
        self.bus.on(topics.bars(), self._on_bar)
        self.bus.on(topics.HISTORY, self._on_history)
        await self.bus.ready(timeout=10)   # our subscriptions reached the broker
        loop = asyncio.get_running_loop()
        warm = await loop.run_in_executor(None, self._read_warm)
        for contract, tf, bars in warm:
            for b, read in bars:
                self.cache.put(contract, tf, [b.t, b.o, b.h, b.l, b.c, b.volume, True, b.rev,
                                              read])
        log.info("warmed %d series from the database", len(warm))
        self.bus.serve("series", {"window": self._cmd_window})

    def _read_warm(self) -> list[tuple[str, str, list[Any]]]:
        try:
            conn = open_reader(self.settings.database_path)
        except sqlite3.OperationalError:
            return []
        try:
            now, future = self.clock.now_ms(), self._future_ms
            out = []
            for c, tf in queries.series_keys(conn):
                bars = queries.last_bars_read(conn, c, tf, self.settings.series_size,
                                              before=now + future + 1)
                # Rows stored before bars were checked: skip what would be rejected live.
                out.append((c, tf, [(b, r) for b, r in bars
                                    if bar_problem(b.body(), now, future) is None]))
            return out
        except sqlite3.Error as exc:
            log.warning("cannot warm up from the database: %s", exc)
            return []
        finally:
            conn.close()

    def _on_history(self, env: Envelope) -> None:
        p = env.payload
        if p["type"] != "bars":
            self._on_bar(env)
            return
        if p["tf"] != "1m":
            return  # venue bars of higher units are not ours (store.md)
        now = self.clock.now_ms()
        for row in p["rows"]:
            problem = row_problem(row, now, self._future_ms)
            if problem:
                self._reject(env.topic, problem)
                continue
            self.counters["bars_in"] += 1
            if not self.cache.put(p["contract"], "1m", [*row, True, 0, p["ts"]]):
                self.counters["stale_ignored"] += 1

    def _on_bar(self, env: Envelope) -> None:
        p = env.payload
        if p.get("origin") == "trades" or (p["tf"] != "1m" and p.get("origin") != "agg"):
            return  # trade-built partials; venue bars of higher units (store.md: not ours)
        problem = bar_problem(p, self.clock.now_ms(), self._future_ms)
        if problem:
            self._reject(env.topic, problem)
            return
        self.counters["bars_in"] += 1
        row = [p["t"], p["o"], p["h"], p["l"], p["c"], p["volume"], bool(p["final"]),
               p.get("rev", 0), p["ts"]]
        if not self.cache.put(p["contract"], p["tf"], row):
            self.counters["stale_ignored"] += 1

    def _reject(self, topic: str, problem: str) -> None:
        self.counters["rejected"] += 1
        n = self.counters["rejected"]
        if n <= 10 or n % 1000 == 0:
            log.warning("rejected a bar on %s: %s (%d so far)", topic, problem, n)

    def _db_window(self, text: str, tf: str, last: int, resolve_only: bool
                   ) -> tuple[str | None, list[Row]]:
        try:
            conn = open_reader(self.settings.database_path)
        except sqlite3.OperationalError:
            return queries.resolve_contract(None, text, self.cache.contracts()), []
        try:
            contract = queries.resolve_contract(conn, text, self.cache.contracts())
            if contract is None or resolve_only:
                return contract, []
            self.counters["db_reads"] += 1
            bars = queries.last_bars_read(conn, contract, tf, last)
            return contract, [[b.t, b.o, b.h, b.l, b.c, b.volume, True, b.rev, r]
                              for b, r in bars]
        finally:
            conn.close()

    async def _cmd_window(self, args: dict[str, Any]) -> dict[str, Any]:
        text, tf, last = args.get("contract"), args.get("tf", "1m"), args.get("last", 100)
        if not isinstance(text, str) or not text:
            raise CommandError("window needs a contract (id or symbol)")
        if not isinstance(tf, str) or not is_tf(tf):
            raise CommandError(f"bad timeframe {tf!r}")
        if not isinstance(last, int) or isinstance(last, bool) or last < 1:
            raise CommandError("last must be a positive integer")
        last = min(last, self.settings.series_max_window)
        self.counters["windows"] += 1
        loop = asyncio.get_running_loop()
        contract: str | None = text if (text, tf) in self.cache.data else None
        rows = self.cache.window(contract, tf, last) if contract else []
        if contract is None or len(rows) < last:
            # Resolve a symbol, and complete a short window, from the database.
            resolved, db_rows = await loop.run_in_executor(
                None, self._db_window, text, tf, last, False)
            if resolved is None:
                raise CommandError(queries.missing_database(self.settings.database_path)
                                   or f"unknown contract {text!r}")
            contract = resolved
            merged = {r[0]: r for r in db_rows}
            for r in self.cache.window(contract, tf, last):
                old = merged.get(r[0])
                if old is None or not old[6] or (r[6] and r[8] >= old[8]):
                    merged[r[0]] = r
            rows = [merged[t] for t in sorted(merged)[-last:]]
        return {"contract": contract, "tf": tf, "bars": [r[:7] for r in rows]}


def cli(args: argparse.Namespace) -> int:
    """`chillly series`."""
    return run_service(Series)
