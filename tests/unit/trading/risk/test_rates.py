"""The fair-use rate limit counts every order action (issue 20, section 2, item 6): entries,
orders that only reduce, modifies of bracket legs and cancels alike."""

from __future__ import annotations

from tests.unit.trading.risk.rig import ES, SELL, WED, gate, intent, order, pos, view


def test_reducing_orders_count_and_are_held_to_the_rate() -> None:
    """Fails on the old code: reducing orders were recorded but never checked, so a loop of
    them passed any rate (300 in 45 s against 60 a minute)."""
    g = gate(strategy_orders_per_minute=3, account_orders_per_minute=50)
    long9 = view(WED, positions=(pos(ES, 9),), quotes={ES: (6000.0, 6000.25)})
    for i in range(3):
        assert g.check(intent(ES, SELL, 1, owner="a", reduces=True), long9).allowed
    r = g.check(intent(ES, SELL, 1, owner="a"), long9)
    assert r.rule == "order_rate", r


def test_leg_modifies_and_cancels_count_too() -> None:
    """Fails on the old code: leg modifies passed before any count and cancels were never
    counted (no `count_cancel`)."""
    g = gate(strategy_orders_per_minute=3, account_orders_per_minute=50)
    stop = order(ES, SELL, 1, parent_id=9001, owner="a")
    long1 = view(WED, positions=(pos(ES, 1),), orders=(stop,), quotes={ES: (6000.0, 6000.25)})
    move = intent(ES, SELL, 1, owner="a", kind="modify", order_id=stop.order_id,
                  protective=True, stop_price=5990.0)
    assert g.check(move, long1).allowed
    assert g.count_cancel("a", WED + 1).allowed
    assert g.count_cancel("a", WED + 2).allowed
    assert g.count_cancel("a", WED + 3).rule == "order_rate"
    assert g.check(move, long1).rule == "order_rate"
    assert g.count_cancel("b", WED + 4).allowed                # another owner: its own count
    assert g.count_cancel("a", WED + 61_000).allowed           # a minute later
