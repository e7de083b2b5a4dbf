"""The one place the market database is written: a writer thread with batched transactions.

The event loop only appends row tuples to in-memory queues (`add_*`, a few hundred ns each);
the writer thread wakes when a batch is full (`batch_rows`) or `flush_s` has passed since the
first unwritten row, and writes everything queued in ONE transaction with `executemany`. So a
burst costs one commit per batch instead of one per row, the loop never waits on the disk, and a
row is at most `flush_s` (plus one commit) away from being durable.

`barrier()` returns a future that resolves once everything queued before it is committed: the
store uses it to ask the aggregator to recompute from the database only after a backfill is
on disk. `close()` writes what is left and joins the thread (SIGTERM path).
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import threading
import time
from collections import deque
from typing import Any

log = logging.getLogger("store.writer")

#: Bars: insert, or replace a row only with a final over a partial, or a final of the same or a
#: newer revision over a final. An older revision or a partial never overwrites a final.
UPSERT_BAR = """
INSERT INTO bars (contract, tf, t, o, h, l, c, volume, final, rev, origin, updated_ms)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (contract, tf, t) DO UPDATE SET
    o = excluded.o, h = excluded.h, l = excluded.l, c = excluded.c, volume = excluded.volume,
    final = excluded.final, rev = excluded.rev, origin = excluded.origin,
    updated_ms = excluded.updated_ms
WHERE excluded.final > bars.final
   OR (excluded.final = bars.final AND excluded.rev >= bars.rev)
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

_KINDS = (("bars", UPSERT_BAR), ("contracts", UPSERT_CONTRACT), ("quotes", INSERT_QUOTE),
          ("trades", INSERT_TRADE))


class Writer:
    """Owns the writing connection and the thread that uses it."""

    def __init__(self, conn: sqlite3.Connection, batch_rows: int = 2000, flush_s: float = 0.2
                 ) -> None:
        self.conn = conn
        self.batch_rows = max(1, batch_rows)
        self.flush_s = flush_s
        self.queues: dict[str, deque[tuple[Any, ...]]] = {k: deque() for k, _ in _KINDS}
        self._barriers: deque[concurrent.futures.Future[None]] = deque()
        self._queued = 0
        self._wake = threading.Event()
        self._stop = False
        self.counters = {"rows_written": 0, "commits": 0, "write_errors": 0}
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="store-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    # ------------------------------------------------------------------ loop side (cheap)

    def add(self, kind: str, row: tuple[Any, ...]) -> None:
        self.queues[kind].append(row)
        self._queued += 1
        if self._queued >= self.batch_rows:
            self._wake.set()

    def barrier(self) -> "concurrent.futures.Future[None]":
        """A future done once everything queued so far is committed."""
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._barriers.append(fut)
        self._wake.set()
        return fut

    def pending(self) -> int:
        return sum(len(q) for q in self.queues.values())

    # ------------------------------------------------------------------ writer thread

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_s)
            self._wake.clear()
            stopping = self._stop
            try:
                self._write_all()
            except Exception as exc:  # keep the thread alive: the rows stay queued, retry
                self.counters["write_errors"] += 1
                self.error = exc
                log.exception("write failed; retrying")
                time.sleep(0.2)
                continue
            if stopping:
                return

    def _write_all(self) -> None:
        """Drain every queue in batches (one transaction per batch), then release barriers."""
        barriers = []
        while self._barriers:
            barriers.append(self._barriers.popleft())
        try:
            while True:
                batches = []
                n = 0
                for kind, sql in _KINDS:
                    q = self.queues[kind]
                    take = min(len(q), self.batch_rows)
                    if take:
                        # deque.popleft is atomic: the loop may keep appending meanwhile.
                        batches.append((kind, sql, [q.popleft() for _ in range(take)]))
                        n += take
                if not n:
                    break
                self._queued = max(0, self._queued - n)
                try:
                    self._commit(batches)
                except Exception:
                    # Put the rows back in front, in order, so nothing is lost on retry.
                    for kind, _, rows in reversed(batches):
                        self.queues[kind].extendleft(reversed(rows))
                    self._queued += n
                    raise
        except Exception:
            for b in reversed(barriers):
                self._barriers.appendleft(b)
            raise
        for b in barriers:
            if not b.done():
                b.set_result(None)

    def _commit(self, batches: list[tuple[str, str, list[tuple[Any, ...]]]]) -> None:
        conn = self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            for _, sql, rows in batches:
                conn.executemany(sql, rows)
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        self.counters["commits"] += 1
        self.counters["rows_written"] += sum(len(r) for _, _, r in batches)

    def close(self, timeout: float = 1.5) -> bool:
        """Write what is queued and stop the thread; False if it did not finish in time."""
        self._stop = True
        self._wake.set()
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if done:
            try:
                self.conn.close()
            except sqlite3.Error:
                pass
        return done
