"""The gate and the sim's referee read the same numbers, and the gate is never looser.

The referee (sim/rules.py) keeps its own formulas, as an independent judge must; these tests
hold the two to one table of facts: for every program, size and XFA tier the gate's cap is at
most the referee's, and every product weighs the same at both.
"""

from __future__ import annotations

import pytest

from trading.risk.memory import RiskMemory
from trading.referee import rules as referee
from tests.unit.trading.risk.rig import WED, gate, intent, view
from trading.risk.types import BUY, LONG, PositionView
from trading import products

PROFITS = (-500.0, 0.0, 1_000.0, 1_499.99, 1_500.0, 1_999.99, 2_000.0, 2_999.99, 3_000.0,
           4_499.99, 4_500.0, 10_000.0)
CASES = [(program, size) for program in ("combine", "xfa", "live")
         for size in ("50k", "100k", "150k")]


def _gate_cap(program: str, size: str, profit: float) -> float:
    """The gate's lots allowed on a day that starts `profit` over the starting balance."""
    g = gate(program, size, memory=RiskMemory())
    start = g.cfg.starting_balance
    g.memory.sod_balance = start + profit
    return float(g.report(view(WED, balance=start + profit), WED)["lots_allowed"])


def _referee_cap(program: str, size: str, profit: float) -> float:
    start = 0.0 if program == "xfa" else referee.SIZE_SPECS[size].starting_balance
    return float(referee.day_max_lots(referee.resolve(program, size, start), start + profit))


@pytest.mark.parametrize("program,size", CASES)
def test_the_gates_cap_is_never_above_the_referees(program: str, size: str) -> None:
    """Fails on the old tables: the 100K XFA at +$2,000 allowed 6 lots at the gate, 5 at the
    referee."""
    for profit in PROFITS:
        gate_cap, judge_cap = _gate_cap(program, size, profit), _referee_cap(program, size, profit)
        assert gate_cap <= judge_cap, (program, size, profit, gate_cap, judge_cap)


@pytest.mark.parametrize("program", ("combine", "xfa", "live"))
def test_every_product_weighs_the_same_at_the_gate_and_the_referee(program: str) -> None:
    """Fails on the old tables: the gate counted M6A, M6B, MET, MNG as micros (a tenth of a
    lot), the referee as full lots."""
    cfg = gate(program, "50k").cfg
    rules = referee.resolve(program, "50k", 50_000.0)
    for p in products.PRODUCTS:
        assert cfg.weight(p.symbol) * 10 == referee.lot_tenths(rules, p.symbol, 1), p.symbol


def test_a_held_micro_is_weighed_by_its_venue_root() -> None:
    """Fails on the old alias table (no MCLE): 10 MCL held, known only by their contract id
    (a position reported after a restart), counted as 10 full lots, so a 1-lot ES entry
    on a 50K Combine (5 lots) was refused; they are 1 lot."""
    mcl = "CON.F.US.MCLE.Z26"
    held = PositionView(mcl, "_account", LONG, 10, 70.0, 0.0, 0.0, "", 0.0, 0.0)
    g = gate("combine", "50k")
    v = view(WED, positions=(held,), quotes={mcl: (70.0, 70.01)})
    assert g.exposure(g.net(v), ()) == pytest.approx(1.0)
    assert g.check(intent(side=BUY, size=1), v).allowed


@pytest.mark.parametrize("root,symbol", [("JY6", "6J"), ("CA6", "6C"), ("TYA", "ZN"),
                                         ("MCLE", "MCL")])
def test_the_gate_names_every_venue_root_by_its_symbol(root: str, symbol: str) -> None:
    """Fails on the old alias table: JY6, CA6, TYA and MCLE were their own names, so a
    strategy allowed "6J" could not trade CON.F.US.JY6.H27 and fees fell to the default."""
    g = gate("combine", "50k")
    assert g._root(f"CON.F.US.{root}.H27") == symbol
    assert g.cfg.fee(symbol) == products.fee_per_side(symbol)
