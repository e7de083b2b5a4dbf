"""Positions and P&L (pure): owners' shares the venue's way, marks, what a flatten closes."""

from __future__ import annotations

from trading.risk.types import QuoteView
from trading.positions import Book, Spec
from trading.venue_codes import PositionType, Side

BUY, SELL = Side.BUY, Side.SELL
LONG, SHORT = PositionType.LONG, PositionType.SHORT


def test_book_pnl_per_owner_and_marks() -> None:
    b = Book(1)
    b.specs["ES"] = Spec(0.25, 12.5, "ES")
    b.add_trade("ES", "alpha", BUY, 2, 100.0, 1.4, None)
    b.add_trade("ES", "alpha", SELL, 3, 101.0, 2.1, 100.0)   # close 2 (+100), open short 1
    share = b.owners[("alpha", "ES")]
    assert share.qty == -1 and share.avg == 101.0 and share.realized == 96.5
    assert b.realized() == 96.5
    b.set_venue_position("ES", SHORT, 1, 101.0)
    b.set_quote(QuoteView("ES", 100.5, 100.75, 100.5, 0))
    assert b.open_pnl() == 12.5                       # short marked at the ask
    b.set_venue_position("ES", LONG, 1, 100.0)
    assert b.open_pnl() == 25.0                       # long marked at the bid


def test_flatten_closes_each_share_and_the_rest_as_manual() -> None:
    b = Book(1)
    b.add_trade("ES", "alpha", BUY, 2, 100.0, 0.0, None)
    b.add_trade("ES", "beta", SELL, 1, 100.0, 0.0, None)
    b.set_venue_position("ES", LONG, 3, 100.0)          # 2 more than the shares' net 1
    assert b.closing_shares(None) == [("alpha", "ES", 2), ("beta", "ES", -1),
                                      ("manual", "ES", 2)]
    assert b.closing_shares("ES", "beta") == [("beta", "ES", -1)]
    assert b.closing_shares("NQ") == []
