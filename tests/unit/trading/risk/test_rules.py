"""The risk gate's pure core, rule by rule at its boundaries (topstep-rules.md 1-8)."""

from __future__ import annotations

from datetime import date, time

import pytest

from trading.risk.types import HALTED, REDUCING, CancelEntries, Flatten, SetTradingState
from trading.risk.memory import RiskMemory, rebuild_eod
from trading.risk.calendar import CmeCalendar, Deadlines
from trading.risk.config import StrategyLimits
from tests.unit.trading.risk.rig import BUY, ES, MES, NQ, SELL, WED, ct, gate, intent, order, pos, view

#: A fresh quote at the rig's average price: a held ES is marked (not blind), open P&L 0.
PRICED = {ES: (6000.0, 6000.25)}

# ------------------------------------------------------------------ rule 2: maximum position


def test_micros_count_a_tenth_on_combine_and_one_on_live() -> None:
    g = gate("combine", "50k", default_stop_ticks=4)
    assert g.check(intent(MES, size=50), view()).allowed
    v = g.check(intent(MES, size=51), view())
    assert v.rule == "max_position" and "5.1 lots" in v.reason
    live = gate("live", "50k", default_stop_ticks=4)
    assert live.check(intent(MES, size=5), view()).allowed
    assert live.check(intent(MES, size=6), view()).rule == "max_position"


def test_mixed_full_and_micro_sum_against_the_cap() -> None:
    g = gate(default_stop_ticks=4)
    held = view(positions=(pos(ES, 4),), quotes=PRICED)
    assert g.check(intent(MES, size=10), held).allowed
    assert g.check(intent(MES, size=11), held).rule == "max_position"


def test_same_side_working_entries_are_counted() -> None:
    g = gate(default_stop_ticks=4)
    v = view(orders=(order(ES, BUY, 3),))
    assert g.check(intent(ES, BUY, 2), v).allowed
    assert g.check(intent(ES, BUY, 3), v).rule == "max_position"
    # Both sides working: the worse reachable side counts, not the sum of both.
    both = view(orders=(order(ES, BUY, 3), order(ES, SELL, 3)))
    assert g.check(intent(ES, SELL, 2), both).allowed
    assert g.check(intent(ES, SELL, 3), both).rule == "max_position"


def test_bracket_children_and_protective_legs_are_not_counted() -> None:
    g = gate(default_stop_ticks=4)
    parent = order(ES, BUY, 2)
    kids = (order(ES, SELL, 2, parent_id=parent.order_id),
            order(ES, SELL, 2, parent_id=parent.order_id),
            order(ES, SELL, 2, protective=True))
    v = view(orders=(parent, *kids))
    # Counting the children (6 sells) would reject a 3-lot sell entry; without them it is 3.
    assert g.check(intent(ES, SELL, 3), v).allowed
    assert g.check(intent(ES, SELL, 6), v).rule == "max_position"


def test_an_order_that_only_reduces_is_always_allowed() -> None:
    g = gate(default_stop_ticks=4)
    at_cap = view(positions=(pos(ES, 5),))
    assert g.check(intent(ES, BUY, 1), at_cap).rule == "max_position"
    assert g.check(intent(ES, SELL, 5), at_cap).allowed
    # Flipping past zero is an entry: 6 sells from long 5 reach short 1 ... allowed by size,
    # but counted: the other working sells make it more than the position.
    with_exit = view(positions=(pos(ES, 5),), orders=(order(ES, SELL, 3),))
    assert g.check(intent(ES, SELL, 2), with_exit).allowed
    # In the flat window only reductions pass.
    late = ct(2026, 11, 18, 15, 2)
    held = view(late, positions=(pos(ES, 2),))
    assert g.check(intent(ES, SELL, 2), held).allowed
    r = g.check(intent(ES, SELL, 3), held)
    assert r.rule == "flat_by" and "REDUCING" in r.reason


def test_reducing_passes_the_loss_rules_but_not_a_halt() -> None:
    g = gate()
    near = view(balance=48_150.0, positions=(pos(ES, 1),), quotes=PRICED)  # in the buffer
    assert g.check(intent(ES, BUY, 1), near).rule == "mll"
    assert g.check(intent(ES, SELL, 1), near).allowed
    g.halt("test")
    assert g.check(intent(ES, SELL, 1), near).rule == "halt"
    assert g.check(intent(ES, SELL, 1, owner="manual"), near).allowed


