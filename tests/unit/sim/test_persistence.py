"""The sim's trading state written and read back (pure parts: snapshot, restore)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from chillly.clock import iso_to_ms
from sim.persistence import StateError, StateFile, restore, snapshot
from sim.market.tape import Tape
from tests.unit.sim.exchange.engine_rig import ACCOUNT, ES, Rig


def views(rig: Rig) -> dict:
    return {"orders": rig.orders(), "positions": rig.positions(), "trades": rig.trades(),
            "accounts": rig.call("/api/Account/search", {})["accounts"],
            "risk": rig.engine.risk(ACCOUNT), "breaches": rig.engine.breaches()}


def test_a_restored_engine_answers_like_the_one_that_saved() -> None:
    rig = Rig(enforce=())
    tape = Tape(7)
    rig.market_at(6000.0)
    rig.place(type=2, side=0, size=6)                                     # a breach
    rig.place(type=1, side=0, size=1, limitPrice=5990.0, customTag="keep",
              stopLossBracket={"ticks": -20, "type": 4},
              takeProfitBracket={"ticks": 20, "type": 1})
    rig.place(type=5, side=1, size=1, trailPrice=5995.0)
    tape.add_drift(ES.id, -8, 60, 1.5, iso_to_ms("2026-11-24T15:00:00Z"))
    data = orjson.loads(orjson.dumps(snapshot(rig.engine, tape)))

    again = Rig(enforce=())
    tape2 = Tape(7)
    restore(again.engine, tape2, data)
    again.market.bid, again.market.ask = dict(rig.market.bid), dict(rig.market.ask)
    again.market.last = dict(rig.market.last)
    assert views(again) == views(rig)
    assert tape2.drifts == tape.drifts
    assert tape2.level_ticks(ES.id, 29_500_000) == tape.level_ticks(ES.id, 29_500_000)
    # it goes on trading: the resting limit fills, its brackets go live, the tag stays taken
    again.market_at(6000.0)
    again.trade(5990.0)
    assert [o["status"] for o in again.orders() if o["customTag"] == "keep"] == [2]
    assert again.place(type=2, side=0, customTag="keep")["errorCode"] == 2
    new_ids = [o["id"] for o in again.orders()]
    assert len(set(new_ids)) == len(new_ids)


def test_the_enforcement_switch_is_saved_and_old_snapshots_keep_the_setting() -> None:
    rig = Rig()
    tape = Tape(7)
    rig.engine.dirty = False
    rig.engine.set_enforcement(["mll", "flat_by"])
    assert rig.engine.dirty                       # a switch is a change to save
    data = orjson.loads(orjson.dumps(snapshot(rig.engine, tape)))
    assert data["enforce"] == ["flat_by", "mll"]
    again = Rig()                                 # SIM_ENFORCE=all
    restore(again.engine, Tape(7), data)
    assert again.engine.enforce == {"flat_by", "mll"}
    del data["enforce"]                           # a snapshot from before the switch was saved
    older = Rig(enforce=("daily_loss",))
    restore(older.engine, Tape(7), data)
    assert older.engine.enforce == {"daily_loss"}


def test_a_state_file_with_an_unknown_rule_is_refused(tmp_path: Path) -> None:
    rig = Rig()
    data = snapshot(rig.engine, Tape(7))
    data["enforce"] = ["no_such_rule"]
    path = tmp_path / "state.json"
    path.write_bytes(orjson.dumps(data))
    with pytest.raises(StateError, match="no_such_rule"):
        StateFile(path, Rig().engine, Tape(7)).load()
