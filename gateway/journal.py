"""The order journal: the gateway's own SQLite file (GATEWAY_DATABASE_PATH, docs/schema.md).

Why it exists: an order's intent is committed here BEFORE the venue is asked to place it, so
after a time-out or a crash the gateway knows what it may have sent and resolves it by
reconciliation (by customTag), never by sending again. Every venue status change and every fill
is appended too, so the journal alone tells an order's story.

Durability: WAL with `synchronous=FULL` (each commit is fsynced). All SQLite work runs on one
writer thread owning the connection, so the event loop never waits on a disk; callers `await`
their write's commit (group commit: jobs queued together share one transaction and one fsync).
One gateway per file: the caller holds the file's lock (chillly.singleton when available).

Background writes (venue order updates, fills, resolved intents: `write_soon`) are not awaited
by the hub's path, so a disk that refuses them must not lose them: they wait in order in
memory and are written, in that order, as soon as the disk takes writes again, without a
restart. A disk error (sqlite3.OperationalError) in any job fails its whole batch, so no later
write can land before an earlier one that failed (an older order row would overwrite a newer).
"""

from __future__ import annotations

import asyncio
import json
import logging
import queue
import sqlite3
import threading
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, TypeVar

from chillly.messages import RiskEvent
from gateway.migrations import migrate
from trading.orders.records import FillRecord, IntentRecord, OrderRecord

T = TypeVar("T")
Job = Callable[[sqlite3.Connection], Any]
log = logging.getLogger("gateway.journal")

#: Real seconds between attempts at background writes the disk refused.
RETRY_S = 1.0

INTENT_COLUMNS = ("client_id", "custom_tag", "rid", "owner", "account", "contract", "side", "size",
                  "order_type", "limit_price", "stop_price", "trail_ticks", "sl_ticks",
                  "tp_ticks", "parent_id", "managed", "created_ms", "status", "order_id", "code", "message",
                  "resolved_ms")
ORDER_COLUMNS = ("order_id", "account", "client_id", "owner", "contract", "side", "size",
                 "order_type", "status", "state", "fill_volume", "filled_price", "limit_price",
                 "stop_price", "custom_tag", "parent_id", "created_ms", "updated_ms")
FILL_COLUMNS = ("trade_id", "account", "order_id", "owner", "client_id", "contract", "side",
                "size", "price", "fees", "pnl", "vt", "at_ms")



# ---------------------------------------------------------------------- rows <-> records
# The journal's rows are its own business: the rest of the gateway sees only the records.

def intent_row(rec: IntentRecord) -> dict[str, Any]:
    row = {c: getattr(rec, c) for c in INTENT_COLUMNS}
    row["managed"] = int(rec.managed)
    return row


def intent_of(row: dict[str, Any]) -> IntentRecord:
    known = {f.name for f in fields(IntentRecord)}
    rec = IntentRecord(**{k: v for k, v in row.items() if k in known})
    rec.managed = bool(rec.managed)
    return rec


def order_row(order: OrderRecord) -> dict[str, Any]:
    """The order as it is now (the record goes on changing after the call)."""
    return {c: getattr(order, c) for c in ORDER_COLUMNS}


def order_of(row: dict[str, Any]) -> OrderRecord:
    return OrderRecord(**{k: row[k] for k in ORDER_COLUMNS if k in row})


def fill_row(fill: FillRecord) -> dict[str, Any]:
    return {c: getattr(fill, c) for c in FILL_COLUMNS}


def fill_of(row: dict[str, Any]) -> FillRecord:
    return FillRecord(**{k: row[k] for k in FILL_COLUMNS if k in row})


@dataclass
class Loaded:
    """What a starting gateway reads back."""

    intents: list[IntentRecord]
    orders: list[OrderRecord]
    fills: list[FillRecord]
    version: int


