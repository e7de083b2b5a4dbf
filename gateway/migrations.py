"""The journal's schema, as numbered migrations applied at start (docs/schema.md, "Order
journal"). `PRAGMA user_version` holds the number of the last one applied; each runs in its own
transaction, so a crash mid-upgrade leaves the previous version intact."""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[tuple[int, str]] = [
    (1, """
    CREATE TABLE intents (
        client_id   TEXT PRIMARY KEY,      -- the sender's id
        custom_tag  TEXT NOT NULL,         -- what the venue was sent (the client id, or with "-E")
        rid         TEXT,                  -- request id of the submit command
        owner       TEXT NOT NULL,
        account     INTEGER NOT NULL,
        contract    TEXT NOT NULL,
        side        INTEGER NOT NULL,
        size        INTEGER NOT NULL,
        order_type  TEXT NOT NULL,
        limit_price REAL, stop_price REAL, trail_ticks INTEGER,
        sl_ticks    INTEGER, tp_ticks INTEGER,
        parent_id   INTEGER,               -- managed OCO legs: the entry's venue order id
        managed     INTEGER NOT NULL DEFAULT 0, -- 1: the gateway places and OCOs the brackets
        created_ms  INTEGER NOT NULL,
        status      TEXT NOT NULL,         -- sending | placed | rejected | not_placed
        order_id    INTEGER,               -- the venue's id once known
        code        INTEGER,               -- the venue's errorCode on a rejection
        message     TEXT,
        resolved_ms INTEGER
    );
    CREATE INDEX intents_status ON intents(status);
    CREATE TABLE orders (
        order_id     INTEGER PRIMARY KEY,
        account      INTEGER NOT NULL,
        client_id    TEXT, owner TEXT NOT NULL,
        contract     TEXT NOT NULL, side INTEGER NOT NULL, size INTEGER NOT NULL,
        order_type   INTEGER NOT NULL, status INTEGER NOT NULL, state TEXT NOT NULL,
        fill_volume  INTEGER NOT NULL DEFAULT 0, filled_price REAL,
        limit_price  REAL, stop_price REAL, custom_tag TEXT, parent_id INTEGER,
        created_ms   INTEGER, updated_ms INTEGER
    );
    CREATE TABLE order_events (           -- every venue status change, appended
        seq          INTEGER PRIMARY KEY AUTOINCREMENT,
        order_id     INTEGER NOT NULL,
        at_ms        INTEGER NOT NULL,     -- gateway clock
        status       INTEGER NOT NULL, state TEXT NOT NULL,
        fill_volume  INTEGER NOT NULL, filled_price REAL,
        source       TEXT NOT NULL         -- hub | rest | place
    );
    CREATE INDEX order_events_order ON order_events(order_id);
    CREATE TABLE fills (                  -- every venue trade (half-turn), once per trade id
        trade_id     INTEGER PRIMARY KEY,
        account      INTEGER NOT NULL,
        order_id     INTEGER NOT NULL, owner TEXT NOT NULL, client_id TEXT,
        contract     TEXT NOT NULL, side INTEGER NOT NULL, size INTEGER NOT NULL,
        price        REAL NOT NULL, fees REAL NOT NULL DEFAULT 0, pnl REAL,
        vt           INTEGER, at_ms INTEGER NOT NULL
    );
    """),
    (2, """
    CREATE TABLE risk_state (             -- the risk gate's book (trading/risk/memory.py), one row
        id          INTEGER PRIMARY KEY CHECK (id = 1),
        book        TEXT NOT NULL,         -- JSON: EOD balances, high water, day, latches, counters
        updated_ms  INTEGER NOT NULL
    );
    """),
    (3, """
    CREATE TABLE refusals (               -- the risk gate's refusals, each as its `risk` event
        refusal_id  TEXT PRIMARY KEY,      -- the event's refusal_id (gateway instance : n)
        account     INTEGER NOT NULL,
        at_ms       INTEGER NOT NULL,      -- gateway clock (market time) of the refusal
        event       TEXT NOT NULL          -- JSON: the event's body as published
    );
    CREATE INDEX refusals_day ON refusals(account, at_ms);
    """),
]


def migrate(conn: sqlite3.Connection) -> int:
    """Apply every migration newer than the file's version; return the version reached."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in MIGRATIONS:
        if number <= version:
            continue
        conn.execute("BEGIN")
        try:
            for stmt in script.split(";"):
                if stmt.strip():
                    conn.execute(stmt)
            conn.execute(f"PRAGMA user_version = {number}")
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        version = number
    return version
