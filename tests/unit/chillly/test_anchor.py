"""chillly/anchor.py: the anchor scripts/run starts with keeps market time moving forward."""

from __future__ import annotations

from pathlib import Path

import pytest

from chillly.anchor import choose_anchor, market_ms, read_saved, refuse_earlier, save
from chillly.errors import StartupError

HOUR = 3_600_000


def test_same_speed_keeps_the_saved_anchor_and_another_speed_continues_its_market_time() -> None:
    anchor, real = 1_000 * HOUR, 1_000 * HOUR + 10_000          # ran 10 real s at 3600x
    assert choose_anchor((anchor, 3600.0), 3600.0, real) == anchor
    before = market_ms(anchor, 3600.0, real)
    slower = choose_anchor((anchor, 3600.0), 60.0, real)
    assert slower is not None and abs(market_ms(slower, 60.0, real) - before) < 100
    assert market_ms(slower, 60.0, real + 1_000) > before


def test_nothing_saved_is_now_a_given_anchor_wins_and_speed_one_is_the_wall_clock() -> None:
    assert choose_anchor(None, 60.0, 5 * HOUR) == 5 * HOUR
    assert choose_anchor((HOUR, 60.0), 60.0, 5 * HOUR, given_ms=2 * HOUR) == 2 * HOUR
    assert choose_anchor((HOUR, 60.0), 1.0, 5 * HOUR) is None


def test_the_file_round_trips_and_a_bad_one_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sim" / "clock-anchor.json"
    assert read_saved(path) is None
    save(path, 7 * HOUR, 60.0)
    assert read_saved(path) == (7 * HOUR, 60.0)
    path.write_text("{}")
    with pytest.raises(ValueError, match="clock-anchor.json"):
        read_saved(path)


def test_an_earlier_market_time_than_the_state_is_refused_in_one_line() -> None:
    refuse_earlier("state", None, 0)
    refuse_earlier("state", HOUR, HOUR)
    with pytest.raises(StartupError) as err:
        refuse_earlier("the sim's state", 2 * HOUR, HOUR)
    assert "\n" not in str(err.value) and "backwards" in str(err.value)
