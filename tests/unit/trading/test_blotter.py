"""The blotter driven directly, on a manual clock: venue reports in any order, and the view the
risk gate judges at each moment (working orders, intents in flight, fills not yet in a
position)."""

from __future__ import annotations

from chillly.clock import ManualClock
from trading.blotter import Blotter
from trading.blotter.reports import OrderReport, PositionReport, TradeReport
from trading.risk.types import BookView, Intent
from trading.orders.records import (
    CANCELLED,
    EXTERNAL,
    FILLED,
    NOT_PLACED,
    PARTIAL,
    PLACED,
    WORKING,
)
from trading.venue_codes import OrderStatus, OrderType, PositionType, Side

ACC = 1001
ES = "CON.F.US.EP.Z26"


def _blotter() -> Blotter:
    b = Blotter(ACC, "TEST")
    b.book.balance = 50_000.0
    return b


def _order(oid: int, status: int, fill: int = 0, size: int = 2, tag: str | None = None,
           updated: int | None = None, price: float | None = None) -> OrderReport:
    return OrderReport(order_id=oid, account_id=ACC, contract=ES, side=Side.BUY, size=size,
                       order_type=OrderType.MARKET, status=status, fill_volume=fill,
                       filled_price=price, custom_tag=tag, updated_ms=updated)


def _intent(cid: str, size: int = 1) -> Intent:
    return Intent(client_id=cid, owner="manual", contract=ES, symbol="ES", tick_size=0.25,
                  tick_value=12.5, side=Side.BUY, size=size, order_type="market")


def _exposure(view: BookView) -> int:
    """Lots that may still add to the long: the account's net plus every order counted."""
    net = sum(p.signed_size for p in view.net_positions())
    return net + sum(o.remaining if o.side == Side.BUY else -o.remaining for o in view.orders)


def test_a_fill_before_its_order_is_counted_once_and_attributed_when_the_order_comes() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    rec = b.new_intent("manual-1", "manual", ES, Side.BUY, 2, "market", clock.now_ms())
    b.add_intent(rec)
    # the trade arrives first: no order known, so it is the venue's (external) for now
    taken = b.apply_trade(TradeReport(trade_id=7, order_id=11, account_id=ACC, contract=ES,
                                      side=Side.BUY, size=2, price=6000.0, created_ms=None),
                          clock.now_ms(), 0)
    assert taken is not None and taken.fill.owner == EXTERNAL and taken.owner_pnl is None
    assert b.apply_trade(TradeReport(trade_id=7, order_id=11, account_id=ACC), clock.now_ms(),
                         0) is None and b.ledger.repeated == 1        # taken once
    # then the order report, carrying the tag: the intent is resolved and the order is ours
    ch = b.apply_order(_order(11, OrderStatus.FILLED, fill=2, tag="manual-1", price=6000.0),
                       clock.now_ms())
    assert ch is not None and ch.changed and ch.order.owner == "manual"
    assert ch.order.state == FILLED and rec.order_id == 11
    # the gate counts the fill until the position shows it, and never as a working order
    view = b.view(clock.now_ms())
    assert [o.order_id for o in view.orders] == [-11] and _exposure(view) == 2


def test_an_order_update_older_than_a_newer_one_changes_nothing() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    assert b.apply_order(_order(5, OrderStatus.OPEN, updated=1), clock.now_ms()).changed
    newer = b.apply_order(_order(5, OrderStatus.OPEN, fill=1, updated=3), clock.now_ms())
    assert newer is not None and newer.changed and newer.order.state == PARTIAL
    # a REST read taken before the fill arrives after it: refused, the order stays as it was
    older = b.apply_order(_order(5, OrderStatus.OPEN, fill=0, updated=2), clock.now_ms())
    assert older is not None and not older.changed and older.refused
    assert (b.orders[5].fill_volume, b.orders[5].state, b.orders[5].updated_ms) == \
        (1, PARTIAL, 3)
    assert b.machine.counters["invalid_transitions"] == 1
    # and nothing moves a terminal order back
    b.apply_order(_order(5, OrderStatus.CANCELLED, fill=1), clock.now_ms())
    stale = b.apply_order(_order(5, OrderStatus.OPEN, fill=1), clock.now_ms())
    assert stale is not None and not stale.changed and b.orders[5].state == CANCELLED
    assert b.working() == []                   # (its filled lot waits for its position)


