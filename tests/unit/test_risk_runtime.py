"""The gateway's side of the risk gate: strategies.toml limits, the book in a store, commands."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from chillly.bus import CommandError
from gateway.risk_runtime import RiskRuntime
from gateway.settings import RiskSettings
from gateway.risk_runtime import LimitsError, read_limits
from tests.unit.trading.risk.rig import ES, WED, ct, pos, view


class Store:
    def __init__(self) -> None:
        self.text: str | None = None
        self.writes = 0

    async def load_risk(self) -> str | None:
        return self.text

    async def save_risk(self, book_json: str, at_ms: int) -> None:
        self.text = book_json
        self.writes += 1


def test_limits_from_strategies_toml(tmp_path: Path) -> None:
    f = tmp_path / "strategies.toml"
    f.write_text('[strategies.ema]\nclass = "x:Y"\n[strategies.ema.limits]\n'
                 'contracts = ["ES", "mnq"]\nmax_lots = 2\nmax_orders_per_minute = 10\n'
                 'max_daily_loss = 500.0\n[strategies.free]\nclass = "x:Z"\n')
    limits = read_limits(f)
    assert set(limits) == {"ema"}
    e = limits["ema"]
    assert (e.contracts, e.max_lots, e.max_orders_per_minute, e.max_daily_loss) == (
        frozenset({"ES", "MNQ"}), 2.0, 10, 500.0)
    assert read_limits(tmp_path / "missing.toml") == {}


@pytest.mark.parametrize("body, where", [
    ("max_lots = -1", "max_lots"), ("max_orders_per_minute = 1.5", "max_orders_per_minute"),
    ("contracts = \"ES\"", "contracts"), ("lots = 2", "limits.lots: unknown field"),
])
def test_bad_limits_name_the_field(tmp_path: Path, body: str, where: str) -> None:
    f = tmp_path / "strategies.toml"
    f.write_text(f"[strategies.ema.limits]\n{body}\n")
    with pytest.raises(LimitsError, match=where):
        read_limits(f)


def _runtime(tmp_path: Path, store: Store, monkeypatch: pytest.MonkeyPatch) -> RiskRuntime:
    monkeypatch.chdir(tmp_path)
    return RiskRuntime(RiskSettings(strategies_file=tmp_path / "none.toml",
                                    risk_market_hours="cme"), store, lambda: WED)


async def test_book_round_trips_through_the_store_and_commands(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch
                                                               ) -> None:
    store = Store()
    rt = _runtime(tmp_path, store, monkeypatch)
    assert not await rt.load()
    await rt.bootstrap([(ct(2026, 11, 16, 10), 800.0), (ct(2026, 11, 17, 10), -300.0)],
                       50_500.0)
    assert rt.gate.memory.high_water == 50_800.0 and rt.gate.floor() == 48_800.0
    out = await rt.halt({"reason": "lunch"}, "cli-halt-1")
    assert out == {"state": "HALTED", "reason": "lunch"}
    with pytest.raises(CommandError, match="not flat"):
        await rt.resume({}, "cli-resume-1", view(positions=(pos(ES, 1),)))
    with pytest.raises(CommandError, match="strategy"):
        await rt.halt({}, "strategy-ema")
    with pytest.raises(CommandError, match="strategy"):
        await rt.risk({"set_high_water": 1.0}, "strategy-ema", view())
    with pytest.raises(CommandError, match="finite"):
        await rt.risk({"set_high_water": float("nan")}, "cli-risk-1", view())
    with pytest.raises(CommandError, match="only be raised"):
        await rt.risk({"set_high_water": 50_000.0}, "cli-risk-1", view())   # EOD 50,800
    report = await rt.risk({"set_high_water": 51_000.0}, "cli-risk-1", view())
    assert report["floor"] == 49_000.0 and report["state"] == "HALTED"
    # A new runtime on the same store: the same floor and the latch.
    again = _runtime(tmp_path, store, monkeypatch)
    assert await again.load()
    assert again.gate.floor() == 49_000.0 and again.gate.memory.manual_halt == "lunch"
    assert json.loads(store.text or "{}")["manual_halt"] == "lunch"
    ok = await again.resume({}, "cli-resume-2", view())
    assert ok["state"] == "ACTIVE"


async def test_save_soon_coalesces(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store()
    rt = _runtime(tmp_path, store, monkeypatch)
    rt.gate.memory.dirty = True
    for _ in range(5):
        rt.save_soon()
    await rt.flush()
    assert store.writes == 1 and not rt.gate.memory.dirty


def test_the_rebuild_counts_a_trades_commissions_as_the_live_path_does() -> None:
    """Fails on the old rebuild (P&L less fees only): a closing trade of +100 with 1.40 fees
    and 0.50 commissions was +98.60 in the rebuilt history, +98.10 on the live path."""
    from gateway.risk_runtime import net_history
    from topstepx.models import HalfTrade
    trades = [HalfTrade(id=1, creation_timestamp=WED, profit_and_loss=100.0, fees=1.40,
                        commissions=0.50),
              HalfTrade(id=2, creation_timestamp=WED + 1, fees=1.40, commissions=0.50),
              HalfTrade(id=3, creation_timestamp=WED + 2, profit_and_loss=5.0, voided=True)]
    history = net_history(trades)
    assert history == [(WED, pytest.approx(98.10)), (WED + 1, pytest.approx(-1.90))]
    assert [pnl for _, pnl in history] == [100.0 - t.cost for t in trades[:1]] + [-trades[1].cost]
