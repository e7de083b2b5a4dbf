"""Topstep's account rules as the platform applies them (../shared/topstep-rules.md). Pure.

Programs (`combine`, `xfa`, `live`) and sizes (`50k`, `100k`, `150k`) give each sim account its
starting balance S, Maximum Loss Limit allowance D, maximum position and daily loss limit; every
figure can be overridden per account (sim/exchange/accounts.py). The numbers are the tables the
risk gate reads too (trading/risk/programs.py, trading/products.py); the formulas are the
referee's own, so it stays an independent judge of the gate:

- MLL floor, trailing end of day, for combine and xfa alike (an xfa simply starts at S = 0):
  F = min(S, max(S - D, H - D)), H the highest end-of-day balance so far (H starts at S);
  F moves only at 17:00 CT. An xfa after its first payout has F = S for good. A live account
  has a fixed floor S - D.
- Position size in tenths of a lot: a micro counts 1/10 of a lot on combine and xfa, 1:1 on
  live. The exposure of a contract is the largest position the account could reach if every
  working entry of one side filled: max(|net + buys|, |net - sells|).
- XFA scaling: the day's cap from the previous end-of-day profit (balance - S), by tiers.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading import products
from trading.risk import programs as T
from trading.risk.programs import PROGRAMS, SIZES

RULES = ("max_position", "mll", "flat_by", "daily_loss")


#: The numbers are Topstep's program and product tables (trading/risk/programs.py,
#: trading/products.py), shared with the risk gate; the formulas below are the referee's own.
SIZE_SPECS = T.ACCOUNT_SIZES
XFA_SCALING = T.XFA_SCALING
#: Micro contracts by our root name (SimContract.symbol, the CME symbol).
MICROS = products.MICRO_SYMBOLS


@dataclass(frozen=True)
class Program:
    """The rules of one account, resolved from its program, size and overrides."""

    program: str = "combine"
    size: str = "50k"
    start: float = 50_000.0
    allowance: float = 2_000.0
    max_lots: int = 5
    daily_loss: float | None = None   # personal / live daily loss limit; None = none
    payout: bool = False              # xfa: floor locked at S after the first payout
    scaling: tuple[tuple[float, int], ...] | None = None

    @property
    def micro_weight(self) -> int:
        """Tenths of a lot one micro counts."""
        return round(T.MICRO_WEIGHT[self.program] * 10)


def resolve(program: str, size: str, start: float, allowance: float | None = None,
            max_lots: int | None = None, daily_loss: float | None = None,
            payout: bool = False) -> Program:
    """The Program of an account; None overrides take the table's figure."""
    if program not in PROGRAMS:
        raise ValueError(f"program must be one of {PROGRAMS}, not {program!r}")
    if size not in SIZE_SPECS:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    spec = SIZE_SPECS[size]
    if program == "live" and daily_loss is None:
        daily_loss = spec.live_daily_loss
    scaling = XFA_SCALING[size] if program == "xfa" and max_lots is None else None
    return Program(program, size, start, spec.mll_allowance if allowance is None else allowance,
                   spec.max_lots if max_lots is None else max_lots, daily_loss, payout, scaling)


def floor(p: Program, high_water: float) -> float:
    """The MLL floor given the highest end-of-day balance so far."""
    if p.program == "live":
        return p.start - p.allowance
    if p.program == "xfa" and p.payout:
        return p.start
    return min(p.start, max(p.start - p.allowance, high_water - p.allowance))


def day_max_lots(p: Program, prev_eod_balance: float) -> int:
    """The cap for a trading day (xfa: by the scaling plan from the previous EOD profit)."""
    if p.scaling is None:
        return p.max_lots
    profit = prev_eod_balance - p.start
    lots = p.scaling[0][1]
    for threshold, tier in p.scaling:
        if profit >= threshold:
            lots = tier
    return min(lots, SIZE_SPECS[p.size].max_lots)


def lot_tenths(p: Program, symbol: str, size: int) -> int:
    """`size` contracts of `symbol` in tenths of a lot."""
    return size * (p.micro_weight if symbol in MICROS else 10)


def exposure(net: int, buys: int, sells: int) -> int:
    """Largest |position| reachable in one contract if every working entry of a side fills."""
    return max(abs(net + buys), abs(net - sells))
