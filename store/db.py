"""Opening the market database: one writer connection (the store), read-only for everyone else.

WAL mode lets readers (series, aggregator warm-up, `chillly bars`) read while the store writes.
`synchronous=NORMAL` in WAL mode keeps every committed transaction across a process crash
(SIGKILL); only an OS crash or power loss can lose the last commits, which the store's
start-up backfill re-fetches anyway.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from store.migrations import migrate
from store.queries import venue_problem


class WrongVenue(RuntimeError):
    """The database belongs to another venue than the configuration's."""


def claim_venue(conn: sqlite3.Connection, venue: str, path: Path | str) -> None:
    """Record `venue` as the database's owner, or raise WrongVenue if another venue owns it.

    A database from before the venue was recorded is adopted by the first store that opens it
    (its venue cannot be known any more; from then on it is fixed)."""
    problem = venue_problem(conn, venue, path)
    if problem:
        raise WrongVenue(problem)
    conn.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('venue', ?)", (venue,))


def open_writer(path: Path | str) -> sqlite3.Connection:
    """The single writing connection: WAL, migrations applied. Autocommit mode: the writer
    opens its own transactions explicitly."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(p), isolation_level=None, check_same_thread=False, timeout=10)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=10000")
    migrate(conn)
    return conn
