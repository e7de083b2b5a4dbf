"""Risk settings: program x size defaults, a RISK_* override per number, bad values exit 2."""

from __future__ import annotations

from datetime import time

import pytest

from chillly.settings import load_settings
from gateway.settings import RiskSettings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    import os
    for name in list(os.environ):
        if name.startswith(("RISK_", "TOPSTEP_", "CLOCK_")):
            monkeypatch.delenv(name)


@pytest.mark.parametrize("program, size, start, allowance, lots, micro, dll", [
    ("combine", "50k", 50_000, 2_000, 5, 0.1, None),
    ("combine", "100k", 100_000, 3_000, 10, 0.1, None),
    ("combine", "150k", 150_000, 4_500, 15, 0.1, None),
    ("xfa", "50k", 0, 2_000, 5, 0.1, None),
    ("live", "150K", 150_000, 4_500, 15, 1.0, 4_500),
])
def test_defaults_per_program_and_size(monkeypatch: pytest.MonkeyPatch, program: str,
                                       size: str, start: float, allowance: float, lots: float,
                                       micro: float, dll: float | None) -> None:
    monkeypatch.setenv("TOPSTEP_PROGRAM", program)
    monkeypatch.setenv("TOPSTEP_ACCOUNT_SIZE", size)
    cfg = RiskSettings().risk_config()
    assert (cfg.starting_balance, cfg.mll_allowance, cfg.max_lots, cfg.micro_weight,
            cfg.daily_loss_limit) == (start, allowance, lots, micro, dll)
    assert cfg.mll_buffer == pytest.approx(allowance * 0.1)
    assert (cfg.scaling is not None) == (program == "xfa")


def test_every_number_has_an_override(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"RISK_STARTING_BALANCE": "49000", "RISK_MLL_ALLOWANCE": "1500",
           "RISK_MLL_BUFFER": "50", "RISK_MAX_LOTS": "3", "RISK_MICRO_WEIGHT": "0.5",
           "RISK_SCALING_TABLE": "0:1,500:2", "RISK_ENTRY_CUTOFF": "14:30",
           "RISK_FLATTEN_START": "14:45", "RISK_FLAT_BY": "15:00",
           "RISK_DAILY_LOSS_LIMIT": "700", "RISK_ACCOUNT_ORDERS_PER_MINUTE": "20",
           "RISK_STRATEGY_ORDERS_PER_MINUTE": "5", "RISK_DAILY_CONTRACTS": "50",
           "RISK_HEDGING_FAMILIES": "ES,MES", "RISK_DEFAULT_STOP_TICKS": "12",
           "RISK_SLIPPAGE_TICKS": "2", "RISK_FEES": "ES:2.0", "RISK_FLOOR": "47000"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    c = RiskSettings().risk_config()
    assert (c.starting_balance, c.mll_allowance, c.mll_buffer, c.max_lots, c.micro_weight) == (
        49_000, 1_500, 50, 3, 0.5)
    assert c.scaling == ((0, 1), (500, 2))
    assert (c.entry_cutoff, c.flatten_start, c.flat_by) == (time(14, 30), time(14, 45),
                                                            time(15, 0))
    assert (c.daily_loss_limit, c.account_orders_per_minute, c.strategy_orders_per_minute,
            c.daily_contracts, c.default_stop_ticks, c.slippage_ticks) == (700, 20, 5, 50, 12, 2)
    assert c.families == {"ES": "ES", "MES": "ES"} and c.fee("ES") == 2.0
    assert c.fixed_floor == 47_000
    monkeypatch.setenv("RISK_DAILY_LOSS_LIMIT", "0")
    assert RiskSettings().risk_config().daily_loss_limit is None


@pytest.mark.parametrize("name, value", [
    ("TOPSTEP_PROGRAM", "funded"), ("TOPSTEP_ACCOUNT_SIZE", "75k"),
    ("RISK_MAX_LOTS", "-1"), ("RISK_FLAT_BY", "3pm"), ("RISK_SCALING_TABLE", "a:b"),
    ("RISK_MICRO_WEIGHT", "2"),
])
def test_bad_value_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys,  # type: ignore[no-untyped-def]
                                          name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        load_settings(RiskSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]


def test_deadlines_out_of_order_name_the_variable(monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
                                                  capsys) -> None:
    monkeypatch.setenv("RISK_FLATTEN_START", "15:20")
    with pytest.raises(SystemExit) as exc:
        load_settings(RiskSettings)
    assert exc.value.code == 2 and "RISK_ENTRY_CUTOFF" in capsys.readouterr().err


def test_market_hours_follow_an_always_open_sim_but_never_the_live_venue(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert RiskSettings().market_hours == "cme"
    monkeypatch.setenv("SIM_ALWAYS_OPEN", "1")
    assert RiskSettings().market_hours == "always"
    monkeypatch.setenv("TOPSTEP_API_KEY", "k")
    assert RiskSettings().market_hours == "cme"
    monkeypatch.setenv("RISK_MARKET_HOURS", "always")
    assert RiskSettings().market_hours == "always"
