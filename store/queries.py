"""Read-side queries on the market database, for every process that is not the store.

Every function takes a connection from `open_reader` below (read-only). Bars come back as
`chillly.messages.Bar` (final rows only: the store stores finals), oldest first.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path
from typing import Any

from chillly.messages import Bar

_COLS = "contract, tf, t, o, h, l, c, volume, final, rev, origin"


def _bar(row: tuple[Any, ...]) -> Bar:
    contract, tf, t, o, h, low, c, volume, final, rev, origin = row
    return Bar(contract=contract, tf=tf, t=t, o=o, h=h, l=low, c=c, volume=volume,
               final=bool(final), rev=rev, origin=origin)


def bars_between(conn: sqlite3.Connection, contract: str, tf: str, start: int, end: int
                 ) -> list[Bar]:
    """Bars with start <= t < end, oldest first."""
    rows = conn.execute(
        f"SELECT {_COLS} FROM bars WHERE contract=? AND tf=? AND t>=? AND t<? ORDER BY t",
        (contract, tf, start, end)).fetchall()
    return [_bar(r) for r in rows]


def last_bars(conn: sqlite3.Connection, contract: str, tf: str, n: int,
              before: int | None = None) -> list[Bar]:
    """The last `n` bars (optionally with t < before), oldest first."""
    if before is None:
        rows = conn.execute(
            f"SELECT {_COLS} FROM bars WHERE contract=? AND tf=? ORDER BY t DESC LIMIT ?",
            (contract, tf, n)).fetchall()
    else:
        rows = conn.execute(
            f"SELECT {_COLS} FROM bars WHERE contract=? AND tf=? AND t<? ORDER BY t DESC LIMIT ?",
            (contract, tf, before, n)).fetchall()
    return [_bar(r) for r in reversed(rows)]


def last_bars_read(conn: sqlite3.Connection, contract: str, tf: str, n: int,
                   before: int | None = None) -> list[tuple[Bar, int]]:
    """As `last_bars`, each with its reading time (`updated_ms`): for merging with live bars
    by "the later reading wins"."""
    sql = (f"SELECT {_COLS}, updated_ms FROM bars WHERE contract=? AND tf=?"
           + ("" if before is None else " AND t<?") + " ORDER BY t DESC LIMIT ?")
    args: tuple[Any, ...] = (contract, tf, n) if before is None else (contract, tf, before, n)
    rows = conn.execute(sql, args).fetchall()
    return [(_bar(r[:-1]), r[-1]) for r in reversed(rows)]


def last_time(conn: sqlite3.Connection, contract: str, tf: str, before: int | None = None
              ) -> int | None:
    """Open time of the newest stored bar of (contract, tf) (with t < before), or None."""
    if before is None:
        row = conn.execute("SELECT MAX(t) FROM bars WHERE contract=? AND tf=?",
                           (contract, tf)).fetchone()
    else:
        row = conn.execute("SELECT MAX(t) FROM bars WHERE contract=? AND tf=? AND t<?",
                           (contract, tf, before)).fetchone()
    return None if row is None else row[0]


def series_keys(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    """Every (contract, tf) with stored bars (a skip-scan over the primary key, not a full scan)."""
    out: list[tuple[str, str]] = []
    row = conn.execute("SELECT contract, tf FROM bars ORDER BY contract, tf LIMIT 1").fetchone()
    while row is not None:
        out.append((row[0], row[1]))
        row = conn.execute(
            "SELECT contract, tf FROM bars WHERE (contract, tf) > (?, ?) "
            "ORDER BY contract, tf LIMIT 1", row).fetchone()
    return out


def known_contracts(conn: sqlite3.Connection) -> list[str]:
    """Contracts with stored 1m bars or stored metadata."""
    ids = {c for c, tf in series_keys(conn) if tf == "1m"}
    ids.update(r[0] for r in conn.execute("SELECT contract FROM contracts"))
    return sorted(ids)


def contract_info(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    cur = conn.execute("SELECT contract, symbol, symbol_id, name, description, tick_size, "
                       "tick_value, active, updated_ms FROM contracts ORDER BY contract")
    cols = [d[0] for d in cur.description]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def resolve_contract(conn: sqlite3.Connection | None, text: str, candidates: list[str]) -> str | None:
    """A full contract id for an id or a symbol: an id is taken as is; a symbol ("ES", "ESZ6",
    "F.US.EP") is matched against stored metadata (active contracts first: name = root + month
    code + year), then against the ids we hold (CON.F.US.EP.Z26 matches "EP")."""
    if text in candidates or text.startswith("CON."):
        return text
    want = text.upper()
    rows: list[tuple[Any, ...]] = []
    if conn is not None:
        try:
            rows = conn.execute("SELECT contract, name, symbol, symbol_id FROM contracts "
                                "ORDER BY active DESC, updated_ms DESC").fetchall()
        except sqlite3.Error:
            rows = []
    month = re.compile(rf"^{re.escape(want)}[FGHJKMNQUVXZ][0-9]{{1,2}}$")
    for contract, name, symbol, symbol_id in rows:
        if want in (str(name).upper(), str(symbol).upper(), str(symbol_id).upper()) \
                or month.match(str(name).upper()):
            return contract
    for c in sorted(candidates, reverse=True):
        parts = c.split(".")
        if len(parts) >= 2 and parts[-2].upper() == want:
            return c
    return None


def database_venue(conn: sqlite3.Connection) -> str | None:
    """The venue recorded in the database (meta key 'venue'), or None (new or older schema)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='venue'").fetchone()
    except sqlite3.OperationalError:   # no meta table: a database older than migration 3
        return None
    return None if row is None else str(row[0])


