"""Numbered schema migrations, applied in order at the store's start (docs/schema.md).

Each migration runs once, in its own transaction, and records its number in `schema_version`.
Never edit a migration that has shipped: append a new one. A database newer than this code
(a version we do not know) is refused rather than written to.
"""

from __future__ import annotations

import sqlite3
import time

MIGRATIONS: list[tuple[int, str, str]] = [
    (1, "bars and contracts", """
        CREATE TABLE bars (
            contract   TEXT    NOT NULL,
            tf         TEXT    NOT NULL,
            t          INTEGER NOT NULL,   -- bar open, UTC epoch ms
            o          REAL    NOT NULL,
            h          REAL    NOT NULL,
            l          REAL    NOT NULL,
            c          REAL    NOT NULL,
            volume     INTEGER NOT NULL,
            final      INTEGER NOT NULL DEFAULT 1,
            rev        INTEGER NOT NULL DEFAULT 0,
            origin     TEXT    NOT NULL DEFAULT 'poll',
            updated_ms INTEGER NOT NULL,
            PRIMARY KEY (contract, tf, t)
        ) WITHOUT ROWID;
        CREATE TABLE contracts (
            contract    TEXT PRIMARY KEY,
            symbol      TEXT NOT NULL,
            symbol_id   TEXT NOT NULL,
            name        TEXT NOT NULL,
            description TEXT NOT NULL,
            tick_size   REAL NOT NULL,
            tick_value  REAL NOT NULL,
            active      INTEGER NOT NULL,
            updated_ms  INTEGER NOT NULL
        );
    """),
    (2, "quotes and trades (STORE_RECORD_TICKS)", """
        CREATE TABLE quotes (
            contract TEXT    NOT NULL,
            t        INTEGER NOT NULL,     -- venue time if given, else receive time
            bid      REAL,
            ask      REAL,
            last     REAL,
            volume   INTEGER
        );
        CREATE INDEX quotes_by_contract_t ON quotes (contract, t);
        CREATE TABLE trades (
            contract  TEXT    NOT NULL,
            t         INTEGER NOT NULL,
            price     REAL    NOT NULL,
            size      INTEGER NOT NULL,
            aggressor INTEGER NOT NULL
        );
        CREATE INDEX trades_by_contract_t ON trades (contract, t);
    """),
    (3, "meta: the venue this database belongs to", """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
    """),
]

LATEST = MIGRATIONS[-1][0]


class MigrationError(RuntimeError):
    """The database cannot be brought to this code's schema."""


def current_version(conn: sqlite3.Connection) -> int:
    row = conn.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if row is None:
        return 0
    (v,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version").fetchone()
    return int(v)


def migrate(conn: sqlite3.Connection) -> list[int]:
    """Apply every migration newer than the database; returns the numbers applied."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version ("
                 "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_ms INTEGER NOT NULL)")
    have = current_version(conn)
    if have > LATEST:
        raise MigrationError(f"database schema {have} is newer than this code ({LATEST})")
    applied = []
    for version, name, sql in MIGRATIONS:
        if version <= have:
            continue
        try:
            conn.execute("BEGIN IMMEDIATE")
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?, ?, ?)",
                         (version, name, int(time.time() * 1000)))
            conn.execute("COMMIT")
        except Exception:
            conn.execute("ROLLBACK")
            raise
        applied.append(version)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (ours never put ';' inside a literal)."""
    out = []
    for part in sql.split(";"):
        lines = [ln.split("--", 1)[0] for ln in part.splitlines()]
        text = "\n".join(lines).strip()
        if text:
            out.append(text)
    return out
