"""The gate seam: verdicts, the book view's helpers, AllowAll."""

from __future__ import annotations

from trading.risk.types import (ALLOW, BUY, LONG, SELL, AllowAll, BookView, Intent, PositionView,
                          WorkingOrder, reduce_only, reject)


def _intent(side: int = BUY, reduces: bool = False) -> Intent:
    return Intent(client_id="manual-1", owner="manual", contract="CON.F.US.EP.Z26", symbol="ES",
                  tick_size=0.25, tick_value=12.5, side=side, size=2, order_type="market",
                  reduces=reduces)


def _view() -> BookView:
    return BookView(
        account_id=1001, account_name="PRAC", now_ms=1_000, balance=50_000.0,
        realized_pnl=-100.0, open_pnl=-25.0,
        positions=(PositionView("CON.F.US.EP.Z26", "_account", LONG, 2, 6000.0),
                   PositionView("CON.F.US.EP.Z26", "alpha", LONG, 2, 6000.0),
                   PositionView("CON.F.US.ENQ.Z26", "_account", 0, 0, None)),
        orders=(WorkingOrder(7, "alpha-1", "alpha", "CON.F.US.EP.Z26", SELL, 2, 2, "stop", 1,
                             stop_price=5990.0, protective=True),))


def test_verdicts_permit_as_documented() -> None:
    assert ALLOW.permits(_intent())
    assert not reject("max_contracts", "too many").permits(_intent(reduces=True))
    ro = reduce_only("flat_by", "flat by 15:10 CT")
    assert ro.permits(_intent(SELL, reduces=True))
    assert not ro.permits(_intent(BUY, reduces=False))
    assert _intent(SELL).signed_size == -2


def test_book_view_helpers() -> None:
    view = _view()
    assert view.equity == 49_975.0
    assert [p.contract for p in view.net_positions()] == ["CON.F.US.EP.Z26"]
    pos = view.position("CON.F.US.EP.Z26", "alpha")
    assert pos is not None and pos.signed_size == 2
    assert view.position("CON.F.US.EP.Z26", "beta") is None
    assert [o.order_id for o in view.working(owner="alpha")] == [7]
    assert view.working(contract="CON.F.US.ENQ.Z26") == []


def test_allow_all() -> None:
    gate = AllowAll()
    assert gate.check(_intent(), _view()) is ALLOW
    assert gate.due(_view(), 1_000) == []
