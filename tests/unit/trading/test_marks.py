"""Marks of held contracts (trading/marks.py): venue marks, the newest and fresh mark, blind
contracts, when to poll the venue."""

from __future__ import annotations

from trading import marks as M
from trading.marks import QuoteView

ES = "CON.F.US.EP.Z26"
MES = "CON.F.US.MES.Z26"
WED = 1_795_536_000_000          # an instant, epoch ms (the helpers take time as given)
AGE = 15_000


def q(contract: str, bid: float, ask: float, t: int) -> QuoteView:
    return QuoteView(contract, bid, ask, bid, t)


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
