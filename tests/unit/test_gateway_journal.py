"""The journal file: migrations, durability settings, group commit, read-back (real SQLite)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chillly.messages import RiskEvent
from gateway.journal import Journal, read_only
from gateway.migrations import MIGRATIONS
from trading.orders.records import PLACED, FillRecord, IntentRecord, OrderRecord


def _intent(cid: str) -> IntentRecord:
    return IntentRecord(client_id=cid, owner="manual", account=1001, contract="CON.F.US.EP.Z26",
                        side=0, size=1, order_type="market", created_ms=1)


def _fill(at_ms: int) -> FillRecord:
    return FillRecord(trade_id=1, account=1001, order_id=99, owner="manual", client_id=None,
                      contract="C", side=0, size=1, price=1.0, fees=0.0, pnl=None, vt=None,
                      at_ms=at_ms)


async def test_intents_commit_together_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "orders.db"
    j = Journal(path)
    loaded = await j.open()
    assert loaded.version == MIGRATIONS[-1][0] and loaded.intents == []
    await asyncio.gather(*(j.add_intent(_intent(f"manual-{i}")) for i in range(200)))
    with pytest.raises(sqlite3.IntegrityError):
        await j.add_intent(_intent("manual-7"))  # a client id is journaled once
    assert j.commits < 200  # queued writes shared commits (group commit)
    placed = _intent("manual-3")
    placed.resolve(PLACED, 99, None, None, 5)
    await j.resolve_intent(placed)
    assert await j.add_fill(_fill(5))
    assert not await j.add_fill(_fill(6))
    await j.close()
    conn = read_only(path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    j2 = Journal(path)
    again = await j2.open()
    assert len(again.intents) == 200 and len(again.fills) == 1
    rec = next(r for r in again.intents if r.client_id == "manual-3")
    assert rec.status == PLACED and rec.order_id == 99 and rec.managed is False
    await j2.close()


async def full_disk_journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                            ) -> tuple[Journal, list[str | None], dict[str, int]]:
    """An open journal that retries background writes every 50 ms, the faults it reports, and
    a disk that a test's job makes refuse the next `disk["full"]` writes (2)."""
    import gateway.journal as journal_module

    monkeypatch.setattr(journal_module, "RETRY_S", 0.05)
    j = Journal(tmp_path / "orders.db")
    await j.open()
    faults: list[str | None] = []
    j.on_fault = faults.append
    return j, faults, {"full": 2}


async def drained(j: Journal) -> None:
    """Wait (at most 2 s) for the journal's background writes to land."""
    for _ in range(100):
        if j.backlog == 0:
            return
        await asyncio.sleep(0.02)