def test_an_intent_in_flight_is_counted_while_a_position_report_arrives() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    b.apply_position(PositionReport(ES, PositionType.LONG, 1, 6000.0, ACC))
    assert b.reserve("manual-2") is True
    b.judged(_intent("manual-2", 3))           # passed the gate, the place call is under way
    # the venue's position of an earlier trade arrives meanwhile: the intent still counts
    assert b.apply_position(PositionReport(ES, PositionType.LONG, 2, 6000.0, ACC))
    view = b.view(clock.now_ms())
    assert [(o.client_id, o.remaining) for o in view.orders] == [("manual-2", 3)]
    assert _exposure(view) == 5
    assert b.reserve("manual-2") is None       # a second submit of the same id is refused
    # placed: the venue's order replaces the intent in the view (not counted twice)
    rec = b.new_intent("manual-2", "manual", ES, Side.BUY, 3, "market", clock.now_ms())
    b.add_intent(rec)
    rec.resolve(PLACED, 21, None, None, clock.now_ms())
    b.placed(rec, 21, managed=False)
    b.release("manual-2")
    view = b.view(clock.now_ms())
    assert [(o.order_id, o.remaining) for o in view.orders] == [(21, 3)]
    assert _exposure(view) == 5


def test_an_unresolved_intent_counts_until_it_is_recorded_not_placed() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    rec = b.new_intent("manual-3", "manual", ES, Side.BUY, 1, "market", clock.now_ms())
    b.add_intent(rec)                          # journaled, the place call had no clear answer
    assert [o.client_id for o in b.view(clock.now_ms()).orders] == ["manual-3"]
    rec.resolve(NOT_PLACED, None, None, "not found", clock.now_ms())
    assert b.view(clock.now_ms()).orders == ()
    # the venue holds it after all: adopted, and the difference is reported
    ch = b.apply_order(_order(31, OrderStatus.OPEN, size=1, tag="manual-3"), clock.now_ms())
    assert ch is not None and ch.late is rec and ch.order.state == WORKING


def test_a_fill_not_yet_in_a_position_counts_at_the_moment_of_a_submit() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    b.apply_order(_order(41, OrderStatus.OPEN, size=2), clock.now_ms())
    b.apply_order(_order(41, OrderStatus.FILLED, fill=2, size=2, price=6000.0), clock.now_ms())
    # the order is filled, the venue's position still shows flat: the gate sees 2 lots
    clock.advance(200)
    view = b.view(clock.now_ms())
    assert [(o.order_id, o.remaining, o.status) for o in view.orders] == [(-41, 2, 2)]
    assert _exposure(view) == 2
    # the position report includes the fill: counted once, from the position
    b.apply_position(PositionReport(ES, PositionType.LONG, 2, 6000.0, ACC))
    view = b.view(clock.now_ms())
    assert view.orders == () and _exposure(view) == 2


def test_a_fill_without_its_position_report_stays_counted_however_late() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    b.apply_order(_order(51, OrderStatus.FILLED, fill=1, size=1), clock.now_ms())
    clock.advance(5_000)                       # (it dropped out after 0.5 s before)
    assert _exposure(b.view(clock.now_ms())) == 1
    mark = b.read_started()           # a read begun after it includes it
    b.apply_position(PositionReport(ES, PositionType.LONG, 1, 6000.0, ACC), read_mark=mark)
    b.position_read_done(mark)
    view = b.view(clock.now_ms())
    assert view.orders == () and _exposure(view) == 1


def test_a_position_read_keeps_fills_that_came_after_it_began() -> None:
    clock = ManualClock(1_000_000)
    b = _blotter()
    b.apply_order(_order(61, OrderStatus.FILLED, fill=1, size=1), clock.now_ms())
    mark = b.read_started()
    b.apply_order(_order(62, OrderStatus.FILLED, fill=1, size=1), clock.now_ms())
    b.position_read_done(mark)                 # the read includes 61, not 62
    assert [o.order_id for o in b.view(clock.now_ms()).orders] == [-62]
    assert b.flat_unless(set()) == []          # nothing was held


def test_another_accounts_reports_are_ignored() -> None:
    b = _blotter()
    other = OrderReport(order_id=1, account_id=999, contract=ES, status=OrderStatus.OPEN)
    assert b.apply_order(other, 0) is None and b.orders == {}
    assert b.apply_trade(TradeReport(trade_id=1, order_id=1, account_id=999), 0, 0) is None
