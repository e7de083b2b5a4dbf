"""Marks of held contracts (trading/marks.py) and the gate when it has none: a venue mark keeps
equity, the MLL halt and the flatten working when the quotes stop; a held contract with no fresh
mark at all refuses entries (rule `blind`) but never exits."""

from __future__ import annotations

from pathlib import Path

import pytest

from chillly.settings import load_settings
from trading import marks as M
from gateway.book import Book, Spec
from gateway.gate import HALTED, BookView, Flatten, QuoteView
from gateway.risk_settings import RiskSettings
from gateway.tools import render
from tests.unit.risk_rig import BUY, ES, MES, SELL, WED, gate, intent, pos, view

AGE = 15_000


def q(contract: str, bid: float, ask: float, t: int) -> QuoteView:
    return QuoteView(contract, bid, ask, bid, t)


def with_quotes(v: BookView, *quotes: QuoteView) -> BookView:
    return BookView(v.account_id, v.account_name, v.now_ms, v.balance, v.realized_pnl,
                    v.open_pnl, v.can_trade, v.trading_state, v.positions, v.orders,
                    {x.contract: x for x in quotes})


# ------------------------------------------------------------------ the pure helpers


def test_a_venue_mark_is_a_tick_worse_than_the_last_trade_for_either_side() -> None:
    m = M.venue_mark(ES, 6000.0, 0.25, WED)
    assert (m.bid, m.ask, m.last, m.t) == (5999.75, 6000.25, 6000.0, WED)


def test_the_newest_mark_wins_and_only_a_young_priced_one_is_fresh() -> None:
    old, new = q(ES, 1.0, 1.25, WED - 20_000), q(ES, 2.0, 2.25, WED - 1_000)
    assert M.newest(old, new) is new and M.newest(new, old) is new
    assert M.newest(None, old) is old and M.newest(old, None) is old
    assert M.fresh(new, WED, AGE) and not M.fresh(old, WED, AGE)
    assert M.fresh(q(ES, 1.0, 1.25, WED - AGE), WED, AGE)          # at the age: still fresh
    assert not M.fresh(QuoteView(ES, None, None, None, WED), WED, AGE)  # no price in it
    assert not M.fresh(None, WED, AGE)


def test_blind_names_held_contracts_without_a_fresh_mark_with_their_age() -> None:
    marks = {ES: q(ES, 1.0, 1.25, WED - 42_000), MES: q(MES, 1.0, 1.25, WED)}
    assert M.blind([ES, MES], marks, WED, AGE) == {ES: 42_000}
    assert M.blind([ES, MES, "CON.F.US.ENQ.Z26"], marks, WED, AGE) == {
        ES: 42_000, "CON.F.US.ENQ.Z26": None}
    assert M.blind([MES], marks, WED, AGE) == {}
    assert "no price yet" in M.describe({ES: None}) and "42 s" in M.describe({ES: 42_000})


def test_polls_are_due_for_stale_quotes_once_per_interval_blindest_first() -> None:
    quotes = {ES: q(ES, 1.0, 1.25, WED - 20_000), MES: q(MES, 1.0, 1.25, WED - 1_000)}
    venue = {ES: q(ES, 1.0, 1.25, WED - 5_000)}
    nq = "CON.F.US.ENQ.Z26"
    # MES is quoted; ES and NQ are stale; NQ was never marked, so it goes first.
    assert M.polls_due([ES, MES, nq], quotes, venue, {}, WED, AGE, 3_000) == [nq, ES]
    tried = {ES: WED - 1_000, nq: WED - 3_000}
    assert M.polls_due([ES, MES, nq], quotes, venue, tried, WED, AGE, 3_000) == [nq]


def test_the_loop_wakes_when_a_quote_goes_stale_or_a_poll_is_due() -> None:
    quotes = {ES: q(ES, 1.0, 1.25, WED - 10_000)}
    assert M.next_due_ms([ES], quotes, {}, WED, AGE, 3_000) == WED + 3_000   # interval first
    assert M.next_due_ms([ES], quotes, {}, WED, AGE, 10_000) == WED + 5_001  # then it is stale
    assert M.next_due_ms([MES], quotes, {MES: WED - 1_000}, WED, AGE, 3_000) == WED + 2_000
    assert M.next_due_ms([MES], quotes, {}, WED, AGE, 3_000) == WED          # never polled
    assert M.next_due_ms([], quotes, {}, WED, AGE, 3_000) == WED + 3_000
    # A poll under way, or no polling at all: no wake for it (its end wakes the loop).
    assert M.next_due_ms([MES], quotes, {MES: WED - 9_000}, WED, AGE, 3_000,
                         busy={MES}) == WED + 3_000
    assert M.next_due_ms([MES], quotes, {}, WED, AGE, 3_000, busy=None) == WED + 3_000


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


# ------------------------------------------------------------------ the gate


def test_blind_refuses_entries_but_lets_exits_through() -> None:
    g = gate(default_stop_ticks=4)
    stale = view(positions=(pos(ES, 2),), quotes={ES: (6000.0, 6000.25)})
    stale = with_quotes(stale, q(ES, 6000.0, 6000.25, WED - 16_000))
    r = g.check(intent(ES, BUY, 1), stale)
    assert r.rule == "blind" and ES in r.reason and "16 s" in r.reason, r
    assert g.last_figures == {"blind": [ES]}
    r = g.check(intent(MES, BUY, 1), stale)             # another contract adds risk too
    assert r.rule == "blind"
    assert g.check(intent(ES, SELL, 1), stale).allowed  # an exit: never held back
    assert g.check(intent(ES, SELL, 2), stale).allowed
    assert g.report(stale, WED)["blind"] == [ES]
    assert f"BLIND      no price for {ES}" in render(g.report(stale, WED))
    # A fresh venue mark is as good as a quote; a flat account needs no price.
    marked = with_quotes(stale, M.venue_mark(ES, 6000.0, 0.25, WED - 2_000))
    assert g.check(intent(ES, BUY, 1), marked).allowed
    assert g.report(marked, WED)["blind"] == []
    assert g.check(intent(ES, BUY, 1), view()).allowed


def test_a_cap_names_its_own_rule_before_blind() -> None:
    g = gate(default_stop_ticks=4)
    blind = view(positions=(pos(ES, 4),))                # never priced
    assert g.check(intent(ES, BUY, 2), blind).rule == "max_position"
    assert g.check(intent(ES, BUY, 1), blind).rule == "blind"


def test_a_venue_mark_alone_halts_and_flattens_at_the_mll_buffer() -> None:
    """Without quotes the book's open P&L is 0 and equity looks like the balance: the venue
    mark is what shows the loss to the gate."""
    g = gate()
    held = (pos(ES, 3, avg=6000.0),)
    unpriced = view(positions=held)
    assert g.due(unpriced, WED) == [] and g.equity(unpriced) == pytest.approx(50_000 - 4.2)
    # 3 ES long from 6000, the venue's last trade 5987.75, marked 5987.50: 50 ticks x 37.5 down
    marked = with_quotes(unpriced, M.venue_mark(ES, 5987.75, 0.25, WED))
    assert g.equity(marked) == pytest.approx(50_000 - 1_875 - 4.2)   # within the 200 buffer
    actions = g.due(marked, WED)
    assert any(isinstance(a, Flatten) and a.rule == "mll" for a in actions), actions
    assert g.state(marked, WED)[0] == HALTED


# ------------------------------------------------------------------ settings


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
