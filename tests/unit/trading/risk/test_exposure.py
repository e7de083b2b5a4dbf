"""Exposure with bracket legs: a leg that can fill counts in full on its side."""

from __future__ import annotations

from tests.unit.trading.risk.rig import BUY, ES, SELL, gate, intent, order, pos, view


def test_a_leg_and_a_new_entry_of_its_side_can_both_fill() -> None:
    """Hypothesis found it (tests/unit/test_risk_properties.py): long 1 with its stop-loss
    working, a sell 6 was allowed on a 5-lot cap (the leg counted only beyond the position it
    closes, so the gate saw |1 - 6| = 5); both filling leave short 6. Fails on the old code."""
    g = gate(default_stop_ticks=4)
    stop = order(ES, SELL, 1, parent_id=9001)               # its entry 9001 has filled
    long1 = view(positions=(pos(ES, 1),), orders=(stop,), quotes={ES: (6000.0, 6000.25)})
    assert g.check(intent(ES, SELL, 6), long1).rule == "max_position"
    assert g.check(intent(ES, SELL, 5), long1).allowed      # short 5 at worst


def test_the_stop_and_the_target_of_one_entry_count_once() -> None:
    """One cancels the other: the larger of the pair counts, not both."""
    g = gate(default_stop_ticks=4)
    legs = (order(ES, SELL, 1, parent_id=9001), order(ES, SELL, 1, parent_id=9001))
    long1 = view(positions=(pos(ES, 1),), orders=legs, quotes={ES: (6000.0, 6000.25)})
    assert g.check(intent(ES, SELL, 5), long1).allowed
    assert g.check(intent(ES, SELL, 6), long1).rule == "max_position"
    assert g.check(intent(ES, BUY, 4), long1).allowed       # long 5 at worst
