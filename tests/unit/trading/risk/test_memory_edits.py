"""`chillly risk --set-high-water X` may only raise what the gate knows, never loosen it."""

from __future__ import annotations

import math

import pytest

from tests.unit.trading.risk.rig import gate


def test_the_high_water_mark_refuses_nan_and_infinity() -> None:
    """Fails on the old code: NaN was taken, and with H = NaN the floor min(S, max(S - D,
    NaN - D)) came out as S - D whatever the account had made."""
    g = gate()
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="finite"):
            g.set_high_water(bad)
    assert g.memory.high_water is None


def test_the_high_water_mark_cannot_go_below_a_recorded_end_of_day_balance() -> None:
    """Fails on the old code: 48,000 lowered a 50K Combine's floor from 48,500 (EOD 50,500)
    to 48,000."""
    g = gate()
    g.memory.record_eod("2026-11-17", 50_500.0)
    assert g.floor() == 48_500.0
    with pytest.raises(ValueError, match="50,500"):
        g.set_high_water(48_000.0)
    assert g.floor() == 48_500.0
    g.set_high_water(51_000.0)                 # history the gateway did not see: allowed
    assert g.floor() == 49_000.0
