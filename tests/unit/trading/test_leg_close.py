"""Closing a position on an account that cannot cancel (issue 20, 2.10; pure): the flatten's
plan fires each bracket through the market (the venue's OCO drops the sibling), sends a market
order only for lots no leg covers, never more than the lots being closed, and keeps (with a
problem) what it cannot close without leaving a working order behind. And the blotter's
refusals on such an account: a managed bracket, and a close that would leave legs beyond the
position. Before: no such plan; the flatten sent market orders and its leg cancels were
refused (errorCode 6), leaving the stop and the target working on a flat position."""

from __future__ import annotations

import itertools
from dataclasses import replace

from trading.blotter import Blotter
from trading.blotter.reports import AccountReport, OrderReport, PositionReport
from trading.marks import QuoteView
from trading.orders.leg_close import FIRE_TICKS, plan_close
from trading.orders.records import EXTERNAL, WORKING, OrderRecord
from trading.positions import Spec
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

ES = "CON.F.US.EP.Z26"
TICK = 0.25
QUOTE = {ES: QuoteView(ES, bid=6000.0, ask=6000.25, last=6000.0, t=0)}
TICKS = {ES: TICK}


def _leg(oid: int, parent: int, otype: int, size: int, side: int = Side.SELL,
         owner: str = "alpha", fill: int = 0) -> OrderRecord:
    return OrderRecord(order_id=oid, size=size, state=WORKING, fill_volume=fill, owner=owner,
                       contract=ES, side=side, order_type=otype, parent_id=parent)


def _bracket(entry: int, size: int, side: int = Side.SELL,
             owner: str = "alpha") -> list[OrderRecord]:
    return [_leg(entry + 1, entry, OrderType.STOP, size, side, owner),
            _leg(entry + 2, entry, OrderType.LIMIT, size, side, owner)]


def test_a_bracket_covering_the_position_is_fired_and_nothing_goes_to_market() -> None:
    plan = plan_close([("alpha", ES, 2)], _bracket(10, 2), {10: True}, QUOTE, TICKS)
    assert plan.market == () and plan.problems == () and plan.stranded == ()
    (fire,) = plan.fires
    # the sell stop above every known price: the venue fires it at once
    assert (fire.order_id, fire.lots, fire.size, fire.field) == (11, 2, 2, "stop_price")
    assert fire.price == 6000.25 + FIRE_TICKS * TICK


def test_lots_no_leg_covers_go_to_market() -> None:
    plan = plan_close([("alpha", ES, 3)], _bracket(10, 2), {10: True}, QUOTE, TICKS)
    assert [(f.order_id, f.lots) for f in plan.fires] == [(11, 2)]
    assert plan.market == (("alpha", ES, 1),)


def test_more_brackets_than_lots_fires_the_oldest_and_strands_the_rest() -> None:
    legs = _bracket(10, 1) + _bracket(20, 1)
    plan = plan_close([("alpha", ES, 1)], legs, {10: True, 20: True}, QUOTE, TICKS)
    assert [(f.order_id, f.lots) for f in plan.fires] == [(11, 1)]
    assert plan.market == () and plan.stranded == (21, 22)


def test_a_larger_bracket_is_resized_to_the_lots_it_closes() -> None:
    legs = [_leg(11, 10, OrderType.STOP, 5, fill=1), _leg(12, 10, OrderType.LIMIT, 4)]
    plan = plan_close([("alpha", ES, 2)], legs, {10: True}, QUOTE, TICKS)
    (fire,) = plan.fires
    assert (fire.lots, fire.size) == (2, 3)      # its fill so far plus the lots


def test_a_managed_pair_is_kept_with_its_lots_and_named() -> None:
    plan = plan_close([("alpha", ES, 3)], _bracket(10, 2), {10: False}, QUOTE, TICKS)
    assert plan.fires == ()
    assert plan.market == (("alpha", ES, 1),)    # only the lot no leg covers
    assert "managed pair" in plan.problems[0] and "2 lots kept open" in plan.problems[0]


def test_no_price_sends_nothing_for_the_covered_lots() -> None:
    plan = plan_close([("alpha", ES, 2)], _bracket(10, 2), {10: True}, {}, TICKS)
    assert plan.fires == () and plan.market == ()
    assert "no price" in plan.problems[0]


def test_a_short_fires_a_buy_stop_below_and_a_lone_target_as_a_marketable_limit() -> None:
    stop = plan_close([("alpha", ES, -1)], _bracket(10, 1, Side.BUY), {10: True}, QUOTE,
                      TICKS).fires[0]
    assert stop.field == "stop_price" and stop.price == 6000.0 - FIRE_TICKS * TICK
    tp = plan_close([("alpha", ES, -1)], [_leg(12, 10, OrderType.LIMIT, 1, Side.BUY)],
                    {10: True}, QUOTE, TICKS).fires[0]
    assert tp.field == "limit_price" and tp.price == 6000.25 + FIRE_TICKS * TICK
    # a lone trailing stop cannot be moved so: its lot stays open with it
    trail = plan_close([("alpha", ES, -1)], [_leg(11, 10, OrderType.TRAILING_STOP, 1,
                                                  Side.BUY)], {10: True}, QUOTE, TICKS)
    assert trail.fires == () and trail.market == () and trail.problems


