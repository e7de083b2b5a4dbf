"""`chillly import FILE --symbol S [--format csv|databento]`: 1m history into the market database.

The store is the database's only writer (chillly/singleton.py), so an import writes the way
the store allows at that moment:

- **the store is not running** (its lock is free): the import takes the lock itself, so no
  store can start meanwhile, and writes every row in one transaction: a failure anywhere (the
  disk, a row the database refuses, a kill) rolls the whole import back, nothing partial stays.
- **the store is running** (the lock is held): the rows go to it over the bus as history, in
  `BarBatch` messages on `hist.1m.<contract>.`, the path `chillly backfill` uses; the import
  then reads the database (read-only) until every row is there. Rows the bus lost are sent again
  (upserts on the bar's key: a second copy changes nothing); still missing after that, the
  import says how many and exits 1: running it again completes it.

Every row is checked first with the kernel's bar check (the store's own); rejected rows are
counted and the first few named, and nothing is written before the whole file has been read.
Exit codes: 0 imported, 1 could not write, 2 bad input (no file, another format, no good row).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from chillly import topics
from chillly.clock import clock_from_settings, ms_to_iso
from chillly.errors import StartupError
from chillly.messages import BarBatch
from chillly.settings import load_settings
from chillly.singleton import acquire
from chillly.timeframes import TimeframeSettings
from store import queries
from store.db import WrongVenue, claim_venue, open_writer
from store.import_files import FORMATS, FormatError, Parsed, parse
from store.writer import UPSERT_BAR
from trading import products

BATCH = 500             # rows per BarBatch, as feed-bars sends history
ORIGIN = "import"       # the bars' origin column: where a stored row came from
_QUARTER_MONTHS = "HMUZ"
_INDEX_FAMILIES = frozenset({"ES", "NQ", "RTY", "YM"})


class ImportFailed(Exception):
    """The rows could not all be written (exit 1)."""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, help="the bar file (CSV, Databento DBN or CSV)")
    p.add_argument("--symbol", required=True,
                   help="the contract the bars are: a symbol (ES) or a contract id")
    p.add_argument("--format", choices=FORMATS, default=None,
                   help="csv or databento (default: recognised from the file)")
    p.add_argument("--timeout", type=float, default=60.0,
                   help="seconds to wait for a running store to commit the rows")


def cli(ns: argparse.Namespace) -> int:
    settings = load_settings(TimeframeSettings)
    path: Path = ns.file
    if not path.is_file():
        print(f"chillly import: no such file: {path}", file=sys.stderr)
        return 2
    now = clock_from_settings(settings).now_ms()
    try:
        parsed = parse(path, ns.format, now, settings.future_ms)
    except FormatError as exc:
        print(f"chillly import: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"chillly import: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 2
    if not parsed.rows:
        print(f"chillly import: {path}: no valid bar in {parsed.source_rows} rows"
              + _rejections(parsed), file=sys.stderr)
        return 2
    db = settings.database_path
    try:
        contract = contract_for(ns.symbol, db, parsed.rows[-1][0])
    except ValueError as exc:
        print(f"chillly import: {exc}", file=sys.stderr)
        return 2
    try:
        how = write(db, settings, contract, parsed.rows, ns.timeout)
    except (StartupError, WrongVenue) as exc:
        print(f"chillly import: {exc}", file=sys.stderr)
        return 2
    except ImportFailed as exc:
        print(f"chillly import: {exc}", file=sys.stderr)
        return 1
    first, last = parsed.rows[0][0], parsed.rows[-1][0]
    print(f"imported {len(parsed.rows)} 1m bars of {contract} ({ms_to_iso(first)} .. "
          f"{ms_to_iso(last)}) into {db} {how}" + _rejections(parsed))
    return 0


def _rejections(parsed: Parsed) -> str:
    out = ""
    if parsed.dropped_instruments:
        out += (f"; {parsed.dropped_instruments} rows of other instruments left out (each day "
                "keeps its busiest)")
    if parsed.rejected:
        out += f"; {parsed.rejected} rows rejected: " + "; ".join(parsed.examples)
        if parsed.rejected > len(parsed.examples):
            out += "; ..."
    return out


# ---------------------------------------------------------------- which contract


def contract_for(symbol: str, db: Path, last_t: int) -> str:
    """A contract id for `symbol`: an id as given; a symbol the database's contract metadata
    knows (the one the venue had active); else, for the quarterly index products, the front
    month at the file's last bar (`CON.F.US.EP.H26`). Raises ValueError."""
    if symbol.upper().startswith("CON."):
        return symbol
    if db.exists():
        try:
            conn = queries.open_reader(db)
            try:
                found = queries.resolve_contract(conn, symbol, queries.known_contracts(conn))
            finally:
                conn.close()
        except sqlite3.Error:
            found = None
        if found:
            return found
    prod = products.product(symbol.upper())
    if prod is None:
        raise ValueError(f"unknown symbol {symbol!r}: give a product symbol (ES) or a "
                         "contract id (CON.F.US.EP.H26)")
    if prod.family not in _INDEX_FAMILIES:
        raise ValueError(f"{symbol}: the database knows no contract of it; give the contract "
                         f"id (CON.F.US.{prod.root}.<month><yy>)")
    return f"CON.F.US.{prod.root}.{front_quarter(last_t)}"


