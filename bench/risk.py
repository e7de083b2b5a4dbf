"""Risk gate benchmark: checks/s of the pure core on a realistic account.

    .venv/bin/python bench/risk.py [--n 200000]

Measured in the same run on the same views:
- baseline: `AllowAll.check` (the seam's call cost and nothing else);
- risk check: `RiskGate.check` of a 50K Combine with per-strategy limits, 3 open positions
  (one a strategy's share), 8 working orders (2 of them bracket children, 1 protective leg),
  quotes on every contract; intents alternate entries that pass every rule, entries rejected by
  the position cap, and orders that only reduce (target: at least 50,000 checks/s);
- risk due: `RiskGate.due` on the same view (what runs on every quote).
Rate limits are set high so that every entry runs the whole rule chain.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trading.risk.types import BUY, LONG, SELL, SHORT, AllowAll, BookView, Intent  # noqa: E402
from trading.risk.types import PositionView, QuoteView, WorkingOrder  # noqa: E402
from trading.risk.gate import RiskGate  # noqa: E402
from trading.risk.calendar import CmeCalendar  # noqa: E402
from trading.risk.config import StrategyLimits, resolve  # noqa: E402

ES, MES, NQ, MNQ = ("CON.F.US.EP.Z26", "CON.F.US.MES.Z26", "CON.F.US.ENQ.Z26",
                    "CON.F.US.MNQ.Z26")
TICK = {ES: ("ES", 12.5), MES: ("MES", 1.25), NQ: ("NQ", 5.0), MNQ: ("MNQ", 0.5)}
NOW = 1_795_536_000_000 + 15 * 3_600_000      # Wed 2026-11-25 ~09:00 CT


def _view() -> BookView:
    def p(c: str, owner: str, side: int, n: int, avg: float) -> PositionView:
        return PositionView(c, owner, side, n, avg, -120.0, 35.0, TICK[c][0], 0.25, TICK[c][1])

    def o(i: int, c: str, side: int, n: int, owner: str, parent: int | None = None,
          protective: bool = False) -> WorkingOrder:
        return WorkingOrder(i, f"{owner}-{i}", owner, c, side, n, n, "limit", 1, 6000.0,
                            parent_id=parent, protective=protective)

    positions = (p(ES, "_account", LONG, 1, 6000.0), p(MNQ, "_account", SHORT, 6, 21000.0),
                 p(MES, "_account", LONG, 4, 6001.0), p(ES, "alpha", LONG, 1, 6000.0),
                 p(MNQ, "beta", SHORT, 6, 21000.0))
    orders = (o(1, ES, BUY, 1, "alpha"), o(2, ES, SELL, 1, "alpha", parent=1),
              o(3, ES, SELL, 1, "alpha", parent=1), o(4, MNQ, SELL, 2, "beta"),
              o(5, MES, SELL, 2, "manual"), o(6, ES, SELL, 1, "alpha", protective=True),
              o(7, MNQ, BUY, 2, "beta"), o(8, MES, BUY, 3, "gamma"))
    quotes = {c: QuoteView(c, 5999.75, 6000.0, 6000.0, NOW) for c in (ES, MES)}
    quotes.update({c: QuoteView(c, 20999.0, 21000.0, 21000.0, NOW) for c in (NQ, MNQ)})
    return BookView(1001, "50KTC-1001", NOW, 50_400.0, 400.0, 35.0, True, "ACTIVE", positions,
                    orders, quotes)


def _intents() -> list[Intent]:
    def i(c: str, side: int, n: int, owner: str, sl: int | None = 12) -> Intent:
        return Intent(f"{owner}-x", owner, c, TICK[c][0], 0.25, TICK[c][1], side, n, "market",
                      sl_ticks=sl)
    return [i(MES, BUY, 2, "gamma"), i(ES, BUY, 4, "alpha"), i(MNQ, BUY, 2, "beta"),
            i(ES, BUY, 1, "alpha", None), i(MES, SELL, 1, "manual")]


def _rate(fn, args: list, n: int) -> float:  # type: ignore[no-untyped-def, type-arg]
    k = len(args)
    t0 = time.perf_counter()
    for j in range(n):
        fn(*args[j % k])
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=200_000)
    n = ap.parse_args().n
    cfg = resolve("combine", "50k", account_orders_per_minute=10**9,
                  strategy_orders_per_minute=10**9, daily_contracts=10**9,
                  strategies={"alpha": StrategyLimits(frozenset({"ES"}), 3.0, None, 800.0),
                              "beta": StrategyLimits(None, 2.0, None, None)})
    gate = RiskGate(cfg, CmeCalendar())
    view = _view()
    intents = _intents()
    verdicts = [gate.check(x, view) for x in intents]
    print("verdicts:", ", ".join(f"{v.decision}/{v.rule}" for v in verdicts))
    calls = [(x, view) for x in intents]
    base = _rate(AllowAll().check, calls, n)
    risk = _rate(gate.check, calls, n)
    due = _rate(gate.due, [(view, NOW)], n // 4)
    print(f"baseline AllowAll.check   {base:12,.0f} checks/s")
    print(f"RiskGate.check            {risk:12,.0f} checks/s  ({1e6 / risk:.1f} us each, "
          f"{base / risk:.0f}x the baseline; target >= 50,000/s)")
    print(f"RiskGate.due              {due:12,.0f} calls/s   ({1e6 / due:.1f} us each)")


if __name__ == "__main__":
    main()
