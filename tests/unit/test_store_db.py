"""The store's database layer: migrations, the batched writer and its upsert guard, readers."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store import queries
from store.db import open_writer
from store.queries import open_reader
from store.migrations import LATEST, MigrationError, current_version, migrate
from store.series import SeriesCache
from store.writer import Writer

C = "CON.F.US.EP.Z26"


def row(t: int, volume: int = 1, final: int = 1, rev: int = 0, tf: str = "1m",
        contract: str = C) -> tuple:
    return (contract, tf, t, 1.0, 2.0, 0.5, 1.5, volume, final, rev, "poll", 0)


def test_migrations_apply_once_and_refuse_a_newer_database(tmp_path: Path) -> None:
    conn = open_writer(tmp_path / "m.db")
    assert current_version(conn) == LATEST
    assert migrate(conn) == []
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute("INSERT INTO schema_version VALUES (?, 'future', 0)", (LATEST + 1,))
    with pytest.raises(MigrationError):
        migrate(conn)


def test_writer_upsert_a_later_reading_wins_never_an_older_one_or_a_partial(tmp_path: Path
                                                                            ) -> None:
    """Defect 1: `rev` counts publications, so a corrected bar from history (rev 0) read after
    an early live final (rev 2) must still win; the reading time (updated_ms) decides."""
    def at(t: int, volume: int, read: int, final: int = 1, rev: int = 0) -> tuple:
        return (C, "1m", t, 1.0, 2.0, 0.5, 1.5, volume, final, rev, "poll", read)

    w = Writer(open_writer(tmp_path / "w.db"), batch_rows=3, flush_s=0.01)
    w.start()
    w.add("bars", at(0, volume=5, read=100, rev=2))     # early live final
    w.add("bars", at(0, volume=9, read=200, rev=0))     # corrected history read later: wins
    w.add("bars", at(0, volume=7, read=300, final=0, rev=9))   # partial: never over a final
    w.add("bars", at(60_000, volume=3, read=200))
    w.add("bars", at(60_000, volume=4, read=100, rev=5))  # an older reading: ignored
    w.add("bars", at(120_000, volume=1, read=100))
    w.add("bars", at(120_000, volume=1, read=100))        # the same reading again: idempotent
    w.barrier().result(timeout=5)
    assert w.close()
    r = open_reader(tmp_path / "w.db")
    got = [(b.t, b.volume, b.rev) for b in queries.bars_between(r, C, "1m", 0, 10**9)]
    assert got == [(0, 9, 0), (60_000, 3, 0), (120_000, 1, 0)]
    assert w.counters["commits"] >= 1


def test_close_flushes_everything_queued(tmp_path: Path) -> None:
    w = Writer(open_writer(tmp_path / "f.db"), batch_rows=100_000, flush_s=5)
    w.start()
    for i in range(5000):
        w.add("bars", row(i * 60_000))
    assert w.close(timeout=5)
    r = open_reader(tmp_path / "f.db")
    assert r.execute("SELECT COUNT(*) FROM bars").fetchone()[0] == 5000


def test_reader_is_read_only(tmp_path: Path) -> None:
    open_writer(tmp_path / "r.db").close()
    r = open_reader(tmp_path / "r.db")
    with pytest.raises(sqlite3.OperationalError):
        r.execute("INSERT INTO contracts VALUES ('x','x','x','x','x',1,1,1,0)")
    with pytest.raises(sqlite3.OperationalError):
        open_reader(tmp_path / "missing.db")


def test_queries_keys_last_bars_and_symbol_resolution(tmp_path: Path) -> None:
    conn = open_writer(tmp_path / "q.db")
    for i in range(10):
        conn.execute("INSERT INTO bars VALUES (?,?,?,1,2,0.5,1.5,1,1,0,'poll',0)",
                     (C, "1m", i * 60_000))
    conn.execute("INSERT INTO bars VALUES (?,?,?,1,2,0.5,1.5,1,1,0,'agg',0)", (C, "5m", 0))
    conn.execute("INSERT INTO bars VALUES (?,?,?,1,2,0.5,1.5,1,1,0,'poll',0)",
                 ("CON.F.US.ENQ.Z26", "1m", 0))
    conn.execute("INSERT INTO contracts VALUES (?,?,?,?,?,?,?,?,?)",
                 (C, "ES", "F.US.EP", "ESZ6", "E-mini S&P", 0.25, 12.5, 1, 0))
    r = open_reader(tmp_path / "q.db")
    assert queries.series_keys(r) == [("CON.F.US.ENQ.Z26", "1m"), (C, "1m"), (C, "5m")]
    assert [b.t for b in queries.last_bars(r, C, "1m", 3)] == [420_000, 480_000, 540_000]
    assert queries.last_time(r, C, "1m") == 540_000
    assert queries.known_contracts(r) == ["CON.F.US.ENQ.Z26", C]
    for text in ("ES", "esz6", "F.US.EP", C):
        assert queries.resolve_contract(r, text, queries.known_contracts(r)) == C
    assert queries.resolve_contract(r, "ENQ", queries.known_contracts(r)) == "CON.F.US.ENQ.Z26"
    assert queries.resolve_contract(r, "ZZ", []) is None


def test_series_cache_merge_rule_and_bound() -> None:
    cache = SeriesCache(size=10)
    assert cache.put(C, "5m", [0, 1, 1, 1, 1, 5, False, 0, 10])
    assert cache.put(C, "5m", [0, 1, 1, 1, 1, 6, True, 3, 20])
    assert not cache.put(C, "5m", [0, 1, 1, 1, 1, 7, False, 9, 30])   # partial after final
    assert not cache.put(C, "5m", [0, 1, 1, 1, 1, 8, True, 9, 15])    # an older reading
    assert cache.put(C, "5m", [0, 1, 1, 1, 1, 9, True, 0, 40])        # later, rev 0: wins
    assert cache.window(C, "5m", 5) == [[0, 1, 1, 1, 1, 9, True, 0, 40]]
    for i in range(1, 100):
        cache.put(C, "5m", [i * 300_000, 1, 1, 1, 1, 1, True, 0, 0])
    assert len(cache.data[(C, "5m")]) <= 10 + 10 // 4 + 8
    assert [r[0] for r in cache.window(C, "5m", 2)] == [98 * 300_000, 99 * 300_000]


def test_a_row_the_database_cannot_take_is_rejected_alone(tmp_path: Path) -> None:
    """Defect 16: volume 2**63 made the whole batch fail and retry forever."""
    w = Writer(open_writer(tmp_path / "p.db"), batch_rows=100, flush_s=0.01)
    w.start()
    w.add_many("bars", [row(0), row(60_000, volume=2**63), row(120_000)])
    w.barrier().result(timeout=5)
    w.add("bars", row(180_000))
    w.barrier().result(timeout=5)
    assert w.close()
    r = open_reader(tmp_path / "p.db")
    assert [b.t for b in queries.bars_between(r, C, "1m", 0, 10**9)] == [0, 120_000, 180_000]
    assert w.counters["rows_rejected"] == 1 and w.counters["rows_written"] == 3
    assert w.pending() == 0
