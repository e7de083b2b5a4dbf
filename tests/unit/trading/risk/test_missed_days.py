"""Downtime across 17:00 CT (issue 20, 2.4): the days a stopped gateway did not see close are
rebuilt from the venue's trades at start, so the floor is the venue's, not the one of the day
it stopped on."""

from __future__ import annotations

from trading.risk.calendar import CmeCalendar
from trading.risk.memory import RiskMemory, missed_eod
from tests.unit.trading.risk.rig import BUY, ES, ct, gate, intent, view

CAL = CmeCalendar()
#: Stopped on Monday 2026-11-16 (its EOD not seen), started again on Thursday 10:00 CT; the
#: account made +1,500 on Tuesday and +1,000 on Wednesday on the web platform meanwhile.
TRADES = [(ct(2026, 11, 17, 9, 0), 1_500.0), (ct(2026, 11, 18, 11, 0), 1_000.0)]
THU = ct(2026, 11, 19, 10, 0)


def _memory_of_monday() -> RiskMemory:
    m = RiskMemory()
    m.record_eod("2026-11-13", 50_000.0)
    m.day, m.sod_balance, m.last_balance = "2026-11-16", 50_000.0, 50_000.0
    return m


def test_the_missed_days_are_rebuilt_from_the_venues_trades() -> None:
    missed = missed_eod("2026-11-16", 52_500.0, TRADES, THU, CAL)
    assert missed == {"2026-11-16": 50_000.0, "2026-11-17": 51_500.0, "2026-11-18": 52_500.0}
    assert missed_eod("2026-11-19", 52_500.0, TRADES, THU, CAL) == {}   # nothing missed


def test_after_the_catch_up_the_floor_is_the_venues() -> None:
    """Without it (the old start) the roll took the balance last seen on Monday as every
    EOD: high water 50,000, floor 48,000 where Topstep's is 50,000 (H 52,500 - 2,000, capped
    at S), and a 5-lot entry whose worst case ends below the real floor passed."""
    entry = intent(ES, BUY, 5, sl_ticks=40)    # worst case 5 x 40 x 12.5 = 2,500 + fees
    old = gate(memory=_memory_of_monday())
    old.due(view(THU, balance=52_500.0), THU)
    assert old.floor() == 48_000.0 and old.check(entry, view(THU, balance=52_500.0)).decision == "allow"
    new = gate(memory=_memory_of_monday())
    new.memory.catch_up(missed_eod("2026-11-16", 52_500.0, TRADES, THU, CAL))
    new.due(view(THU, balance=52_500.0), THU)
    assert new.memory.high_water == 52_500.0 and new.floor() == 50_000.0
    assert new.memory.sod_balance == 52_500.0
    verdict = new.check(entry, view(THU, balance=52_500.0))
    assert verdict.decision == "reject" and verdict.rule == "mll", verdict
