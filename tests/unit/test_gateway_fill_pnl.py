"""A fill's P&L as its owner is told it (the fill event): against the owner's own average, not
the account's, which mixes every owner's entries in the contract."""

from __future__ import annotations

from trading.positions import Book, Spec
from trading.risk.types import BUY, SELL


def test_the_owner_is_told_its_own_pnl_not_the_accounts() -> None:
    b = Book(1)
    b.specs["ES"] = Spec(0.25, 12.5, "ES")
    assert b.add_trade("ES", "alpha", BUY, 1, 100.0, 0.0, None) is None      # opens
    assert b.add_trade("ES", "manual", BUY, 1, 104.0, 0.0, None) is None     # account avg 102
    # The venue prices alpha's exit against the account's 102: +6 points (300.0).
    assert b.add_trade("ES", "alpha", SELL, 1, 108.0, 1.4, 300.0) == 400.0   # alpha's own +8
    assert b.owners[("alpha", "ES")].realized == 398.6                         # fees apart
    assert b.add_trade("ES", "manual", SELL, 2, 103.0, 0.0, None) == -50.0   # closes 1 at -1,
    assert b.owners[("manual", "ES")].qty == -1                                # opens short 1
    assert b.add_trade("ES", "alpha", BUY, 1, 100.0, 0.0, None, voided=True) is None