def front_quarter(t_ms: int) -> str:
    """The quarterly contract (month code + 2-digit year) trading at `t_ms`: it rolls 8 days
    before the third Friday of its month (the CME equity index roll)."""
    day = datetime.fromtimestamp(t_ms / 1000, tz=timezone.utc).date()
    year = day.year
    while True:
        for i, month in enumerate((3, 6, 9, 12)):
            first = date(year, month, 1)
            third_friday = first + timedelta(days=(4 - first.weekday()) % 7 + 14)
            if day < third_friday - timedelta(days=8):
                return f"{_QUARTER_MONTHS[i]}{year % 100:02d}"
        year += 1


# ---------------------------------------------------------------- writing


def write(db: Path, settings: Any, contract: str, rows: list[list[Any]], timeout: float) -> str:
    """Write `rows` the way the store allows now; returns how ("under its lock" / "through
    the running store"). Raises StartupError, WrongVenue, ImportFailed."""
    try:
        lock = acquire(db, "import")
    except StartupError:
        return asyncio.run(_through_store(settings, contract, rows, timeout))
    try:
        _under_lock(db, settings.venue, contract, rows)
    finally:
        lock.release()
    return "under its lock (no store running)"


def _under_lock(db: Path, venue: str, contract: str, rows: list[list[Any]]) -> None:
    """One transaction: all rows or none."""
    try:
        conn = open_writer(db)
    except (sqlite3.Error, OSError) as exc:
        raise ImportFailed(f"cannot open {db}: {exc}") from None
    try:
        claim_venue(conn, venue, db)
        stamp = int(time.time() * 1000)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(UPSERT_BAR, [(contract, "1m", r[0], r[1], r[2], r[3], r[4], r[5],
                                           1, 0, ORIGIN, stamp) for r in rows])
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise ImportFailed(f"nothing imported: the database refused a row ({exc})"
                                   ) from None
            raise
    finally:
        conn.close()


def _missing(db: Path, contract: str, rows: list[list[Any]]) -> list[list[Any]]:
    """The rows the database does not hold with these values yet."""
    conn = queries.open_reader(db)
    try:
        held = {b.t: (b.o, b.h, b.l, b.c, b.volume) for b in
                queries.bars_between(conn, contract, "1m", rows[0][0], rows[-1][0] + 1)}
    finally:
        conn.close()
    return [r for r in rows if held.get(r[0]) != (r[1], r[2], r[3], r[4], r[5])]


async def _through_store(settings: Any, contract: str, rows: list[list[Any]],
                         timeout: float) -> str:
    from chillly.bus import Bus

    bus = Bus.from_settings(settings, "cli-import")
    try:
        try:
            await bus.ready(timeout=5.0)
        except Exception:
            raise ImportFailed("the store holds the database but no broker answers: is "
                               "`chillly broker` running?") from None
        topic = topics.history_bar("1m", contract)
        pending = rows
        for attempt in range(2):
            for i in range(0, len(pending), BATCH):
                bus.publish(topic, BarBatch(contract=contract, tf="1m",
                                            rows=pending[i:i + BATCH], origin=ORIGIN))
                if i % (BATCH * 50) == 0:
                    await asyncio.sleep(0)    # let the socket drain
            deadline = time.monotonic() + timeout / 2
            while True:
                await asyncio.sleep(0.2)
                pending = await asyncio.to_thread(_missing, settings.database_path, contract,
                                                  pending)
                if not pending or time.monotonic() > deadline:
                    break
            if not pending:
                return "through the running store"
        raise ImportFailed(f"the store has not committed {len(pending)} of {len(rows)} rows "
                           f"within {timeout:.0f}s (what it holds is correct; run the import "
                           "again to complete it)")
    finally:
        await bus.close()
