"""The trading edges of issue 20 in the blotter (pure, time given): a flatten never sends a
second close, a position snapshot older than an event already applied is refused, realized
P&L rolls at 17:00 CT, and fills are kept and attributed whatever order their reports come in.
Each test failed on the code before its fix (noted per test)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from trading.blotter import Blotter
from trading.blotter.reports import AccountReport, OrderReport, PositionReport, TradeReport
from trading.orders.records import EXTERNAL
from trading.positions import Spec
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

ACC = 1001
ES = "CON.F.US.EP.Z26"
CT = ZoneInfo("America/Chicago")


def _ms(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(datetime(y, mo, d, h, mi, tzinfo=CT).timestamp() * 1000)


MON_10 = _ms(2026, 12, 7, 10)          # Monday 10:00 CT (trading day Monday)
DAY = _ms(2026, 12, 6, 17)             # Monday's trading day began Sunday 17:00 CT


def _blotter() -> Blotter:
    b = Blotter(ACC, "TEST")
    b.book.balance = 50_000.0
    b.book.specs[ES] = Spec(0.25, 12.5, "ES")
    return b


def _order(oid: int, side: int, size: int, status: int, fill: int = 0,
           tag: str | None = None, parent: int | None = None,
           otype: int = OrderType.MARKET) -> OrderReport:
    return OrderReport(order_id=oid, account_id=ACC, contract=ES, side=side, size=size,
                       order_type=otype, status=status, fill_volume=fill,
                       filled_price=6000.0 if fill else None, custom_tag=tag, parent_id=parent)


def _trade(tid: int, oid: int, side: int, size: int, price: float, at: int,
           pnl: float | None = None) -> TradeReport:
    return TradeReport(trade_id=tid, order_id=oid, account_id=ACC, contract=ES, side=side,
                       size=size, price=price, fees=1.0, pnl=pnl, created_ms=at)


def _long5_of_alpha(b: Blotter) -> None:
    rec = b.new_intent("alpha-1", "alpha", ES, Side.BUY, 5, "market", MON_10)
    b.add_intent(rec)
    b.apply_order(_order(1, Side.BUY, 5, OrderStatus.FILLED, 5, tag="alpha-1"), MON_10)
    b.apply_trade(_trade(1, 1, Side.BUY, 5, 6000.0, MON_10), MON_10, DAY)
    b.apply_position(PositionReport(ES, PositionType.LONG, 5, 6000.0, ACC))


# ------------------------------------------------------------------ 2: one close, never two

def test_a_second_flatten_while_the_first_close_is_working_sends_nothing() -> None:
    b = _blotter()
    _long5_of_alpha(b)
    assert b.closing_shares(ES) == [("alpha", ES, 5)]
    # the first flatten's SELL 5 is working at the venue (not filled yet)
    b.add_intent(b.new_intent("alpha-flat-1", "alpha", ES, Side.SELL, 5, "market", MON_10))
    b.apply_order(_order(2, Side.SELL, 5, OrderStatus.OPEN, tag="alpha-flat-1"), MON_10)
    # the book alone (what the old flatten sized from) would sell 5 again: short 5
    assert b.book.closing_shares(ES) == [("alpha", ES, 5)]
    assert b.closing_shares(ES) == [] and b.closing_shares(None) == []


def test_a_flatten_whose_close_filled_before_the_position_came_sends_nothing() -> None:
    b = _blotter()
    _long5_of_alpha(b)
    b.add_intent(b.new_intent("alpha-flat-1", "alpha", ES, Side.SELL, 5, "market", MON_10))
    b.apply_order(_order(2, Side.SELL, 5, OrderStatus.FILLED, 5, tag="alpha-flat-1"), MON_10)
    # order filled, the position still says long 5 (its event comes next)
    assert b.closing_shares(ES) == []
    # then the trade: the share is flat, the venue still long 5 (a "manual" residual of 5)
    b.apply_trade(_trade(2, 2, Side.SELL, 5, 6000.0, MON_10), MON_10, DAY)
    assert b.book.closing_shares(ES) == [("manual", ES, 5)]
    assert b.closing_shares(ES) == []
    b.apply_position(PositionReport(ES, PositionType.FLAT, 0, None, ACC))
    assert b.closing_shares(ES) == []


def test_a_flatten_of_an_entry_filled_but_not_yet_posted_closes_it_once() -> None:
    b = _blotter()
    b.add_intent(b.new_intent("alpha-1", "alpha", ES, Side.BUY, 2, "market", MON_10))
    b.apply_order(_order(1, Side.BUY, 2, OrderStatus.FILLED, 2, tag="alpha-1"), MON_10)
    b.apply_trade(_trade(1, 1, Side.BUY, 2, 6000.0, MON_10), MON_10, DAY)
    # the venue's position is still flat: the share is long 2, the residual -2 "manual"
    assert sorted(b.closing_shares(ES)) == [("alpha", ES, 2)]


# ------------------------------------------------------------------ 3: no older snapshot

def test_a_position_read_older_than_a_stop_fill_is_refused() -> None:
    """Before the fix the read's long 2 was applied over the hub's flat: a phantom long."""
    b = _blotter()
    b.apply_position(PositionReport(ES, PositionType.LONG, 2, 6000.0, ACC))
    mark = b.read_started()           # the REST read begins: long 2 at the venue
    b.apply_order(_order(9, Side.SELL, 2, OrderStatus.FILLED, 2, parent=1,
                         otype=OrderType.STOP), MON_10)
    b.apply_position(PositionReport(ES, PositionType.FLAT, 0, None, ACC))   # hub: flat
    # the read answers with what it saw when it began: long 2
    assert not b.apply_position(PositionReport(ES, PositionType.LONG, 2, 6000.0, ACC),
                                read_mark=mark)
    b.position_read_done(mark)
    assert b.book.held() == set() and b.stale_positions == 1
    assert b.closing_shares(ES) == []          # nothing to sell: no naked short


def test_a_read_that_missed_a_fill_does_not_record_the_contract_flat() -> None:
    """Before the fix the read (begun flat) set the contract flat after a fill during it."""
    b = _blotter()
    mark = b.read_started()
    b.apply_order(_order(1, Side.BUY, 1, OrderStatus.FILLED, 1), MON_10)
    b.apply_position(PositionReport(ES, PositionType.LONG, 1, 6000.0, ACC))  # hub
    assert b.flat_unless(set(), read_mark=mark) == []       # the read saw nothing held
    assert b.book.held() == {ES}
    # a read begun after the fill is authoritative again
    mark = b.read_started()
    assert b.flat_unless(set(), read_mark=mark) == [ES] and b.book.held() == set()


def test_a_position_read_does_not_clear_a_fill_that_came_after_it_began() -> None:
    b = _blotter()
    mark = b.read_started()
    b.apply_order(_order(1, Side.BUY, 1, OrderStatus.FILLED, 1), MON_10)
    assert not b.apply_position(PositionReport(ES, PositionType.FLAT, 0, None, ACC),
                                read_mark=mark)
    b.position_read_done(mark)
    assert [o.order_id for o in b.view(MON_10).orders] == [-1]   # still in the exposure


def test_an_order_read_older_than_a_modify_is_refused() -> None:
    """Before the fix the read's 2 lots took a working entry grown to 4 back to 2 in the gate's
    view (the state machine keeps a state from going back, not a size or a price)."""
    b = _blotter()
    entry = b.new_intent("alpha-1", "alpha", ES, Side.BUY, 2, "limit", MON_10)
    b.add_intent(entry)

    def report(size: int, price: float) -> OrderReport:
        return OrderReport(order_id=1, account_id=ACC, contract=ES, side=Side.BUY, size=size,
                           order_type=OrderType.LIMIT, status=OrderStatus.OPEN, fill_volume=0,
                           limit_price=price, custom_tag="alpha-1")
    b.apply_order(report(2, 5900.0), MON_10)                  # hub: working 2
    mark = b.read_started()                                   # Order/search begins
    b.apply_order(report(4, 5901.0), MON_10)                  # hub: modified to 4
    stale = b.apply_order(report(2, 5900.0), MON_10, read_mark=mark)
    assert stale is not None and stale.refused and not stale.changed
    assert (b.orders[1].size, b.orders[1].limit_price, b.stale_orders) == (4, 5901.0, 1)
    assert [o.remaining for o in b.view(MON_10).orders] == [4]
    # a read begun after the modify is authoritative again
    b.apply_order(report(3, 5901.0), MON_10, read_mark=b.read_started())
    assert b.orders[1].size == 3


def test_an_account_read_older_than_a_balance_event_is_refused() -> None:
    """Before the fix the read's balance (from before a loss) lifted the gate's equity."""
    b = _blotter()
    mark = b.read_started()                                  # Account/search begins: 50,000
    assert b.apply_account(AccountReport(ACC, 49_900.0))     # hub: a loss of 100 realized
    assert not b.apply_account(AccountReport(ACC, 50_000.0), read_mark=mark)
    assert (b.book.balance, b.stale_accounts) == (49_900.0, 1)
    assert b.apply_account(AccountReport(ACC, 49_890.0), read_mark=b.read_started())
    assert b.book.balance == 49_890.0


# ------------------------------------------------------------------ 5: the day rolls

def test_realized_pnl_rolls_at_17_ct() -> None:
    """Before the fix Monday's loss stayed in Tuesday's figures for as long as it ran."""
    b = _blotter()
    _long5_of_alpha(b)
    b.add_intent(b.new_intent("alpha-2", "alpha", ES, Side.SELL, 2, "market", MON_10))
    b.apply_order(_order(3, Side.SELL, 2, OrderStatus.FILLED, 2, tag="alpha-2"), MON_10)
    b.apply_trade(_trade(2, 3, Side.SELL, 2, 5990.0, MON_10 + 1, pnl=-1000.0),
                  MON_10 + 1, DAY)
    assert b.view(_ms(2026, 12, 7, 16, 59)).realized_pnl == -1002.0
    assert b.book.view(ES, "alpha").realized_pnl == -1002.0 and b.book.view(ES, "alpha").size == 3
    tue = b.view(_ms(2026, 12, 7, 17, 0))      # Tuesday's trading day
    assert tue.realized_pnl == 0.0
    assert all(p.realized_pnl == 0.0 for p in tue.positions)
    assert b.book.view(ES, "alpha").size == 3  # positions carry over


# ------------------------------------------------------------------ 8: attribution

def test_a_trade_before_its_order_is_reattributed_when_the_order_comes() -> None:
    """Before the fix the trade stayed with "external" and the owner's share was empty."""
    b = _blotter()
    b.add_intent(b.new_intent("alpha-1", "alpha", ES, Side.BUY, 2, "market", MON_10))
    taken = b.apply_trade(_trade(1, 11, Side.BUY, 2, 6000.0, MON_10), MON_10, 0)
    assert taken is not None and taken.fill.owner == EXTERNAL
    ch = b.apply_order(_order(11, Side.BUY, 2, OrderStatus.FILLED, 2, tag="alpha-1"), MON_10)
    assert ch is not None and [f.owner for f in ch.reattributed] == ["alpha"]
    assert b.book.view(ES, "alpha").size == 2 and b.book.view(ES, "alpha").realized_pnl == -1.0
    assert b.book.view(ES, EXTERNAL).size == 0
    assert b.book.view(ES, EXTERNAL).realized_pnl == 0.0


# ------------------------------------------------------------------ 10: accounts that cannot cancel

def test_an_account_that_cannot_cancel_takes_no_resting_entry() -> None:
    """Before: a limit entry was placed on a live account; the venue then refused every cancel
    (errorCode 6), so a flatten or halt left it resting, free to open a position."""
    from trading.blotter.reports import AccountReport
    b = _blotter()
    assert b.resting_refusal("limit", None) is None
    b.apply_account(AccountReport(ACC, 50_000.0, True, simulated=False))
    assert not b.book.can_cancel
    assert "cannot cancel" in (b.resting_refusal("limit", None) or "")
    assert "cannot cancel" in (b.resting_refusal("stop", None) or "")
    assert b.resting_refusal("market", None) is None      # nothing rests
    assert b.resting_refusal("stop", 41) is None           # a leg protects a position
    # a follower (simulated) learns it from the venue's first refusal
    f = _blotter()
    assert not f.cancel_refused(3) and f.book.can_cancel   # "not working": nothing learnt
    assert f.cancel_refused(6) and not f.book.can_cancel
    assert not f.cancel_refused(6)                         # learnt once
