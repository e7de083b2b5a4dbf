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