# ------------------------------------------------------------------ rule 1: MLL floor


def test_combine_floor_trails_only_at_the_1700_reset_and_locks_at_start() -> None:
    g = gate()
    g.check(intent(), view(ct(2026, 11, 18, 10), 50_000.0))
    assert g.floor() == 48_000.0
    g.due(view(ct(2026, 11, 18, 14), 51_000.0), ct(2026, 11, 18, 14))
    assert g.floor() == 48_000.0                 # intraday high: no move
    g.due(view(ct(2026, 11, 18, 16, 59), 51_000.0), ct(2026, 11, 18, 16, 59))
    assert g.floor() == 48_000.0
    g.due(view(ct(2026, 11, 18, 17, 0), 51_000.0), ct(2026, 11, 18, 17, 0))
    assert g.floor() == 49_000.0                 # EOD 51,000 - 2,000
    assert g.memory.eod == {"2026-11-18": 51_000.0}
    g.due(view(ct(2026, 11, 19, 16, 30), 50_200.0), ct(2026, 11, 19, 16, 30))
    g.due(view(ct(2026, 11, 19, 17, 0), 50_200.0), ct(2026, 11, 19, 17, 0))
    assert g.floor() == 49_000.0                 # a lower EOD never lowers it
    for day, bal in ((20, 52_500.0), (23, 60_000.0)):
        g.due(view(ct(2026, 11, day, 16, 30), bal), ct(2026, 11, day, 16, 30))
        g.due(view(ct(2026, 11, day, 17, 1), bal), ct(2026, 11, day, 17, 1))
        assert g.floor() == 50_000.0             # locked at S
    assert g.memory.high_water == 60_000.0


def test_xfa_floor_from_zero_and_after_payout() -> None:
    g = gate("xfa")
    g.check(intent(), view(ct(2026, 11, 18, 10), 0.0))
    assert g.floor() == -2_000.0
    for day, bal, floor in ((18, 1_000.0, -1_000.0), (19, 2_500.0, 0.0), (20, 4_000.0, 0.0)):
        g.due(view(ct(2026, 11, day, 16, 30), bal), ct(2026, 11, day, 16, 30))
        g.due(view(ct(2026, 11, day, 17, 0), bal), ct(2026, 11, day, 17, 0))
        assert g.floor() == floor
    paid = gate("xfa", fixed_floor=0.0)
    assert paid.floor() == 0.0


def test_buffer_rejects_entries_whose_worst_case_reaches_it() -> None:
    g = gate()   # floor 48,000, buffer 200: entries must keep equity - worst case > 48,200
    one = g.worst_loss(ES, 1, None)
    assert one == pytest.approx(41 * 12.5 + 2.8)       # default 40 ticks + 1 slip + fees
    bal = 48_200.0 + 3 * one
    assert g.check(intent(ES, BUY, 2), view(balance=bal + 0.01)).allowed
    r = g.check(intent(ES, BUY, 3), view(balance=bal + 0.01))
    assert r.allowed                                    # 0.01 above the line
    r = g.check(intent(ES, BUY, 3), view(balance=bal))
    assert r.rule == "mll" and "48,000.00" in r.reason
    # A tighter protective stop lowers the worst case.
    assert g.check(intent(ES, BUY, 3, sl_ticks=8), view(balance=bal)).allowed
    # Working entries' worst case counts too.
    v = view(balance=bal + 0.01, orders=(order(ES, BUY, 1),))
    assert g.check(intent(ES, BUY, 3), v).rule == "mll"


def test_equity_marks_longs_at_bid_shorts_at_ask_with_closing_fees() -> None:
    g = gate()
    v = view(positions=(pos(ES, 2, 6000.0), pos(NQ, -1, 21000.0)),
             quotes={ES: (5999.0, 5999.25), NQ: (20999.0, 21001.0)})
    expected = 50_000 + (-1.0 / 0.25 * 12.5 * 2) + (-1.0 / 0.25 * 5.0) - 2 * 1.40 - 1.40
    assert g.equity(v) == pytest.approx(expected)