class Journal:
    """The journal file and its one writer thread.

    Group commit: the writer takes every job queued since its last commit and runs them in one
    transaction (each in its own savepoint, so one failing job fails alone), then fsyncs once
    and wakes every caller. A lone intent still gets its own fsync before its REST call; under
    load many intents and venue events share one, which is what the throughput rests on.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._conn: sqlite3.Connection | None = None
        self.writes = 0
        self.commits = 0
        self.failures = 0                 # writes the disk refused
        self.fault: str | None = None     # set while writes fail
        self.on_fault: Callable[[str | None], None] | None = None
        self._later: list[Job] = []       # background writes not on disk yet, oldest first
        self._later_wake: asyncio.Event | None = None
        self._later_task: asyncio.Task[None] | None = None
        self.later_failed = 0             # background writes dropped (not a disk error)

    # ------------------------------------------------------------------ the writer thread

    def _writer(self) -> None:
        while True:
            batch = [self._q.get()]
            while True:
                try:
                    batch.append(self._q.get_nowait())
                except queue.Empty:
                    break
            stop = any(item is None for item in batch)
            jobs = [item for item in batch if item is not None]
            if jobs:
                self._run_batch(jobs)
            if stop:
                return

    def _run_batch(self, jobs: list[tuple[Callable[[sqlite3.Connection], Any],
                                          asyncio.Future[Any], asyncio.AbstractEventLoop, bool]]
                   ) -> None:
        conn = self._conn
        results: list[tuple[asyncio.Future[Any], asyncio.AbstractEventLoop, Any,
                            BaseException | None]] = []
        if conn is None:
            closed: BaseException = RuntimeError("journal not open")
            for _fn, fut, loop, _w in jobs:
                results.append((fut, loop, None, closed))
        else:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for fn, fut, loop, _write in jobs:
                    conn.execute("SAVEPOINT job")
                    try:
                        out = fn(conn)
                        conn.execute("RELEASE job")
                        results.append((fut, loop, out, None))
                    except sqlite3.OperationalError:
                        raise             # the disk, not this job: the whole batch fails
                    except Exception as exc:
                        conn.execute("ROLLBACK TO job")
                        conn.execute("RELEASE job")
                        results.append((fut, loop, None, exc))
                conn.execute("COMMIT")
                self.commits += 1
                self.writes += sum(1 for j in jobs if j[3])
            except Exception as exc:  # the commit itself failed (disk full...): all fail
                try:
                    conn.execute("ROLLBACK")
                except Exception:
                    pass
                results = [(fut, loop, None, exc) for _fn, fut, loop, _w in jobs]
        for fut, loop, out, err in results:
            loop.call_soon_threadsafe(_settle, fut, out, err)

    async def _submit(self, fn: Callable[[sqlite3.Connection], T], write: bool) -> T:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[T] = loop.create_future()
        self._q.put((fn, fut, loop, write))
        return await fut

    async def _run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return await self._submit(fn, False)

    async def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        try:
            out = await self._submit(fn, True)
        except sqlite3.OperationalError as exc:   # full, read-only, I/O error: not our data
            self._set_fault(str(exc))
            raise
        if self.fault is not None:
            self._set_fault(None)
        return out

    def _set_fault(self, fault: str | None) -> None:
        """Why the journal cannot be written (None: it can); `on_fault` hears each change."""
        changed = fault != self.fault
        self.fault = fault
        if fault is not None:
            self.failures += 1
        if changed and self.on_fault is not None:
            self.on_fault(fault)

    async def probe(self) -> None:
        """One tiny real write (the schema version rewritten as it is): does the disk take
        writes again? Raises sqlite3.OperationalError if not."""
        def job(conn: sqlite3.Connection) -> None:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            conn.execute(f"PRAGMA user_version = {int(version)}")
        await self._tx(job)

    async def open(self) -> Loaded:
        """Open (creating and migrating as needed) and read back what the journal holds."""
        def connect() -> None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=5000")
            migrate(conn)
            self._conn = conn
        await asyncio.to_thread(connect)
        self._thread = threading.Thread(target=self._writer, name="journal", daemon=True)
        self._thread.start()
        self._later_wake = asyncio.Event()
        self._later_task = asyncio.get_running_loop().create_task(self._write_later(),
                                                                   name="journal-later")

        def load(conn: sqlite3.Connection) -> Loaded:
            rows = lambda q: [dict(r) for r in conn.execute(q)]  # noqa: E731
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            return Loaded([intent_of(r) for r in rows("SELECT * FROM intents ORDER BY created_ms")],
                          [order_of(r) for r in rows("SELECT * FROM orders")],
                          [fill_of(r) for r in rows("SELECT * FROM fills ORDER BY trade_id")],
                          version)
        return await self._run(load)

    async def close(self, wait_s: float = 5.0) -> None:
        """Finish every queued write (background ones for up to `wait_s` while the disk
        refuses them; what is still not written then is logged), then close."""
        if self._later_task is not None:
            deadline = asyncio.get_running_loop().time() + wait_s
            while self._later and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.05)
            if self._later:
                log.error("%d background journal write(s) not on disk at close (the restart "
                          "reconciles them from the venue)", len(self._later))
            self._later_task.cancel()
            self._later_task = None
        if self._thread is not None:
            self._q.put(None)
            await asyncio.to_thread(self._thread.join, 5.0)
            self._thread = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    # ------------------------------------------------------------------ background writes

    @property
    def backlog(self) -> int:
        """Background writes waiting for the disk."""
        return len(self._later)

    def write_soon(self, job: Job) -> None:
        """Queue a background write: written in order, retried while the disk refuses it."""
        self._later.append(job)
        if self._later_wake is not None:
            self._later_wake.set()

    async def _write_later(self) -> None:
        assert self._later_wake is not None
        while True:
            await self._later_wake.wait()
            self._later_wake.clear()
            while self._later:
                jobs = list(self._later)
                results = await asyncio.gather(*(self._submit(j, True) for j in jobs),
                                               return_exceptions=True)
                disk = next((r for r in results if isinstance(r, sqlite3.OperationalError)),
                            None)
                if disk is not None:      # the whole batch failed: keep all, try again later
                    self._set_fault(str(disk))
                    await asyncio.sleep(RETRY_S)
                    continue
                for r in results:
                    if isinstance(r, BaseException):
                        self.later_failed += 1
                        log.error("background journal write dropped: %r", r)
                del self._later[:len(jobs)]
                if self.fault is not None:
                    self._set_fault(None)

    # ------------------------------------------------------------------ writes

    async def add_intent(self, rec: IntentRecord) -> None:
        """Commit an intent (status `sending`) before the venue is asked. Raises
        sqlite3.IntegrityError for a client id already journaled."""
        row = intent_row(rec)
        cols = list(row)
        sql = (f"INSERT INTO intents ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        await self._tx(lambda c: c.execute(sql, [row[k] for k in cols]))

    async def resolve_intent(self, rec: IntentRecord) -> None:
        """Write an intent's outcome (IntentRecord.resolve) and wait for its commit."""
        await self._tx(self.resolve_job(rec))

    def resolve_soon(self, rec: IntentRecord) -> None:
        """Write an intent's outcome in the background (a crash before the commit leaves it
        `sending`, which the restart resolves by customTag: the same outcome)."""
        self.write_soon(self.resolve_job(rec))

    @staticmethod
    def resolve_job(rec: IntentRecord) -> Job:
        args = (rec.status, rec.order_id, rec.code, rec.message, rec.resolved_ms, rec.client_id)
        return lambda c: c.execute(
            "UPDATE intents SET status=?, order_id=COALESCE(?, order_id), code=?, message=?, "
            "resolved_ms=? WHERE client_id=?", args)

    async def retag_intent(self, client_id: str, custom_tag: str, created_ms: int) -> None:
        """The venue refused the intent's brackets outright (nothing working): it is sent again
        without them under a new tag, managed by the gateway."""
        await self._tx(lambda c: c.execute(
            "UPDATE intents SET custom_tag=?, created_ms=?, status='sending', managed=1, "
            "order_id=NULL, code=NULL, message=NULL, resolved_ms=NULL WHERE client_id=?",
            (custom_tag, created_ms, client_id)))

    async def record_order(self, order: OrderRecord, at_ms: int, source: str,
                           changed_state: bool) -> None:
        await self._tx(self.order_job(order, at_ms, source, changed_state))

    @staticmethod
    def order_job(order: OrderRecord, at_ms: int, source: str, changed_state: bool) -> Job:
        """Upsert an order's current row; append an event when its status/fill changed."""
        row = order_row(order)   # as it is now: the record goes on changing
        cols = list(row)
        updates = ", ".join(f"{c}=excluded.{c}" for c in cols if c != "order_id")
        sql = (f"INSERT INTO orders ({', '.join(cols)}) VALUES ({', '.join('?' for _ in cols)}) "
               f"ON CONFLICT(order_id) DO UPDATE SET {updates}")

        def job(c: sqlite3.Connection) -> None:
            c.execute(sql, [row[k] for k in cols])
            if changed_state:
                c.execute("INSERT INTO order_events (order_id, at_ms, status, state, fill_volume,"
                          " filled_price, source) VALUES (?, ?, ?, ?, ?, ?, ?)",
                          (row["order_id"], at_ms, row["status"], row["state"],
                           row.get("fill_volume", 0), row.get("filled_price"), source))
        return job

    async def add_fill(self, fill: FillRecord) -> bool:
        """Append a fill; False when its trade id is already journaled."""
        return bool(await self._tx(self.fill_job(fill)))

    @staticmethod
    def fill_job(fill: FillRecord) -> Job:
        row = fill_row(fill)
        cols = list(row)
        values = [row[k] for k in cols]
        sql = (f"INSERT OR IGNORE INTO fills ({', '.join(cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        return lambda c: c.execute(sql, values).rowcount == 1

    @staticmethod
    def fill_owner_job(fill: FillRecord) -> Job:
        """A fill taken before its order was known, now its order's owner's."""
        values = (fill.owner, fill.client_id, fill.trade_id)
        return lambda c: c.execute("UPDATE fills SET owner = ?, client_id = ? "
                                   "WHERE trade_id = ?", values).rowcount == 1

    async def add_refusal(self, msg: RiskEvent, at_ms: int) -> None:
        """Commit a refusal of the risk gate before its sender is answered; a disk that refuses
        it now gets it as a background write, retried (the refusal itself stands)."""
        job = self.refusal_job(msg, at_ms)
        try:
            await self._tx(job)
        except sqlite3.OperationalError:
            self.write_soon(job)

    @staticmethod
    def refusal_job(msg: RiskEvent, at_ms: int) -> Job:
        """A refusal of the risk gate, kept as the event it was published as (the `refusals`
        command answers it after a restart of the page or of the gateway)."""
        values = (msg.refusal_id, msg.account, at_ms, json.dumps(msg.body()))
        return lambda c: c.execute("INSERT OR IGNORE INTO refusals (refusal_id, account, at_ms, "
                                   "event) VALUES (?, ?, ?, ?)", values).rowcount == 1

    async def save_risk(self, book_json: str, at_ms: int) -> None:
        """Replace the risk gate's book (migration 2)."""
        await self._tx(lambda c: c.execute(
            "INSERT INTO risk_state (id, book, updated_ms) VALUES (1, ?, ?) "
            "ON CONFLICT(id) DO UPDATE SET book=excluded.book, updated_ms=excluded.updated_ms",
            (book_json, at_ms)))

    async def load_risk(self) -> str | None:
        rows = await self.query("SELECT book FROM risk_state WHERE id = 1")
        return rows[0]["book"] if rows else None

    async def risk_saved_ms(self) -> int | None:
        """The market time the risk memory was last written at (None before the first)."""
        rows = await self.query("SELECT updated_ms FROM risk_state WHERE id = 1")
        return int(rows[0]["updated_ms"]) if rows else None

    # ------------------------------------------------------------------ reads (tests, tools)

    async def day_fills(self, account: int, since_ms: int, limit: int) -> list[FillRecord]:
        """The account's fills at or after `since_ms` (venue time, else when taken), newest
        first, at most `limit`: the `fills` command (a page restarted mid-session)."""
        rows = await self.query(
            "SELECT * FROM fills WHERE account = ? AND COALESCE(vt, at_ms) >= ? "
            "ORDER BY COALESCE(vt, at_ms) DESC, trade_id DESC LIMIT ?",
            (account, since_ms, limit))
        return [fill_of(r) for r in rows]

    async def day_refusals(self, account: int, since_ms: int,
                           limit: int) -> list[tuple[int, RiskEvent]]:
        """The account's refusals at or after `since_ms` as (when, the event), newest first, at
        most `limit`: the `refusals` command."""
        rows = await self.query(
            "SELECT at_ms, event FROM refusals WHERE account = ? AND at_ms >= ? "
            "ORDER BY at_ms DESC, rowid DESC LIMIT ?", (account, since_ms, limit))
        out = []
        for r in rows:
            msg = RiskEvent.from_payload(json.loads(r["event"]))
            assert isinstance(msg, RiskEvent)
            out.append((int(r["at_ms"]), msg))
        return out

    async def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        return await self._run(lambda c: [dict(r) for r in c.execute(sql, params)])


def _settle(fut: "asyncio.Future[Any]", out: Any, err: BaseException | None) -> None:
    if fut.done():
        return
    if err is not None:
        fut.set_exception(err)
    else:
        fut.set_result(out)


def read_only(path: Path) -> sqlite3.Connection:
    """A read-only connection to a journal (tests and tools; the gateway is the only writer)."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    return conn