async def test_background_writes_the_disk_refuses_wait_and_land_in_order(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A refused background write is kept, retried when the disk takes writes, and nothing
    queued after it lands before it (an older order row must never overwrite a newer one)."""
    j, faults, disk = await full_disk_journal(tmp_path, monkeypatch)

    def refusing(c: sqlite3.Connection) -> None:
        if disk["full"]:
            disk["full"] -= 1
            raise sqlite3.OperationalError("database or disk is full")
    order = OrderRecord(order_id=5, size=1, state="working", status=1, account=1001,
                        owner="manual", contract="C", side=0, order_type=1)
    j.write_soon(j.order_job(order, 1, "hub", True))
    j.write_soon(refusing)                                 # the disk is full from here
    order.status, order.state = 3, "cancelled"             # the job took the row as it was
    j.write_soon(j.order_job(order, 2, "hub", True))
    await drained(j)
    assert j.backlog == 0 and j.later_failed == 0
    assert faults and faults[0] is not None and faults[-1] is None   # faulted, then healed
    rows = await j.query("SELECT status FROM order_events WHERE order_id=5 ORDER BY seq")
    assert [r["status"] for r in rows] == [1, 3]
    assert (await j.query("SELECT status FROM orders WHERE order_id=5"))[0]["status"] == 3
    await j.close()


async def test_day_fills_are_the_account_s_since_the_session_open_newest_first(
        tmp_path: Path) -> None:
    """What the `fills` command answers: the account's fills at or after the day's open (the
    venue's time, else when taken), newest first, cut at the limit."""
    j = Journal(tmp_path / "orders.db")
    await j.open()
    opened = 1_000_000

    def f(trade_id: int, vt: int | None, at_ms: int, account: int = 1001) -> FillRecord:
        return FillRecord(trade_id=trade_id, account=account, order_id=trade_id, owner="manual",
                          client_id=None, contract="C", side=0, size=1, price=1.0, fees=0.0,
                          pnl=None, vt=vt, at_ms=at_ms)
    for rec in (f(1, opened - 1, opened + 5),          # yesterday's, journaled today
                f(2, opened, opened), f(3, opened + 30, opened + 31),
                f(4, None, opened + 20),                # no venue time: when it was taken
                f(5, opened + 40, opened + 41, account=2002)):
        assert await j.add_fill(rec)
    got = await j.day_fills(1001, opened, 10)
    assert [r.trade_id for r in got] == [3, 4, 2]
    assert [r.trade_id for r in await j.day_fills(1001, opened, 2)] == [3, 4]
    await j.close()


async def test_day_refusals_are_the_account_s_since_the_session_open_newest_first(
        tmp_path: Path) -> None:
    """What the `refusals` command answers: the gate's refusals journaled as their events, the
    account's at or after the day's open, newest first, cut at the limit, each once; they
    outlive the journal's close (a restarted gateway answers them too)."""
    opened = 1_000_000

    def r(n: int, at_ms: int, account: int = 1001) -> tuple[RiskEvent, int]:
        return RiskEvent(account=account, event="reject", state="ACTIVE", reason=f"no {n}",
                         rule="max_position", owner="manual", client_id=f"manual-{n}",
                         figures={"lots": n}, refusal_id=f"gateway-1-ab:{n}",
                         order={"kind": "submit", "contract": "C", "side": 0, "size": n}), at_ms

    j = Journal(tmp_path / "orders.db")
    await j.open()
    for msg, at_ms in (r(1, opened - 1), r(2, opened), r(3, opened + 30), r(4, opened + 30),
                       r(5, opened + 40, account=2002), r(3, opened + 50)):   # 3 again: once
        j.write_soon(Journal.refusal_job(msg, at_ms))
    await j.close()
    j = Journal(tmp_path / "orders.db")
    await j.open()
    got = await j.day_refusals(1001, opened, 10)
    assert [(at, m.client_id) for at, m in got] == [
        (opened + 30, "manual-4"), (opened + 30, "manual-3"), (opened, "manual-2")]
    assert got[0][1] == r(4, 0)[0]                  # the event as it was published
    assert [m.client_id for _, m in await j.day_refusals(1001, opened, 1)] == ["manual-4"]
    await j.close()


async def test_a_refusal_the_disk_refuses_is_kept_and_written_when_it_takes_writes(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The gate's refusal stands whatever the disk does: `add_refusal` does not raise, the
    journal reports the fault, and the refusal lands once the disk takes writes again."""
    j, faults, disk = await full_disk_journal(tmp_path, monkeypatch)
    real = Journal.refusal_job

    def refusing(msg: RiskEvent, at_ms: int) -> Callable[[sqlite3.Connection], Any]:
        job = real(msg, at_ms)

        def run(c: sqlite3.Connection) -> Any:
            if disk["full"]:
                disk["full"] -= 1
                raise sqlite3.OperationalError("database or disk is full")
            return job(c)
        return run
    monkeypatch.setattr(Journal, "refusal_job", staticmethod(refusing))
    msg = RiskEvent(account=1001, event="reject", state="ACTIVE", reason="too big",
                    rule="max_position", owner="manual", client_id="manual-1",
                    refusal_id="gateway-1-aa:1", order={"kind": "submit", "size": 9})
    await j.add_refusal(msg, 5)
    assert faults and faults[0] is not None
    await drained(j)
    assert j.backlog == 0 and faults[-1] is None
    assert await j.day_refusals(1001, 0, 10) == [(5, msg)]
    await j.close()
