"""Topstep's programs as numbers: sizes, Maximum Loss Limit, position caps, XFA scaling tiers,
daily limits and deadlines, each with its source (../shared/topstep-rules.md, "the rules page").

One table for the risk gate (its defaults; every number is also a `RISK_*` setting,
gateway/settings.py) and for the sim's referee (sim/exchange/rules.py keeps its own
formulas, an independent judge, over these numbers). Where the rules page marks a number
unverified or third-party [3P], the stricter reading is taken, so the gate is never looser than
the referee (tests/unit/trading/risk/test_facts.py holds them together).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time

#: The rules page, "Account programs and sizes": Trading Combine, Express Funded, Live Funded.
PROGRAMS = ("combine", "xfa", "live")
SIZES = ("50k", "100k", "150k")


@dataclass(frozen=True, slots=True)
class AccountSize:
    """One account size's numbers (the rules page, the table of "Account programs and sizes")."""

    starting_balance: float    # S of a Combine; an XFA starts at 0 (rule 1)
    profit_target: float       # Combine pass criterion, never a breach
    mll_allowance: float       # D, the Maximum Loss Limit allowance (rule 1)
    max_lots: int              # maximum position, micros weighted (rule 2)
    live_daily_loss: float     # Live Funded daily loss limit, its starting tier (rule 5)


ACCOUNT_SIZES: dict[str, AccountSize] = {
    "50k": AccountSize(50_000.0, 3_000.0, 2_000.0, 5, 2_000.0),
    "100k": AccountSize(100_000.0, 6_000.0, 3_000.0, 10, 3_000.0),
    "150k": AccountSize(150_000.0, 9_000.0, 4_500.0, 15, 4_500.0),
}

#: XFA scaling plan (rule 3): (profit over S at the previous EOD, lots from there), the cap
#: fixed for the whole day. 50K is [3P]: 2 lots, 3 from +1,500, 5 from +2,000. 100K and 150K
#: are unverified: each tier the smaller of the figures the gate and the referee held (the
#: 100K tier at +2,000 is 5, not 6), never above the account's maximum position.
XFA_SCALING: dict[str, tuple[tuple[float, int], ...]] = {
    "50k": ((0.0, 2), (1_500.0, 3), (2_000.0, 5)),
    "100k": ((0.0, 3), (1_500.0, 4), (2_000.0, 5), (3_000.0, 10)),
    "150k": ((0.0, 3), (1_500.0, 4), (2_000.0, 5), (3_000.0, 10), (4_500.0, 15)),
}

#: Lots one micro counts (rule 2): 1/10 on Combine and XFA, 1:1 on Live Funded [3P].
MICRO_WEIGHT = {"combine": 0.1, "xfa": 0.1, "live": 1.0}

#: The gate's MLL buffer B as a share of D (rule 1: "default 10% of D").
MLL_BUFFER_SHARE = 0.10

#: Rule 4, in CT: Topstep's flat-by deadline, and the gate's own earlier steps before it (no
#: new entries from 15:00; cancel working entries and flatten from 15:05).
ENTRY_CUTOFF = time(15, 0)
FLATTEN_START = time(15, 5)
FLAT_BY = time(15, 10)

#: Rule 8 (fair use): the gate's order-rate limits per account and per strategy, and the
#: daily contract count ("older guidance flags more than 200 contracts a day").
ACCOUNT_ORDERS_PER_MINUTE = 60
STRATEGY_ORDERS_PER_MINUTE = 30
DAILY_CONTRACTS = 200

#: Rule 1's worst case of an entry without a stop: this many ticks of loss, plus one tick of
#: slippage on every entry ("plus fees and one tick of slippage").
DEFAULT_STOP_TICKS = 40
SLIPPAGE_TICKS = 1


def size_of(size: str) -> AccountSize:
    """The numbers of "50k" / "100k" / "150k" (ValueError naming the choices otherwise)."""
    try:
        return ACCOUNT_SIZES[size]
    except KeyError:
        raise ValueError(f"expected one of {', '.join(SIZES)}") from None
