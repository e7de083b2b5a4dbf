"""Defect 7: sim and live state apart. A market database records the venue whose bars it holds;
a store, the readers (series, aggregator, `chillly bars`) configured for another venue refuse it
with one line and exit 2,
and by default each venue's store writes its own RUN_DIR/<venue>/market.db."""

from __future__ import annotations

import sqlite3

from tests.integration.test_store_support import Heartbeats
from tests.support import START_TIMEOUT, aeventually

LIVE = {"TOPSTEP_API_KEY": "not-used-by-the-store", "STORE_RECOVER": "false"}


def venue_of(path: object) -> str:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return str(conn.execute("SELECT value FROM meta WHERE key='venue'").fetchone()[0])
    finally:
        conn.close()


async def test_a_sim_database_is_refused_by_a_live_configuration(procs, bus) -> None:
    hb = Heartbeats(bus)
    db = procs.env["DATABASE_PATH"]
    sim = procs.chillly("store", env={"STORE_RECOVER": "false"}, name="store-sim")
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="sim store running")
    assert sim.terminate() == 0
    assert venue_of(db) == "sim"
    live = procs.chillly("store", env=LIVE, name="store-live")
    assert live.wait(60) == 2
    err = [ln for ln in live.log().splitlines() if ln.startswith("chillly store:")]
    assert len(err) == 1 and "holds bars from venue 'sim'" in err[0], live.log()
    assert "'topstepx'" in err[0]
    for reader in ("series", "aggregator"):       # readers refuse it as well
        proc = procs.chillly(reader, env=LIVE, name=f"{reader}-live")
        assert proc.wait(60) == 2
        assert "holds bars from venue 'sim'" in proc.log(), proc.log()
    tool = procs.chillly("bars", "ES", "--db", env=LIVE, name="bars-live")
    assert tool.wait(60) == 2
    assert "holds bars from venue 'sim'" in tool.log()
    assert venue_of(db) == "sim"        # nothing was written by the refused side


async def test_by_default_each_venue_writes_its_own_database(procs, bus) -> None:
    hb = Heartbeats(bus)
    run = procs.tmp / "run"
    sim = procs.chillly("store", env={"STORE_RECOVER": "false", "DATABASE_PATH": ""},
                        name="store-sim")
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="sim store running")
    assert sim.terminate() == 0
    live = procs.chillly("store", env={**LIVE, "DATABASE_PATH": ""}, name="store-live")
    await aeventually(lambda: hb.pid("store") == live.pid and hb.running("store"),
                      timeout=START_TIMEOUT, what="live store running on its own database")
    assert live.terminate() == 0
    assert venue_of(run / "sim" / "market.db") == "sim"
    assert venue_of(run / "topstepx" / "market.db") == "topstepx"
