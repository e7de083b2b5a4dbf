"""The journal file: migrations, durability settings, group commit, read-back (real SQLite)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from gateway.journal import Journal, read_only
from gateway.migrations import MIGRATIONS


def _intent(cid: str) -> dict[str, object]:
    return {"client_id": cid, "custom_tag": cid, "owner": "manual", "account": 1001,
            "contract": "CON.F.US.EP.Z26", "side": 0, "size": 1, "order_type": "market",
            "managed": 0, "created_ms": 1, "status": "sending"}


async def test_intents_commit_together_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    j = Journal(path)
    loaded = await j.open()
    assert loaded.version == MIGRATIONS[-1][0] and loaded.intents == []
    await asyncio.gather(*(j.add_intent(_intent(f"manual-{i}")) for i in range(200)))
    with pytest.raises(sqlite3.IntegrityError):
        await j.add_intent(_intent("manual-7"))  # a client id is journaled once
    assert j.commits < 200  # queued writes shared commits (group commit)
    await j.resolve_intent("manual-3", "placed", 5, order_id=99)
    assert await j.add_fill({"trade_id": 1, "account": 1001, "order_id": 99, "owner": "manual",
                             "contract": "C", "side": 0, "size": 1, "price": 1.0, "at_ms": 5})
    assert not await j.add_fill({"trade_id": 1, "account": 1001, "order_id": 99,
                                 "owner": "manual", "contract": "C", "side": 0, "size": 1,
                                 "price": 1.0, "at_ms": 6})
    await j.close()
    conn = read_only(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j2 = Journal(path)
    again = await j2.open()
    assert len(again.intents) == 200 and len(again.fills) == 1
    row = next(r for r in again.intents if r["client_id"] == "manual-3")
    assert row["status"] == "placed" and row["order_id"] == 99
    await j2.close()
