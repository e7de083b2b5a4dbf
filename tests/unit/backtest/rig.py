"""The backtest rig: hand-made 1m bars and a run of a strategy class over them, no database."""

from __future__ import annotations

import random
from collections.abc import Sequence

from chillly.calendar import is_market_open
from trading.matching.bar_path import FillRules
from trading.strategy.instance import Instance

from backtest.gate import BacktestGate
from backtest.run import Outcome, Run
from backtest.setup import program_of

ES = "CON.F.US.EP.H26"
#: Monday 2026-01-05 14:30 UTC (08:30 CT), inside the session.
T0 = 1_767_623_400_000


def bars_from(prices: Sequence[tuple[float, float, float, float]], t0: int = T0
              ) -> list[tuple[str, tuple[int, float, float, float, float, int]]]:
    """(contract, row) for consecutive minutes from `t0`: each (o, h, l, c)."""
    return [(ES, (t0 + i * 60_000, o, h, lo, c, 100)) for i, (o, h, lo, c) in enumerate(prices)]


def random_walk(n: int, seed: int = 3, t0: int = T0, price: float = 6000.0
                ) -> list[tuple[str, tuple[int, float, float, float, float, int]]]:
    """`n` 1m bars of open market from `t0` (closed minutes skipped), ticks of 0.25."""
    rng = random.Random(seed)
    out = []
    t = t0 - 60_000
    while len(out) < n:
        t += 60_000
        if not is_market_open(t):
            continue
        pts = [price]
        for _ in range(4):
            pts.append(pts[-1] + rng.choice((-0.5, -0.25, 0.0, 0.25, 0.5)))
        out.append((ES, (t, price, max(pts), min(pts), pts[-1], rng.randint(1, 500))))
        price = pts[-1]
    return out


def run(cls: type, bars: list, *, timeframes: Sequence[str] = ("1m",), params: dict | None = None,
        program: str = "combine", size: str = "50k", warm: list | None = None,
        slippage: int = 1, limit_fill: str = "through", run_cls: type[Run] = Run,
        gate: bool = False, limits: dict | None = None) -> tuple[Run, Outcome]:
    inst = Instance.model_validate({"name": "t", "class": "x:Y", "contracts": [ES],
                                    "timeframes": list(timeframes), "params": params or {},
                                    "limits": limits or {}})
    prog, _ = program_of(program, size)
    r = run_cls(inst, cls, cls.Config.model_validate(params or {}), prog,
            {ES: FillRules(0.25, slippage, limit_fill)},
            gate=BacktestGate(program, size, inst.name, inst.limits) if gate else None)
    r.warm({ES: [row for _, row in (warm or [])]})
    return r, r.go(bars, bars[0][1][0])
