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


def _leg_modify(order_id: int, size: int, **kw: object) -> object:
    return intent(ES, SELL, size, kind="modify", order_id=order_id, protective=True, **kw)


def test_a_leg_may_not_grow_past_the_position_it_protects() -> None:
    """Fails on the old code (issue 20, section 2 item 1): every order with a parent was
    protective and passed before any rule, so growing the stop of a long 1 to 50 lots passed
    (at the venue the long 1 becomes short 49 when it fires)."""
    g = gate(default_stop_ticks=4)
    stop = order(ES, SELL, 1, parent_id=9001)
    long1 = view(positions=(pos(ES, 1),), orders=(stop,), quotes={ES: (6000.0, 6000.25)})
    r = g.check(_leg_modify(stop.order_id, 50), long1)
    assert r.rule == "max_position" and "protects" in r.reason, r
    assert g.check(_leg_modify(stop.order_id, 2), long1).rule == "max_position"
    # Moving it, or keeping it the size of the position, is never held back.
    assert g.check(_leg_modify(stop.order_id, 1, stop_price=5990.0), long1).allowed


def test_a_leg_of_a_working_entry_may_be_the_entrys_size_and_no_more() -> None:
    g = gate(default_stop_ticks=4)
    entry = order(ES, BUY, 3, order_id=9002)
    stop = order(ES, SELL, 1, parent_id=9002)
    v = view(orders=(entry, stop), quotes={ES: (6000.0, 6000.25)})
    assert g.check(_leg_modify(stop.order_id, 3), v).allowed
    assert g.check(_leg_modify(stop.order_id, 4), v).rule == "max_position"


def test_a_leg_that_grows_within_its_position_still_meets_the_cap() -> None:
    """A leg no bigger than its position can still take the account past the cap together with
    a working order of its side: long 5, its stop grown from 1 to 5 beside a working sell 6
    reaches short 6 (5 - 5 - 6); beside a sell 5, short 5, at the cap."""
    g = gate(default_stop_ticks=4)
    stop = order(ES, SELL, 1, parent_id=9001)
    sell = order(ES, SELL, 6)
    v = view(positions=(pos(ES, 5),), orders=(stop, sell), quotes={ES: (6000.0, 6000.25)})
    assert g.check(_leg_modify(stop.order_id, 5), v).rule == "max_position"   # short 6
    v2 = view(positions=(pos(ES, 5),), orders=(stop, order(ES, SELL, 5)),
              quotes={ES: (6000.0, 6000.25)})
    assert g.check(_leg_modify(stop.order_id, 5), v2).allowed                  # short 5
