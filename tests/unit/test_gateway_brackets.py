"""Managed leg prices (gateway/brackets.py): the average fill -/+ the ticks, on the tick grid
toward the average, so a stop is never farther than the ticks asked for."""

from __future__ import annotations

from gateway.brackets import leg_levels
from trading.risk.types import BUY, SELL


def test_on_grid_averages_give_the_plain_levels() -> None:
    assert leg_levels(BUY, 100.0, 0.25, 4, 8) == (99.0, 102.0)
    assert leg_levels(SELL, 100.0, 0.25, 4, 8) == (101.0, 98.0)


def test_off_grid_averages_round_toward_the_average() -> None:
    # a long at 100.125 (two parts, 100.00 and 100.25): stop 4 ticks under is 99.125 -> 99.25,
    # target 8 ticks over is 102.125 -> 102.00; a short the mirror image
    assert leg_levels(BUY, 100.125, 0.25, 4, 8) == (99.25, 102.0)
    assert leg_levels(SELL, 100.125, 0.25, 4, 8) == (101.0, 98.25)
    # an average within float noise of the grid stays on it
    assert leg_levels(BUY, 6000.0000000001, 0.25, 16, 24) == (5996.0, 6006.0)


def test_a_missing_leg_stays_missing() -> None:
    assert leg_levels(BUY, 100.0, 0.25, None, 8) == (None, 102.0)
    assert leg_levels(SELL, 100.0, 0.25, 4, None) == (101.0, None)
