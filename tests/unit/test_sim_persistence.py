"""The sim's trading state written and read back (pure parts: snapshot, restore)."""

from __future__ import annotations

import orjson

from chillly.clock import iso_to_ms
from sim.persistence import restore, snapshot
from sim.prices import Tape
from tests.unit.sim_trading_rig import ACCOUNT, ES, Rig


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
