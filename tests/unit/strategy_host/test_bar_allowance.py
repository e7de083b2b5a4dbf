"""STRATEGY_MAX_BAR_AGE as the host gives it to the engine: market seconds, never under ten wall
seconds of market time at the clock's speed, 0 for off; a bad value stops the host (exit 2)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chillly.settings import load_settings
from strategy_host.settings import HostSettings


@pytest.mark.parametrize("setting, speed, allowance_ms", [
    ("120", "1", 120_000),      # the setting, in market seconds
    ("120", "60", 600_000),     # never under 10 wall seconds of market time
    ("900", "60", 900_000),
    ("0", "60", 0),             # off, at any speed
])
def test_allowance(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, setting: str, speed: str,
                   allowance_ms: int) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRATEGY_MAX_BAR_AGE", setting)
    monkeypatch.setenv("CLOCK_SPEED", speed)
    monkeypatch.setenv("CLOCK_ANCHOR", "2026-01-13T23:30:00Z")
    assert load_settings(HostSettings).bar_allowance_ms == allowance_ms


def test_default_is_two_market_minutes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STRATEGY_MAX_BAR_AGE", raising=False)
    monkeypatch.delenv("CLOCK_SPEED", raising=False)
    assert load_settings(HostSettings).bar_allowance_ms == 120_000


@pytest.mark.parametrize("value", ["-1", "ten", "nan"])
def test_a_bad_value_exits_2_naming_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str], value: str) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("STRATEGY_MAX_BAR_AGE", value)
    with pytest.raises(SystemExit) as exc:
        load_settings(HostSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "STRATEGY_MAX_BAR_AGE" in err and err.count("\n") == 1
