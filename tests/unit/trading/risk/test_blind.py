"""The gate with marks and without: a venue mark keeps equity, the MLL halt and the flatten
working when the quotes stop; a held contract with no fresh mark at all refuses entries (rule
`blind`) but never exits."""

from __future__ import annotations

import pytest

from tests.unit.trading.risk.rig import BUY, ES, MES, SELL, WED, gate, intent, pos, view
from trading import marks as M
from trading.risk.types import HALTED, BookView, Flatten, QuoteView


def q(contract: str, bid: float, ask: float, t: int) -> QuoteView:
    return QuoteView(contract, bid, ask, bid, t)


def with_quotes(v: BookView, *quotes: QuoteView) -> BookView:
    return BookView(v.account_id, v.account_name, v.now_ms, v.balance, v.realized_pnl,
                    v.open_pnl, v.can_trade, v.trading_state, v.positions, v.orders,
                    {x.contract: x for x in quotes})


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
