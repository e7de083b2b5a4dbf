"""The gateway's side of marks: the positions book marks open P&L from the newest of quote and
venue mark, `chillly risk` names a blind contract, the mark settings reach the gate."""

from __future__ import annotations

from pathlib import Path

import pytest

from chillly.settings import load_settings
from trading.positions import Book, Spec
from gateway.settings import RiskSettings
from gateway.tools import render
from tests.unit.trading.risk.rig import ES, WED, gate, pos, view
from trading import marks as M
from trading.marks import QuoteView


def q(contract: str, bid: float, ask: float, t: int) -> QuoteView:
    return QuoteView(contract, bid, ask, bid, t)


def test_the_book_marks_open_pnl_from_the_newest_of_quote_and_venue_mark() -> None:
    b = Book(1001, specs={ES: Spec(0.25, 12.5, "ES")})
    b.set_venue_position(ES, 1, 2, 6000.0)          # long 2 at 6000
    assert b.open_pnl() == 0.0 and b.marks() == {}
    b.set_quote(q(ES, 5990.0, 5990.25, WED - 30_000))
    assert b.open_pnl() == -1000.0                  # 40 ticks x 12.5 x 2
    b.set_venue_mark(M.venue_mark(ES, 5980.0, 0.25, WED))
    assert b.open_pnl() == -2025.0                  # (5979.75 - 6000) / .25 * 12.5 * 2
    assert b.marks()[ES].t == WED and b.view(ES).open_pnl == -2025.0
    b.set_quote(q(ES, 5995.0, 5995.25, WED + 1))    # the quotes are back: they win again
    assert b.open_pnl() == -500.0


def test_the_risk_tool_names_a_blind_contract() -> None:
    g = gate(default_stop_ticks=4)
    held = view(positions=(pos(ES, 2),))                 # never priced
    assert f"BLIND      no price for {ES}" in render(g.report(held, WED))


def test_mark_settings_reach_the_gate_and_bad_values_exit_2(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("RISK_MARK_MAX_AGE", "RISK_MARK_POLL_INTERVAL", "RISK_MARK_FALLBACK"):
        monkeypatch.delenv(name, raising=False)
    s = RiskSettings()
    assert (s.risk_mark_max_age, s.risk_mark_poll_interval, s.risk_mark_fallback) == (
        15.0, 3.0, True)
    assert s.risk_config().mark_max_age_s == 15.0
    monkeypatch.setenv("RISK_MARK_MAX_AGE", "30")
    monkeypatch.setenv("RISK_MARK_FALLBACK", "off")
    s = RiskSettings()
    assert s.risk_config().mark_max_age_s == 30.0 and s.risk_mark_fallback is False
    monkeypatch.setenv("RISK_MARK_MAX_AGE", "0")
    with pytest.raises(SystemExit) as exc:
        load_settings(RiskSettings)
    err = capsys.readouterr().err.strip().splitlines()
    assert exc.value.code == 2 and len(err) == 1 and "RISK_MARK_MAX_AGE" in err[0]
