"""`chillly import`: CSV and Databento files round-trip into the market database through the
store's single-writer path (under its lock when no store runs, over the bus when one does);
malformed rows are rejected and counted; a failed import leaves nothing behind; bad input is
one line and exit 2."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from store.queries import bars_between, open_reader
from tests.integration.test_store_support import Heartbeats
from tests.support import START_TIMEOUT, aeventually

CONTRACT = "CON.F.US.EP.H26"
T0 = 1_767_621_600_000          # 2026-01-05 14:00 UTC, a Monday


def _bars(n: int) -> list[tuple[int, float, float, float, float, int]]:
    out = []
    price = 6000.0
    for i in range(n):
        o = price
        c = o + (0.25 if i % 3 else -0.5)
        out.append((T0 + i * 60_000, o, max(o, c) + 0.25, min(o, c) - 0.25, c, 100 + i))
        price = c
    return out


def _write_csv(path: Path, bars: list, bad: list[str] = ()) -> None:  # type: ignore[assignment]
    lines = ["time,open,high,low,close,volume"]
    for i, (t, o, h, lo, c, v) in enumerate(bars):
        iso = f"2026-01-05T{14 + (t - T0) // 3_600_000:02d}:{(t - T0) // 60_000 % 60:02d}:00Z"
        lines.append(f"{iso if i % 2 else t},{o},{h},{lo},{c},{v}")
    lines.extend(bad)
    path.write_text("\n".join(lines) + "\n")


def _stored(db: str, contract: str = CONTRACT) -> list[tuple]:
    conn = open_reader(db)
    try:
        return [(b.t, b.o, b.h, b.l, b.c, b.volume)
                for b in bars_between(conn, contract, "1m", 0, 2**62)]
    finally:
        conn.close()


def _run(procs, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    p = procs.chillly("import", *args, name="import")
    rc = p.wait(60)
    return rc, p.log()


def test_csv_round_trip_under_the_lock_with_malformed_rows_counted(procs, bus_env,
                                                                    tmp_path) -> None:
    bars = _bars(120)
    f = tmp_path / "es.csv"
    _write_csv(f, bars, bad=[
        f"{T0 + 500 * 60_000},6000,5990,6010,6000,5",          # low above high
        f"{T0 + 501 * 60_000},6000,6001,5999,nan,5",            # not a number
        f"{T0 + 502 * 60_000 + 7},6000,6001,5999,6000,5",       # not on a minute
        f"{T0 + 503 * 60_000},6000,6001",                       # short row
        f"{T0},6000,6001,5999,6000,5",                          # the same minute again
    ])
    rc, out = _run(procs, str(f), "--symbol", CONTRACT)
    assert rc == 0, out
    assert "imported 120 1m bars of CON.F.US.EP.H26" in out
    assert "under its lock" in out
    assert "5 rows rejected" in out
    for line, why in ((122, "low above high"), (123, "finite"), (124, "not on a minute"),
                      (125, "unreadable"), (126, "same minute")):
        assert f"line {line}: " in out and why in out, (line, out)
    assert _stored(bus_env["DATABASE_PATH"]) == bars


def test_databento_dbn_and_csv_round_trip_keeping_the_front_month(procs, bus_env,
                                                                  tmp_path) -> None:
    dbn = pytest.importorskip("databento_dbn")
    bars = _bars(90)
    # Two instruments in one file (a parent symbol): the busier one is the day's series.
    recs = []
    for t, o, h, lo, c, v in bars:
        for inst, vol in ((111, v), (222, 1)):
            recs.append(dbn.OHLCVMsg(dbn.RType.OHLCV_1M, 1, inst, t * 1_000_000,
                                     int(o * 1e9), int(h * 1e9), int(lo * 1e9), int(c * 1e9),
                                     vol + (0 if inst == 111 else 0)))
    meta = dbn.Metadata(dataset="GLBX.MDP3", schema=dbn.Schema.OHLCV_1M, start=T0 * 1_000_000,
                        stype_in=dbn.SType.PARENT, stype_out=dbn.SType.INSTRUMENT_ID,
                        symbols=["ES.FUT"], partial=[], not_found=[], mappings=[])
    f = tmp_path / "glbx-mdp3-ohlcv-1m.dbn"
    f.write_bytes(meta.encode() + b"".join(bytes(r) for r in recs))
    rc, out = _run(procs, str(f), "--symbol", CONTRACT, "--format", "databento")
    assert rc == 0, out
    assert "imported 90 1m bars" in out and "90 rows of other instruments left out" in out
    assert _stored(bus_env["DATABASE_PATH"]) == bars

    # Databento's CSV export of the same bars (fixed-point prices, ns timestamps), another
    # contract, with one malformed row.
    lines = ["ts_event,rtype,publisher_id,instrument_id,open,high,low,close,volume,symbol"]
    for t, o, h, lo, c, v in bars:
        lines.append(f"{t * 1_000_000},33,1,111,{int(o * 1e9)},{int(h * 1e9)},{int(lo * 1e9)},"
                     f"{int(c * 1e9)},{v},ESH6")
    lines.append(f"{(T0 + 600 * 60_000) * 1_000_000},33,1,111,1,2,x,1,1,ESH6")
    g = tmp_path / "es.databento.csv"
    g.write_text("\n".join(lines) + "\n")
    rc, out = _run(procs, str(g), "--symbol", "CON.F.US.EP.M26")
    assert rc == 0, out
    assert "1 rows rejected: line 92: unreadable" in out
    assert _stored(bus_env["DATABASE_PATH"], "CON.F.US.EP.M26") == bars


def test_a_failed_import_leaves_nothing(procs, bus_env, tmp_path) -> None:
    """The database refuses the 100th row (a trigger): the 99 before it must not stay. Without
    the single transaction (rows committed as they go) they would."""
    db = bus_env["DATABASE_PATH"]
    f = tmp_path / "es.csv"
    _write_csv(f, _bars(10))
    assert _run(procs, str(f), "--symbol", "CON.F.US.EP.Z25")[0] == 0   # creates the database
    conn = sqlite3.connect(db)
    conn.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON bars WHEN NEW.t = {T0 + 99 * 60_000} "
                 "BEGIN SELECT RAISE(ABORT, 'refused for the test'); END")
    conn.commit()
    conn.close()
    _write_csv(f, _bars(200))
    rc, out = _run(procs, str(f), "--symbol", CONTRACT)
    assert rc == 1, out
    assert "nothing imported" in out
    assert _stored(db) == []
    assert len(_stored(db, "CON.F.US.EP.Z25")) == 10


@pytest.mark.parametrize("content, why", [
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not a bar file"),
    (b"date,price\n2026-01-05,6000\n", "not a bar file"),
    (b"time,open,high,low,close,volume\n1,2,3\n", "no valid bar"),
])
def test_bad_input_is_one_line_and_exit_2(procs, tmp_path, content, why) -> None:
    f = tmp_path / "bad.csv"
    f.write_bytes(content)
    rc, out = _run(procs, str(f), "--symbol", CONTRACT)
    assert rc == 2 and why in out, out
    assert len(out.strip().splitlines()) == 1, out
    rc, out = _run(procs, str(tmp_path / "missing.csv"), "--symbol", CONTRACT)
    assert rc == 2 and "no such file" in out


async def test_through_a_running_store_over_the_bus(procs, bus, bus_env, tmp_path) -> None:
    hb = Heartbeats(bus)
    store = procs.chillly("store", env={"STORE_RECOVER": "false"}, name="store")
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    bars = _bars(1200)          # three BarBatch messages
    f = tmp_path / "es.csv"
    _write_csv(f, bars[:60])
    lines = f.read_text().splitlines()[:1] + [f"{b[0]},{b[1]},{b[2]},{b[3]},{b[4]},{b[5]}"
                                              for b in bars]
    f.write_text("\n".join(lines) + "\n")
    p = procs.chillly("import", str(f), "--symbol", CONTRACT, name="import")
    await aeventually(lambda: not p.alive(), timeout=60, what="import done")
    assert p.wait() == 0, p.log()
    assert "through the running store" in p.log()
    assert _stored(bus_env["DATABASE_PATH"]) == bars
    assert store.alive()
