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


def _step(held: list[str], quotes: dict[str, QuoteView], tried: dict[str, int], polling: set[str],
          polls_at: int, judged_at: int, interval: int = 3_000) -> dict[str, int | None]:
    """The gateway's mark loop, one step: the polls due at `polls_at` start, then blindness is
    judged at `judged_at` (the runner now uses one instant for both)."""
    for c in M.polls_due(held, quotes, {}, tried, polls_at, AGE, interval):
        tried[c] = polls_at
        polling.add(c)
    return M.blind_unpolled(held, quotes, polling, tried, judged_at, AGE, interval)


def test_a_quote_turning_stale_is_polled_before_it_is_ever_blind() -> None:
    quote = q(ES, 6000.0, 6000.25, WED)
    for now in range(WED + AGE - 120, WED + AGE + 120, 7):     # across the staleness boundary
        # One instant for both: stale means a poll started now, so never blind meanwhile.
        assert _step([ES], {ES: quote}, {}, set(), now, now) == {}, now
    # Judged a moment after the polls were decided (two clock reads; a 1 ms stall is 60 market
    # ms at 60x): the quote turned stale in between, no poll was started, and it was blind.
    assert _step([ES], {ES: quote}, {}, set(), WED + AGE, WED + AGE + 60) == {ES: AGE + 60}
    # A poll under way for longer than an interval no longer hides it (the venue is not
    # answering: blind is true then).
    tried = {ES: WED + AGE + 1}
    assert M.blind_unpolled([ES], {ES: quote}, {ES}, tried, WED + AGE + 3_001, AGE, 3_000) \
        == {ES: AGE + 3_001}
