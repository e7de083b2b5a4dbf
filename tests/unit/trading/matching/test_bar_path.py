"""Each fill rule of trading/matching/bar_path.py on hand-made bars (ES: tick 0.25)."""

from __future__ import annotations

import pytest

from trading.matching.bar_path import (BUY, SELL, FillRules, Resting, next_fill, price_at,
                                       price_path, trigger)

ES = FillRules(tick=0.25, slippage=1)


def test_the_path_visits_the_nearer_extreme_first() -> None:
    assert price_path(100.0, 101.0, 98.0, 99.0) == (100.0, 101.0, 98.0, 99.0)   # high nearer
    assert price_path(100.0, 103.0, 99.5, 102.0) == (100.0, 99.5, 103.0, 102.0)  # low nearer
    assert price_path(100.0, 101.0, 99.0, 100.0) == (100.0, 101.0, 99.0, 100.0)  # tie: high
    assert price_at((100.0, 101.0, 98.0, 99.0), 1.5) == 99.5


def test_a_market_order_fills_at_the_open_plus_slippage() -> None:
    path = price_path(100.0, 101.0, 98.0, 99.0)
    assert trigger(path, Resting("b", BUY, 1, "market"), ES) == (0.0, 100.25)
    assert trigger(path, Resting("s", SELL, 1, "market"), ES) == (0.0, 99.75)
    no_slip = FillRules(tick=0.25, slippage=0)
    assert trigger(path, Resting("b", BUY, 1, "market"), no_slip) == (0.0, 100.0)
    three = FillRules(tick=0.25, slippage=3)
    assert trigger(path, Resting("b", BUY, 1, "market"), three) == (0.0, 100.75)


def test_a_market_order_born_inside_the_bar_fills_where_the_path_is() -> None:
    path = (100.0, 101.0, 98.0, 99.0)
    assert trigger(path, Resting("s", SELL, 1, "market", start=1.0), ES) == (1.0, 100.75)
    assert trigger(path, Resting("s", SELL, 1, "market", start=1.5), ES) == (1.5, 99.25)


def test_a_stop_fills_when_the_path_touches_it_plus_slippage() -> None:
    path = price_path(100.0, 101.0, 98.0, 99.0)        # 100 -> 101 -> 98 -> 99
    s, price = trigger(path, Resting("bs", BUY, 1, "stop", 101.0), ES)  # type: ignore[misc]
    assert (s, price) == (1.0, 101.25)                  # touched (not through) is enough
    assert trigger(path, Resting("bs", BUY, 1, "stop", 101.25), ES) is None
    s, price = trigger(path, Resting("ss", SELL, 1, "stop", 99.0), ES)  # type: ignore[misc]
    assert price == 98.75 and 1.0 < s < 2.0             # on the way down from 101 to 98


def test_a_stop_the_bar_opens_beyond_fills_at_the_open_plus_slippage() -> None:
    path = price_path(95.0, 96.0, 94.0, 95.0)           # gap down through a sell stop at 98
    assert trigger(path, Resting("ss", SELL, 1, "stop", 98.0), ES) == (0.0, 94.75)


def test_a_limit_fills_only_when_the_path_trades_through_it() -> None:
    path = price_path(100.0, 101.0, 98.0, 99.0)
    assert trigger(path, Resting("bl", BUY, 1, "limit", 98.0), ES) is None      # low == limit
    s, price = trigger(path, Resting("bl", BUY, 1, "limit", 98.25), ES)  # type: ignore[misc]
    assert price == 98.25 and 1.0 < s < 2.0                                  # no slippage
    assert trigger(path, Resting("sl", SELL, 1, "limit", 101.0), ES) is None
    assert trigger(path, Resting("sl", SELL, 1, "limit", 100.75), ES)[1] == 100.75  # type: ignore[index]


def test_limit_fill_touch_fills_on_touch() -> None:
    touch = FillRules(tick=0.25, slippage=1, limit_fill="touch")
    path = price_path(100.0, 101.0, 98.0, 99.0)
    assert trigger(path, Resting("bl", BUY, 1, "limit", 98.0), touch)[1] == 98.0  # type: ignore[index]
    assert trigger(path, Resting("sl", SELL, 1, "limit", 101.0), touch)[1] == 101.0  # type: ignore[index]
    assert trigger(path, Resting("sl", SELL, 1, "limit", 101.25), touch) is None


def test_a_limit_marketable_where_it_starts_fills_there() -> None:
    path = price_path(97.0, 97.5, 96.5, 97.0)           # opens below a buy limit at 98
    assert trigger(path, Resting("bl", BUY, 1, "limit", 98.0), ES) == (0.0, 97.0)


def test_when_one_bar_reaches_both_legs_the_stop_loss_fills() -> None:
    # Long from 100: take-profit 101 is reached first on the path (100 -> 101 -> 98), the
    # stop-loss 99 after it; the rule says the stop-loss fills.
    path = price_path(100.0, 101.5, 98.0, 99.0)
    tp = Resting("tp", SELL, 1, "limit", 101.0, oco="e1")
    sl = Resting("sl", SELL, 1, "stop", 99.0, oco="e1", stop_leg=True)
    assert trigger(path, tp, ES)[0] < trigger(path, sl, ES)[0]  # type: ignore[index]
    order, s, price = next_fill(path, [tp, sl], ES)  # type: ignore[misc]
    assert order is sl and price == 98.75
    # Only the take-profit reached: it fills.
    path = price_path(100.0, 101.5, 99.5, 101.0)
    order, s, price = next_fill(path, [tp, sl], ES)  # type: ignore[misc]
    assert order is tp and price == 101.0


def test_an_order_acts_only_from_its_start_on_the_path() -> None:
    # A stop-loss born at the entry's fill (s = 1.5, on the way down) does not see the high.
    path = (100.0, 102.0, 98.0, 99.0)
    late = Resting("bs", BUY, 1, "stop", 101.0, start=1.5)
    assert trigger(path, late, ES) is None
    early = Resting("bs", BUY, 1, "stop", 101.0, start=0.0)
    assert trigger(path, early, ES) is not None
    assert trigger(path, Resting("x", BUY, 1, "market", start=3.5), ES) is None


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError):
        FillRules(tick=0.25, limit_fill="sometimes")
    with pytest.raises(ValueError):
        FillRules(tick=0.25, slippage=-1)