def test_equity_at_the_buffer_flattens_and_halts_until_the_next_day() -> None:
    g = gate()
    now = ct(2026, 11, 18, 11)
    held = (pos(ES, 1),)
    assert not [a for a in g.due(view(now, 48_205.0, held), now) if isinstance(a, Flatten)]
    acts = g.due(view(now, 48_200.0 + 1.40, held), now)   # equity exactly F + B
    assert any(isinstance(a, SetTradingState) and a.state == HALTED and a.rule == "mll"
               for a in acts)
    assert any(isinstance(a, Flatten) and a.owner is None for a in acts)
    assert g.due(view(now + 1000, 48_201.4, held, trading_state=HALTED), now + 1000) == []
    # Equity recovering does not lift the latch; the 17:00 CT reset does.
    assert g.check(intent(), view(now + 2000, 49_000.0)).rule == "mll"
    nxt = ct(2026, 11, 18, 17, 0)
    acts = g.due(view(nxt, 48_201.4, trading_state=HALTED), nxt)
    assert [a.state for a in acts if isinstance(a, SetTradingState)] == ["ACTIVE"]


# ------------------------------------------------------------------ rule 3: XFA scaling


def test_xfa_scaling_tier_is_fixed_for_the_day() -> None:
    g = gate("xfa", default_stop_ticks=4)
    d1 = ct(2026, 11, 18, 10)
    assert g.check(intent(ES, size=2), view(d1, 0.0)).allowed
    r = g.check(intent(ES, size=3), view(d1, 0.0))
    assert r.rule == "scaling" and "2" in r.reason
    assert g.check(intent(MES, size=21), view(d1, 0.0)).rule == "scaling"   # micros x10
    # An intraday profit past +2,000 does not raise today's cap.
    assert g.check(intent(ES, size=3), view(d1 + 3600_000, 2_600.0)).rule == "scaling"
    g.due(view(ct(2026, 11, 18, 16, 30), 1_600.0), ct(2026, 11, 18, 16, 30))
    d2 = ct(2026, 11, 19, 9)
    assert g.check(intent(ES, size=3), view(d2, 1_600.0)).allowed            # EOD +1,600
    assert g.check(intent(ES, size=4), view(d2, 1_600.0)).rule == "scaling"
    g.due(view(ct(2026, 11, 19, 16, 30), 2_000.0), ct(2026, 11, 19, 16, 30))
    d3 = ct(2026, 11, 20, 9)
    assert g.check(intent(ES, size=5), view(d3, 2_000.0)).allowed
    # A losing day lowers the next day's tier again.
    g.due(view(ct(2026, 11, 20, 15, 30), 1_400.0), ct(2026, 11, 20, 15, 30))
    d4 = ct(2026, 11, 23, 9)
    assert g.check(intent(ES, size=3), view(d4, 1_400.0)).rule == "scaling"


# ------------------------------------------------------------------ rule 4: flat by 15:10 CT


@pytest.mark.parametrize("day", [date(2026, 3, 6), date(2026, 3, 9), date(2026, 10, 30),
                                 date(2026, 11, 2)])
