"""What a run of trading days earned under Topstep's program: a Combine passed (and on which
day), an XFA's winning days toward a payout, and, over reorderings of the same days, how often
the Combine would pass. Pure; the referee's formulas (`rules.floor`), not the gate's.

The criteria (../shared/topstep-rules.md, rule 9 and "Account programs and sizes"):
- **Combine passed** at the close of the first day when the balance is at least the profit
  target over S, no failing breach happened up to then (MLL, flat-by, position cap: the
  account is lost; a daily loss limit only stops the day), at least `COMBINE_MIN_DAYS` days
  traded, and the best day is at most `CONSISTENCY_TARGET` (50%) of the profit made: a target
  made with one day over half of it is not passed (yet: later days can dilute it).
- **XFA payout**: winning days (a day's P&L >= `XFA_WINNING_DAY`); the standard path needs
  `XFA_STANDARD_DAYS` of them, the consistency path `XFA_CONSISTENCY_DAYS` traded days with
  the best day within `XFA_CONSISTENCY_SHARE` of the profit.
- **Monte Carlo of day orderings**: the run's days (P&L, lowest intraday equity against the
  day's start, a failing breach that day) replayed in `n` seeded random orders through the
  trailing floor: the pass rate and the median days to pass.
"""

from __future__ import annotations

import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from trading.referee.rules import Program, floor

#: Rule 9: the Combine's best day may not exceed 50% of the profit.
CONSISTENCY_TARGET = 0.5
#: Combine minimum trading days [3P]: with the 50% target at least two in practice.
COMBINE_MIN_DAYS = 2
#: XFA payouts (2026) [3P]: winning days of $150 or more, five of them (standard path), or
#: three traded days keeping the best day within 40% (consistency path).
XFA_WINNING_DAY = 150.0
XFA_STANDARD_DAYS = 5
XFA_CONSISTENCY_DAYS = 3
XFA_CONSISTENCY_SHARE = 0.4
#: Breaches that lose the account; `daily_loss` only stops the day.
FAILING = frozenset({"mll", "flat_by", "max_position"})


@dataclass(frozen=True, slots=True)
class Day:
    """One trading day of a run (dates are trading dates, ISO)."""

    day: str
    start: float          # balance at the day's open
    end: float            # balance at its close
    low: float            # lowest equity seen that day (open P&L along the path)
    traded: bool          # any fill that day
    failed: bool = False  # a failing breach that day

    @property
    def pnl(self) -> float:
        return round(self.end - self.start, 2)


@dataclass(frozen=True, slots=True)
class Passing:
    passed: bool
    day: str | None       # the day it passed
    days: int | None      # trading days it took
    why: str              # one sentence


def combine(days: Sequence[Day], p: Program, target: float) -> Passing:
    """Whether (and when) the Combine is passed over `days`, in order."""
    best = 0.0
    traded = 0
    profit = 0.0
    for i, d in enumerate(days):
        if d.failed:
            return Passing(False, None, None, f"account lost on {d.day} (a failing breach)")
        profit = round(d.end - p.start, 2)
        best = max(best, d.pnl)
        traded += d.traded
        if profit >= target and traded >= COMBINE_MIN_DAYS \
                and best <= CONSISTENCY_TARGET * profit:
            return Passing(True, d.day, i + 1, f"target {target:,.0f} made on {d.day}, day "
                           f"{i + 1}, best day {best:,.2f} within 50% of {profit:,.2f}")
    if profit < target:
        return Passing(False, None, None, f"target {target:,.0f} not made (profit "
                       f"{profit:,.2f})")
    if best > CONSISTENCY_TARGET * profit:
        return Passing(False, None, None, f"target made but the best day {best:,.2f} is over "
                       f"50% of the profit {profit:,.2f} (consistency target)")
    return Passing(False, None, None, f"target made in {traded} traded day(s), fewer than "
                   f"{COMBINE_MIN_DAYS}")


@dataclass(frozen=True, slots=True)
class Payout:
    winning_days: int
    standard_day: str | None       # when the standard path was complete
    consistency_day: str | None    # when the consistency path was complete


def xfa(days: Sequence[Day]) -> Payout:
    """Winning days toward an XFA payout, and when each path was complete (not after a loss)."""
    wins = traded = 0
    best = 0.0
    profit = 0.0
    standard = consistency = None
    for d in days:
        if d.failed:
            break
        traded += d.traded
        wins += d.pnl >= XFA_WINNING_DAY
        best = max(best, d.pnl)
        profit += d.pnl
        if standard is None and wins >= XFA_STANDARD_DAYS:
            standard = d.day
        if consistency is None and traded >= XFA_CONSISTENCY_DAYS and profit > 0 \
                and best <= XFA_CONSISTENCY_SHARE * profit:
            consistency = d.day
    return Payout(wins, standard, consistency)


def replay(days: Sequence[Day], p: Program, target: float) -> int | None:
    """The days it takes to pass the Combine with `days` in this order (the trailing floor
    from end-of-day balances, intraday lows against it), or None."""
    balance = hw = p.start
    fl = floor(p, hw)
    best = 0.0
    traded = 0
    for i, d in enumerate(days):
        if d.failed or balance + (d.low - d.start) <= fl:
            return None
        balance += d.pnl
        best = max(best, d.pnl)
        traded += d.traded
        profit = balance - p.start
        if profit >= target and traded >= COMBINE_MIN_DAYS \
                and best <= CONSISTENCY_TARGET * profit:
            return i + 1
        hw = max(hw, balance)
        fl = floor(p, hw)
    return None


@dataclass(frozen=True, slots=True)
class MonteCarlo:
    runs: int
    seed: int
    pass_rate: float
    median_days: float | None


def monte_carlo(days: Sequence[Day], p: Program, target: float, n: int, seed: int
                ) -> MonteCarlo:
    """`n` random orderings of `days` (seeded): the share that passes, the median days."""
    rng = random.Random(seed)
    order = list(days)
    took: list[int] = []
    for _ in range(n):
        rng.shuffle(order)
        k = replay(order, p, target)
        if k is not None:
            took.append(k)
    return MonteCarlo(n, seed, len(took) / n if n else 0.0,
                      statistics.median(took) if took else None)