def recovery_owed(conn: sqlite3.Connection) -> dict[str, tuple[int | None, int]]:
    """The store's pending recoveries (meta key 'recovery_owed'): contract -> (1m backfill owed
    from, or None; higher timeframes to reconcile from). A contract listed with a backfill owed
    has a hole after that time that the store has not refilled yet, so a reader must not take
    its stored 1m bars for every bar of a window (the aggregator's coverage, defect 18).

    Raises ValueError for an unreadable note; {} when there is none (or no meta table)."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key='recovery_owed'").fetchone()
    except sqlite3.OperationalError:
        return {}
    if row is None:
        return {}
    try:
        return {str(c): (None if v[0] is None else int(v[0]), int(v[1]))
                for c, v in json.loads(row[0]).items()}
    except (ValueError, TypeError, IndexError, AttributeError):
        raise ValueError(f"unreadable recovery_owed note: {row[0]!r}") from None


def venue_problem(conn: sqlite3.Connection, venue: str, path: Path | str) -> str | None:
    """Why this configuration must not use the database at `path`, or None: it holds bars of
    another venue (sim bars mixed into real history, or the reverse)."""
    held = database_venue(conn)
    if held is None or held == venue:
        return None
    return (f"DATABASE_PATH={path} holds bars from venue {held!r}, this configuration's venue "
            f"is {venue!r}: use that venue's own database (leave DATABASE_PATH unset for "
            f"RUN_DIR/{venue}/market.db)")


def missing_database(path: Path | str) -> str | None:
    """What to tell a reader whose market database is not there (defect 20: a mistyped
    DATABASE_PATH must not look like an empty market), or None when it is."""
    if Path(path).exists():
        return None
    return (f"no market database at {path} (DATABASE_PATH): the store has not created it yet, "
            f"or the path is mistyped")


def refuse_other_venue(path: Path | str, venue: str) -> str | None:
    """For a reader process at start (series, aggregator): why it must not read the database at
    `path`, or None (also None while the file does not exist: the store will create it)."""
    try:
        conn = open_reader(path)
    except sqlite3.OperationalError:
        return None
    try:
        return venue_problem(conn, venue, path)
    finally:
        conn.close()


def open_reader(path: Path | str) -> sqlite3.Connection:
    """A read-only connection (`mode=ro` URI): a reader can never write or create the file.

    Raises sqlite3.OperationalError if the database does not exist yet."""
    p = Path(path).resolve()
    conn = sqlite3.connect(f"file:{p}?mode=ro", uri=True, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def bar_rows(conn: sqlite3.Connection, contract: str, tf: str, start: int, end: int
             ) -> list[tuple[int, float, float, float, float, int]]:
    """(t, o, h, l, c, volume) with start <= t < end, oldest first: for a reader that walks a
    year of bars (a backtest), without a message object per row."""
    return conn.execute("SELECT t, o, h, l, c, volume FROM bars WHERE contract=? AND tf=? "
                        "AND t>=? AND t<? ORDER BY t", (contract, tf, start, end)).fetchall()


def bar_counts(conn: sqlite3.Connection, tf: str, start: int, end: int
               ) -> dict[str, tuple[int, int, int]]:
    """contract -> (bars, first t, last t) of `tf` with start <= t < end."""
    rows = conn.execute("SELECT contract, COUNT(*), MIN(t), MAX(t) FROM bars WHERE tf=? AND t>=? "
                        "AND t<? GROUP BY contract", (tf, start, end)).fetchall()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


def bar_rows_before(conn: sqlite3.Connection, contract: str, tf: str, before: int, n: int
                    ) -> list[tuple[int, float, float, float, float, int]]:
    """The last `n` rows (t, o, h, l, c, volume) with t < before, oldest first."""
    rows = conn.execute("SELECT t, o, h, l, c, volume FROM bars WHERE contract=? AND tf=? "
                        "AND t<? ORDER BY t DESC LIMIT ?", (contract, tf, before, n)).fetchall()
    rows.reverse()
    return rows