def test_deadlines_in_ct_across_both_dst_changes(day: date) -> None:
    g = gate()
    y, m, d = day.year, day.month, day.day
    dl = g.deadlines(ct(y, m, d, 12))
    assert (dl.entry_cutoff, dl.flatten_start, dl.flat_by) == (
        ct(y, m, d, 15, 0), ct(y, m, d, 15, 5), ct(y, m, d, 15, 10))
    assert dl.end == ct(y, m, d, 17, 0)
    # UTC hour: 20:10 in CDT, 21:10 in CST.
    cdt = date(2026, 3, 8) <= day < date(2026, 11, 1)
    assert (dl.flat_by // 1000 // 3600) % 24 == (20 if cdt else 21)
    assert g.check(intent(), view(ct(y, m, d, 14, 59, 59))).allowed
    assert g.check(intent(), view(ct(y, m, d, 15, 0))).rule == "flat_by"


def test_sunday_open_across_the_spring_change() -> None:
    g = gate()
    sunday_open = ct(2026, 3, 8, 17, 0)           # CDT has begun that morning
    assert g.check(intent(), view(sunday_open - 1)).rule == "hours"
    assert g.check(intent(), view(sunday_open)).allowed
    assert g.deadlines(sunday_open).day == date(2026, 3, 9)


def test_flatten_window_actions() -> None:
    g = gate()
    held = (pos(ES, 2),)
    entry = order(ES, BUY, 1)
    at = ct(2026, 11, 18, 15, 0)
    acts = g.due(view(at, positions=held, orders=(entry,)), at)
    assert [type(a) for a in acts] == [SetTradingState] and acts[0].state == REDUCING
    at = ct(2026, 11, 18, 15, 5)
    acts = g.due(view(at, positions=held, orders=(entry,), trading_state=REDUCING), at)
    assert [type(a) for a in acts] == [Flatten]
    assert g.due(view(at + 500, positions=held, trading_state=REDUCING), at + 500) == []
    # A new position appearing is flattened at once; an order in motion (negative id: sent,
    # or filled but not yet in the position) holds the flatten back.
    more = (pos(ES, 3),)
    assert [type(a) for a in g.due(view(at + 600, positions=more, trading_state=REDUCING),
                                   at + 600)] == [Flatten]
    moving = order(ES, SELL, 3, order_id=-1)
    assert g.due(view(at + 700, positions=(pos(ES, 4),), orders=(moving,),
                      trading_state=REDUCING), at + 700) == []
    # Still held after the retry interval: flatten again.
    later = at + g.retry_ms
    assert [type(a) for a in g.due(view(later, positions=held, trading_state=REDUCING),
                                   later)] == [Flatten]
    # 17:00 CT: a new day, ACTIVE again.
    acts = g.due(view(ct(2026, 11, 18, 17, 0), trading_state=REDUCING), ct(2026, 11, 18, 17, 0))
    assert [a.state for a in acts if isinstance(a, SetTradingState)] == ["ACTIVE"]


def test_early_close_moves_every_deadline_earlier() -> None:
    friday = date(2026, 11, 27)              # after Thanksgiving: 12:15 CT close
    g = gate(early={friday: time(12, 15)})
    dl = g.deadlines(ct(2026, 11, 27, 9))
    assert (dl.entry_cutoff, dl.flatten_start, dl.flat_by, dl.close) == (
        ct(2026, 11, 27, 11, 15), ct(2026, 11, 27, 11, 20), ct(2026, 11, 27, 11, 25),
        ct(2026, 11, 27, 12, 15))
    assert g.check(intent(), view(ct(2026, 11, 27, 11, 14))).allowed
    assert g.check(intent(), view(ct(2026, 11, 27, 11, 15))).rule == "flat_by"
    acts = g.due(view(ct(2026, 11, 27, 11, 20), positions=(pos(ES, 1),)),
                 ct(2026, 11, 27, 11, 20))
    assert any(isinstance(a, Flatten) for a in acts)


def test_holiday_has_no_session() -> None:
    xmas = date(2026, 12, 25)
    g = gate()
    g.cal = CmeCalendar(holidays=frozenset({xmas}))
    assert g.check(intent(), view(ct(2026, 12, 25, 10))).rule == "hours"
    dl = Deadlines.for_day(g.cal, xmas, time(15), time(15, 5), time(15, 10))
    assert dl.close is None


# ------------------------------------------------------------------ rules 5-8


def test_daily_loss_limit_live() -> None:
    assert gate("live").cfg.daily_loss_limit == 2_000.0
    g = gate("live", default_stop_ticks=4, daily_loss_limit=500.0)
    d = ct(2026, 11, 18, 9)
    g.check(intent(), view(d, 50_000.0))
    assert g.check(intent(), view(d, 49_600.0)).allowed
    assert g.check(intent(), view(d, 49_550.0)).rule == "daily_loss"
    now = d + 60_000
    assert not g.due(view(now, 49_501.0), now)
    acts = g.due(view(now, 49_500.0), now)
    assert any(isinstance(a, SetTradingState) and a.rule == "daily_loss" for a in acts)
    assert gate("combine").cfg.daily_loss_limit is None


def test_outside_hours_and_front_month() -> None:
    g = gate()
    assert g.check(intent(), view(ct(2026, 11, 21, 10))).rule == "hours"     # Saturday
    assert g.check(intent(), view(ct(2026, 11, 18, 16, 30))).rule == "hours"  # daily halt
    g.inactive.add(ES)
    assert g.check(intent(), view()).rule == "contract"


def test_no_hedging_within_a_family() -> None:
    g = gate(default_stop_ticks=4)
    long_es = view(positions=(pos(ES, 1),), quotes=PRICED)
    assert g.check(intent(MES, BUY, 2), long_es).allowed
    r = g.check(intent(MES, SELL, 2), long_es)
    assert r.rule == "hedging" and "ES" in r.reason
    assert g.check(intent(NQ, SELL, 1), long_es).allowed                     # other family
    working = view(orders=(order(MES, SELL, 1),))
    assert g.check(intent(ES, BUY, 1), working).rule == "hedging"


def test_order_rates_and_daily_contracts() -> None:
    g = gate(default_stop_ticks=1, strategy_orders_per_minute=3, account_orders_per_minute=5,
             daily_contracts=8)
    t = WED
    for i in range(3):
        assert g.check(intent(owner="a"), view(t + i)).allowed
    assert g.check(intent(owner="a"), view(t + 3)).rule == "order_rate"
    assert g.check(intent(owner="b"), view(t + 4)).allowed
    assert g.check(intent(owner="b"), view(t + 5)).allowed
    assert g.check(intent(owner="c"), view(t + 6)).rule == "order_rate"      # account's 5
    later = t + 61_000
    assert g.check(intent(owner="a", size=3), view(later)).allowed           # 8 contracts
    r = g.check(intent(owner="a"), view(later + 1))
    assert r.rule == "daily_contracts"


# ------------------------------------------------------------------ states and strategies


def test_manual_halt_latches_until_resume_when_flat() -> None:
    g = gate()
    g.halt("news")
    acts = g.due(view(positions=(pos(ES, 1),)), WED)
    assert any(isinstance(a, SetTradingState) and a.state == HALTED and a.rule == "halt"
               for a in acts)
    assert any(isinstance(a, Flatten) for a in acts)
    ok, msg = g.resume(view(positions=(pos(ES, 1),)))
    assert not ok and "not flat" in msg
    assert g.check(intent(), view()).rule == "halt"
    ok, _ = g.resume(view())
    assert ok and g.check(intent(), view()).allowed


def test_can_trade_false_is_halted_without_flattening() -> None:
    g = gate()
    acts = g.due(view(can_trade=False, positions=(pos(ES, 1),)), WED)
    assert [a.rule for a in acts if isinstance(a, SetTradingState)] == ["venue_lock"]
    assert not any(isinstance(a, Flatten) for a in acts)
    assert g.check(intent(), view(can_trade=False)).rule == "venue_lock"


def test_strategy_limits_alone_and_the_account_still_on_the_sum() -> None:
    limits = {"alpha": StrategyLimits(frozenset({"ES"}), 2.0, 30, 300.0),
              "beta": StrategyLimits(None, 5.0, 30, None)}
    g = gate(strategies=limits, default_stop_ticks=4)
    assert g.check(intent(ES, size=2, owner="alpha"), view()).allowed
    assert g.check(intent(ES, size=3, owner="alpha"), view()).rule == "strategy_limit"
    assert g.check(intent(NQ, owner="alpha"), view()).rule == "strategy_limit"
    # beta may hold 5, but alpha's 2 plus beta's 4 would pass the account's 5.
    held = view(positions=(pos(ES, 2), pos(ES, 2, owner="alpha")), quotes=PRICED)
    assert g.check(intent(ES, size=3, owner="beta"), held).allowed
    assert g.check(intent(ES, size=4, owner="beta"), held).rule == "max_position"
    # alpha past its daily loss: halted alone, its share flattened; beta trades on.
    lost = view(positions=(pos(ES, 2), pos(ES, 2, owner="alpha", realized=-310.0)),
                orders=(order(ES, BUY, 1, owner="alpha"),))
    acts = g.due(lost, WED)
    assert any(isinstance(a, CancelEntries) and a.owner == "alpha" for a in acts)
    assert any(isinstance(a, Flatten) and a.owner == "alpha" and a.contract == ES for a in acts)
    assert not any(isinstance(a, SetTradingState) for a in acts)
    assert g.check(intent(ES, owner="alpha"), lost).rule == "strategy_limit"
    assert g.check(intent(ES, SELL, 1, owner="alpha"), lost).allowed        # reduces
    assert g.check(intent(ES, owner="beta"), view()).allowed


def test_protective_legs_always_pass() -> None:
    g = gate()
    g.halt("x")
    assert g.check(intent(ES, SELL, 5, protective=True), view()).allowed


def test_modify_counts_the_order_after_the_change_only_once() -> None:
    g = gate(default_stop_ticks=4)
    working = order(ES, BUY, 3, order_id=77)
    v = view(orders=(working,))
    assert g.check(intent(ES, BUY, 5, kind="modify", order_id=77), v).allowed
    assert g.check(intent(ES, BUY, 6, kind="modify", order_id=77), v).rule == "max_position"


# ------------------------------------------------------------------ what survives


def test_book_round_trip_keeps_floor_day_and_latches() -> None:
    g = gate()
    g.due(view(ct(2026, 11, 18, 16, 30), 51_000.0), ct(2026, 11, 18, 16, 30))
    now = ct(2026, 11, 19, 11)
    g.check(intent(size=2), view(now, 51_000.0))
    g.due(view(now, 49_100.0), now)                           # equity within the buffer
    assert g.memory.day_halt is not None
    again = gate(memory=RiskMemory.from_dict(g.memory.to_dict()))
    assert again.floor() == g.floor() == 49_000.0
    assert again.memory.sod_balance == 51_000.0 and again.memory.contracts_today == 2
    assert again.check(intent(), view(now + 1, 51_000.0)).rule == "mll"
    assert again.state(view(now + 1, 51_000.0), now + 1)[0] == HALTED


def test_rebuild_eod_from_the_venues_trades() -> None:
    cal = CmeCalendar()
    trades = [(ct(2026, 11, 16, 10), 500.0), (ct(2026, 11, 17, 9), -200.0),
              (ct(2026, 11, 17, 18), 300.0), (ct(2026, 11, 18, 10), 100.0)]
    eod = rebuild_eod(50_700.0, trades, ct(2026, 11, 18, 12), cal)
    # 17 Nov 18:00 CT belongs to the 18th's session.
    assert eod["2026-11-17"] == 50_300.0
    assert eod["2026-11-16"] == 50_500.0
    assert eod["2026-11-15"] == 50_000.0
    assert "2026-11-18" not in eod


def test_kernel_calendar_early_close_agrees_with_topsteps_flat_by() -> None:
    from chillly import calendar as cme
    g = gate()                                   # the kernel's CME table: 27 Nov 2026 12:00 CT
    day = date(2026, 11, 27)
    dl = g.deadlines(ct(2026, 11, 27, 9))
    assert dl.flat_by == cme.flat_by_ms(day) == ct(2026, 11, 27, 11, 10)
    assert dl.entry_cutoff == ct(2026, 11, 27, 11, 0)
    assert g.check(intent(), view(ct(2026, 11, 26, 10))).rule == "hours"    # Thanksgiving


def test_always_open_hours_have_no_window_but_keep_the_daily_reset() -> None:
    from trading.risk.calendar import AlwaysOpenCalendar
    g = gate()
    g.cal = AlwaysOpenCalendar()
    assert g.check(intent(), view(ct(2026, 11, 21, 10))).allowed          # Saturday
    assert g.check(intent(), view(ct(2026, 11, 18, 15, 9))).allowed
    assert g.due(view(ct(2026, 11, 18, 15, 6), positions=(pos(ES, 1),)),
                 ct(2026, 11, 18, 15, 6)) == []
    assert g.deadlines(ct(2026, 11, 18, 17, 0)).day == date(2026, 11, 19)


def test_orphaned_bracket_legs_are_counted_and_cancelled() -> None:
    """The referee's week found it: a short's stop-loss leg left working after the short was
    closed by another order fired later and opened a long past the cap."""
    from trading.risk.types import CancelOrders
    g = gate(default_stop_ticks=4)
    leg = order(ES, BUY, 2, parent_id=9001)                  # its entry 9001 has filled
    # While the position it protects is open, it only exits: not counted, not cancelled.
    short = view(positions=(pos(ES, -2),), orders=(leg,), quotes={ES: (5999.75, 6000.0)})
    assert g.check(intent(ES, SELL, 3), short).allowed      # 5 short, the leg not added
    assert not [a for a in g.due(short, WED) if isinstance(a, CancelOrders)]
    # The short closed by another order: the leg could open 2 long, so it counts ...
    flat = view(orders=(leg,))
    assert g.check(intent(ES, BUY, 4), flat).rule == "max_position"
    assert g.check(intent(ES, BUY, 3), flat).allowed
    # ... and the gate cancels it.
    acts = [a for a in g.due(flat, WED + 1) if isinstance(a, CancelOrders)]
    assert acts and acts[0].order_ids == (leg.order_id,)
    # A leg whose entry is still working, or just filled (its fill not yet in the position:
    # negative id), is the entry's: not counted, not cancelled.
    entry = order(ES, SELL, 2, order_id=9001)
    assert g.check(intent(ES, BUY, 4), view(orders=(entry, leg))).allowed   # 6 if counted
    moving = order(ES, SELL, 2, order_id=-9001)
    assert not [a for a in g.due(view(WED + 20_000, orders=(moving, leg)), WED + 20_000)
                if isinstance(a, CancelOrders)]
