"""The one place the market database is written: a writer thread with batched transactions.

The event loop only appends row tuples to in-memory lists (`add`, a short lock, well under a
microsecond); the writer thread wakes when `batch_rows` rows are waiting or every `flush_s`,
takes everything queued at once and writes it in ONE transaction with `executemany`. So a
burst costs one commit per batch instead of one per row, the loop never waits on the disk, and a
row is at most `flush_s` (plus one commit) away from being durable.

`barrier()` returns a future that resolves once everything queued before it is committed: the
store uses it to ask the aggregator to recompute from the database only after a backfill is
on disk. `close()` writes what is left and joins the thread (SIGTERM path).

When the disk fails (full, read-only, I/O error) the writer keeps the rows, sets `fault`, and
retries with a back-off doubling up to `retry_max_s`; the queue is bounded by `max_rows`: once
full, `add` refuses (returns False) instead of growing without end, so the store knows exactly
what it did not take and can fetch it again when the fault clears. A committed write clears
`fault`. A single row the database refuses is left out alone (`rows_rejected`).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
from typing import Any

log = logging.getLogger("store.writer")

#: Bars: insert, or replace a row with a final over a partial, or with a later reading of the
#: same bar (`updated_ms` is the reading time: the envelope `ts` of the message that carried
#: it). `rev` counts one publisher's publications, not versions of the data, so it cannot order
#: readings from different sources: history from a backfill (rev 0) read after an early live
#: final (rev 2) is the venue's corrected bar and must win. An older reading or a partial never
#: overwrites a final.
UPSERT_BAR = """
INSERT INTO bars (contract, tf, t, o, h, l, c, volume, final, rev, origin, updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (contract, tf, t) DO UPDATE SET
    o = excluded.o, h = excluded.h, l = excluded.l, c = excluded.c, volume = excluded.volume,
    final = excluded.final, rev = excluded.rev, origin = excluded.origin,
    updated_ms = excluded.updated_ms
WHERE excluded.final > bars.final
   OR (excluded.final = bars.final AND excluded.updated_ms >= bars.updated_ms)
"""

UPSERT_CONTRACT = """
INSERT INTO contracts (contract, symbol, symbol_id, name, description, tick_size, tick_value,
                       active, updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (contract) DO UPDATE SET
    symbol = excluded.symbol, symbol_id = excluded.symbol_id, name = excluded.name,
    description = excluded.description, tick_size = excluded.tick_size,
    tick_value = excluded.tick_value, active = excluded.active, updated_ms = excluded.updated_ms
"""

INSERT_QUOTE = "INSERT INTO quotes (contract, t, bid, ask, last, volume) VALUES (?, ?, ?, ?, ?, ?)"
INSERT_TRADE = "INSERT INTO trades (contract, t, price, size, aggressor) VALUES (?, ?, ?, ?, ?)"

#: What one bad row raises (a value SQLite cannot bind or a constraint it breaks), as opposed to
#: what a bad disk raises (sqlite3.OperationalError: full, read-only, I/O error).
_ROW_ERRORS = (OverflowError, sqlite3.IntegrityError, sqlite3.InterfaceError,
               sqlite3.ProgrammingError, TypeError, ValueError)

#: The store's own durable notes (the recoveries it owes), committed with the rows they concern.
UPSERT_META = ("INSERT INTO meta (key, value) VALUES (?, ?) "
               "ON CONFLICT(key) DO UPDATE SET value=excluded.value")

_KINDS = (("bars", UPSERT_BAR), ("contracts", UPSERT_CONTRACT), ("quotes", INSERT_QUOTE),
          ("trades", INSERT_TRADE), ("meta", UPSERT_META))


class Writer:
    """Owns the writing connection and the thread that uses it."""

    def __init__(self, conn: sqlite3.Connection, batch_rows: int = 2000, flush_s: float = 0.2,
                 max_rows: int = 1_000_000, retry_max_s: float = 5.0) -> None:
        self.conn = conn
        self.batch_rows = max(1, batch_rows)
        self.flush_s = flush_s
        self.max_rows = max(1, max_rows)
        self.retry_max_s = max(flush_s, retry_max_s)
        self.fault: str | None = None     # why the last write failed, until one succeeds
        self._n = 0                       # rows queued or in flight, not committed yet
        self._stopped = threading.Event()
        # Loop side appends under a short lock; the writer swaps the lists out whole.
        self._lock = threading.Lock()
        self._buf: dict[str, list[tuple[Any, ...]]] = {k: [] for k, _ in _KINDS}
        self._barriers: list[concurrent.futures.Future[None]] = []
        self._wake = threading.Event()
        self._stop = False
        self.counters = {"rows_written": 0, "commits": 0, "write_errors": 0, "rows_rejected": 0,
                         "rows_refused": 0}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ------------------------------------------------------------------ loop side (cheap)

    def add(self, kind: str, row: tuple[Any, ...]) -> bool:
        """Queue one row; False (refused, counted) when the queue is full."""
        with self._lock:
            if self._n >= self.max_rows:
                self.counters["rows_refused"] += 1
                return False
            self._n += 1
            buf = self._buf[kind]
            buf.append(row)
            n = len(buf)
        if n == self.batch_rows:
            self._wake.set()
        return True

    def add_many(self, kind: str, rows: list[tuple[Any, ...]]) -> bool:
        """Queue rows all together, or refuse them all (False) when they do not fit."""
        with self._lock:
            if self._n and self._n + len(rows) > self.max_rows:
                self.counters["rows_refused"] += len(rows)
                return False
            self._n += len(rows)
            buf = self._buf[kind]
            before = len(buf)
            buf.extend(rows)
            n = len(buf)
        if before < self.batch_rows <= n:
            self._wake.set()
        return True

    def barrier(self) -> "concurrent.futures.Future[None]":
        """A future done once everything queued so far is committed."""
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        with self._lock:
            self._barriers.append(fut)
        self._wake.set()
        return fut

    def pending(self) -> int:
        """Rows accepted and not committed yet."""
        return self._n

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        backoff = self.flush_s
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            stopping = self._stop
            try:
                self._write_all()
            except Exception as exc:  # keep the thread alive: the rows stay queued, retry
                self.counters["write_errors"] += 1
                self.error = exc
                if self.fault is None:
                    log.error("write failed, %d rows kept; retrying with back-off: %s",
                              self._n, exc)
                self.fault = f"{type(exc).__name__}: {exc}"
                if stopping:
                    return
                self._stopped.wait(backoff)    # close() cuts the wait short
                backoff = min(backoff * 2, self.retry_max_s)
                continue
            if self.fault is not None:
                log.warning("writes succeed again after %d failures",
                            self.counters["write_errors"])
                self.fault = None
            backoff = self.flush_s
            if stopping:
                return

    def _write_all(self) -> None:
        """Take everything queued and write it in one transaction, then release barriers."""
        with self._lock:
            bufs, self._buf = self._buf, {k: [] for k, _ in _KINDS}
            barriers, self._barriers = self._barriers, []
        n = sum(len(rows) for rows in bufs.values())
        if n:
            try:
                self._commit([(sql, bufs[kind]) for kind, sql in _KINDS if bufs[kind]])
            except Exception:
                # Put the rows back in front, in order, so nothing is lost on retry.
                with self._lock:
                    for kind in bufs:
                        self._buf[kind] = bufs[kind] + self._buf[kind]
                    self._barriers = barriers + self._barriers
                raise
        for b in barriers:
            if not b.done():
                b.set_result(None)

    def _commit(self, batches: list[tuple[str, list[tuple[Any, ...]]]]) -> None:
        try:
            self._transaction(batches, one_by_one=False)
        except _ROW_ERRORS:
            # One row the database cannot take (a value the checks missed) must not block the
            # others: write the batch again row by row and leave out only the rows that fail.
            self._transaction(batches, one_by_one=True)

    def _transaction(self, batches: list[tuple[str, list[tuple[Any, ...]]]], one_by_one: bool
                     ) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        rejected = 0
        try:
            for sql, rows in batches:
                if not one_by_one:
                    conn.executemany(sql, rows)
                    continue
                for row in rows:
                    try:
                        conn.execute(sql, row)
                    except _ROW_ERRORS as exc:
                        rejected += 1
                        if self.counters["rows_rejected"] + rejected <= 10:
                            log.warning("row rejected by the database (%s): %r", exc, row)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        self.counters["commits"] += 1
        with self._lock:
            self._n -= sum(len(r) for _, r in batches)
        self.counters["rows_rejected"] += rejected
        self.counters["rows_written"] += sum(len(r) for _, r in batches) - rejected

    def close(self, timeout: float = 1.5) -> bool:
        """Write what is queued and stop the thread; False if it did not finish in time."""
        self._stop = True
        self._wake.set()
        self._stopped.set()
        self._thread.join(timeout)
        done = not self._thread.is_alive() and self._n == 0
        if done:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
        return done