def test_legs_of_no_share_close_the_residual_and_other_shares_keep_theirs() -> None:
    legs = _bracket(10, 1, owner=EXTERNAL) + _bracket(20, 1, owner="beta")
    plan = plan_close([("manual", ES, 1), ("beta", ES, 1)], legs, {10: True, 20: True},
                      QUOTE, TICKS)
    assert sorted((f.owner, f.order_id) for f in plan.fires) == [("beta", 21), ("manual", 11)]
    assert plan.market == ()


def test_a_leg_on_the_position_s_own_side_is_stranded_never_fired() -> None:
    plan = plan_close([("alpha", ES, 1)], _bracket(10, 1, Side.BUY), {10: True}, QUOTE, TICKS)
    assert plan.fires == () and plan.market == (("alpha", ES, 1),) and plan.stranded == (11, 12)


def test_never_more_closed_than_the_target_whatever_the_legs() -> None:
    """Every mix of brackets (sizes 1-3, one to three of them) and positions (1-4 lots): the
    lots fired plus the market close are at most the position, and exactly it when nothing is
    kept for a problem."""
    for n, q in itertools.product(range(1, 4), range(1, 5)):
        for sizes in itertools.product(range(1, 4), repeat=n):
            legs = [r for i, s in enumerate(sizes) for r in _bracket(10 * (i + 1), s)]
            plan = plan_close([("alpha", ES, q)], legs, {10 * (i + 1): True for i in range(n)},
                              QUOTE, TICKS)
            closed = sum(f.lots for f in plan.fires) + sum(abs(m[2]) for m in plan.market)
            assert closed == q, (sizes, q, plan)
            assert all(f.lots <= f.size for f in plan.fires)


def _live_long(size: int, legs: int) -> Blotter:
    b = Blotter(1097, "LIVE")
    b.book.specs[ES] = Spec(TICK, 12.5, "ES")
    b.apply_account(AccountReport(1097, 50_000.0, True, simulated=False))
    b.apply_order(OrderReport(order_id=1, account_id=1097, contract=ES, side=Side.BUY,
                              size=size, order_type=OrderType.MARKET, status=OrderStatus.FILLED,
                              fill_volume=size, filled_price=6000.0), 0)
    b.apply_position(PositionReport(ES, PositionType.LONG, size, 6000.0, 1097))
    for oid, otype in ((2, OrderType.STOP), (3, OrderType.LIMIT)):
        if legs:
            b.apply_order(OrderReport(order_id=oid, account_id=1097, contract=ES,
                                      side=Side.SELL, size=legs, order_type=otype,
                                      status=OrderStatus.OPEN, parent_id=1), 0)
    return b


def test_an_account_that_cannot_cancel_refuses_a_managed_bracket_and_a_close_past_its_legs(
        ) -> None:
    b = _live_long(2, 2)
    assert b.bracket_refusal(True, managed=False) is None      # the venue's own OCO
    assert "Auto OCO" in (b.bracket_refusal(True, managed=True) or "")
    assert b.bracket_refusal(False, managed=True) is None
    # selling 1 of 2 by market would leave 2 lots of legs on a long 1
    assert "flatten" in (b.reduce_refusal(ES, Side.SELL, 1, None) or "")
    assert b.reduce_refusal(ES, Side.BUY, 1, None) is None     # adds, legs still cover it
    assert _live_long(3, 2).reduce_refusal(ES, Side.SELL, 1, None) is None   # 2 left, 2 legs
    assert _live_long(2, 0).reduce_refusal(ES, Side.SELL, 2, None) is None   # no legs
    can = _live_long(2, 2)
    can.book.can_cancel = True
    assert can.reduce_refusal(ES, Side.SELL, 1, None) is None
    assert can.bracket_refusal(True, managed=True) is None


def test_a_stale_account_read_still_tells_a_live_account() -> None:
    """A REST account read older than an account event is refused (its balance is stale), but
    what the account is (live: simulated false) does not go stale."""
    b = Blotter(1097, "LIVE")
    mark = b.read_started()
    b.apply_account(AccountReport(1097, 50_000.0, True))           # a hub event since
    assert not b.apply_account(AccountReport(1097, 49_000.0, True, simulated=False), mark)
    assert b.book.balance == 50_000.0 and not b.book.can_cancel


def test_a_stop_the_venue_refused_to_move_gives_way_to_its_target() -> None:
    """The venue's answer to a stop moved beyond the market is not documented: refused once,
    the next flatten moves the bracket's take-profit through the quote instead; both refused
    as often (the market shut for a while), the stop again: never a bracket left unfireable."""
    plan = plan_close([("alpha", ES, 2)], _bracket(10, 2), {10: True}, QUOTE, TICKS,
                      refused={11: 1})
    (fire,) = plan.fires
    assert (fire.order_id, fire.field, fire.lots) == (12, "limit_price", 2)
    assert fire.price == 6000.0 - FIRE_TICKS * TICK          # a sell limit under the bid
    again = plan_close([("alpha", ES, 2)], _bracket(10, 2), {10: True}, QUOTE, TICKS,
                       refused={11: 1, 12: 1})
    assert [f.order_id for f in again.fires] == [11] and again.market == ()


def test_a_bracket_whose_entry_has_not_filled_waits() -> None:
    """Its legs are suspended (status 8) and the venue moves none: the lots it will cover are
    neither fired nor sent to market (that would leave the bracket working once it wakes)."""
    legs = [replace(r, status=OrderStatus.SUSPENDED) for r in _bracket(10, 1)]
    plan = plan_close([("alpha", ES, 1)], legs, {10: True}, QUOTE, TICKS)
    assert plan.fires == () and plan.market == () and "not filled yet" in plan.problems[0]
