"""The risk gate's resolved numbers: Topstep's defaults per program and size, as plain data.

topstep-rules.md gives every number as a setting with a default, never a constant: the defaults
are Topstep's program table (trading/risk/programs.py) and the product table
(trading/products.py); this module resolves them into `RiskConfig`, the frozen record the pure
core reads on its hot path (no pydantic, no environment), and holds `StrategyLimits`, one
strategy's own caps. `gateway/settings.py` builds it from the `TOPSTEP_*` / `RISK_*`
variables (and gateway/risk_runtime.py the limits from strategies.toml); tests build it
directly with `resolve(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

from trading import products
from trading.risk import programs as T
from trading.risk.programs import PROGRAMS, SIZES

__all__ = ["FAMILIES", "PROGRAMS", "SIZES", "RiskConfig", "StrategyLimits", "parse_families",
           "parse_fees", "parse_scaling", "resolve"]

#: Micro contracts by CME symbol (trading/products.py): weighted by `micro_weight` in the cap.
MICROS = products.MICRO_SYMBOLS
#: Product families that may not be held in opposite directions (rule 7), from the product
#: table: "ES,MES;NQ,MNQ;..." (RISK_HEDGING_FAMILIES overrides it; TopstepX roots work too).
FAMILIES = ";".join(
    ",".join(p.symbol for p in products.PRODUCTS if p.family == fam)
    for fam in dict.fromkeys(p.family for p in products.PRODUCTS)
    if sum(p.family == fam for p in products.PRODUCTS) > 1)
#: Fees + commissions per contract per side by CME symbol (RISK_FEES overrides them).
FEES = {p.symbol: p.cost_per_side for p in products.PRODUCTS}


@dataclass(frozen=True, slots=True)
class StrategyLimits:
    """One strategy instance's own caps (strategies.toml `[strategies.NAME.limits]`)."""

    contracts: frozenset[str] | None = None   # roots or contract ids; None = any
    max_lots: float | None = None
    max_orders_per_minute: int | None = None
    max_daily_loss: float | None = None


@dataclass(frozen=True, slots=True)
class RiskConfig:
    """Every number the gate enforces, resolved for one account."""

    program: str
    size: str
    starting_balance: float              # S
    mll_allowance: float                 # D
    mll_buffer: float                    # B
    fixed_floor: float | None            # a configured floor (live, XFA after payout)
    max_lots: float
    micro_weight: float
    scaling: tuple[tuple[float, float], ...] | None   # XFA tiers, None elsewhere
    entry_cutoff: time                   # CT: no new entries from here
    flatten_start: time                  # CT: cancel entries and flatten from here
    flat_by: time                        # CT: Topstep's deadline
    daily_loss_limit: float | None
    account_orders_per_minute: int
    strategy_orders_per_minute: int
    daily_contracts: int
    default_stop_ticks: int
    slippage_ticks: int
    micros: frozenset[str] = MICROS
    families: dict[str, str] = field(default_factory=dict)    # root -> family name
    fees: dict[str, float] = field(default_factory=lambda: dict(FEES))
    strategies: dict[str, StrategyLimits] = field(default_factory=dict)
    #: A held contract without a mark (quote or venue bar) this young is blind: entries that
    #: add risk are refused (trading/marks.py).
    mark_max_age_s: float = 15.0

    def fee(self, root: str) -> float:
        return self.fees.get(root, products.DEFAULT_FEE)

    def weight(self, root: str) -> float:
        return self.micro_weight if root in self.micros else 1.0


def parse_families(text: str) -> dict[str, str]:
    """"ES,MES;NQ,MNQ" -> {"ES": "ES", "MES": "ES", ...}: each group named by its first root
    (a TopstepX root stands for its CME symbol: "EP,MES" is ES and MES)."""
    out: dict[str, str] = {}
    for group in text.split(";"):
        roots = [products.symbol_of(r.strip()) for r in group.split(",") if r.strip()]
        for r in roots:
            out[r] = roots[0]
    return out


def parse_scaling(text: str) -> tuple[tuple[float, float], ...]:
    """"0:2,1500:3,2000:5" -> ((0, 2), (1500, 3), (2000, 5)), sorted by threshold."""
    tiers = []
    for part in text.split(","):
        if not part.strip():
            continue
        at, _, lots = part.partition(":")
        tiers.append((float(at), float(lots)))
    if not tiers:
        raise ValueError("empty scaling table")
    return tuple(sorted(tiers))


def parse_fees(text: str) -> dict[str, float]:
    """"ES:1.40,MES:0.37" -> {"ES": 1.4, "MES": 0.37} (a TopstepX root stands for its symbol)."""
    out = {}
    for part in text.split(","):
        if part.strip():
            root, _, fee = part.partition(":")
            out[products.symbol_of(root.strip())] = float(fee)
    return out


def resolve(program: str = "combine", size: str = "50k", **overrides: object) -> RiskConfig:
    """The defaults for `program` x `size`, with any field overridden (None keeps the default)."""
    if program not in PROGRAMS:
        raise ValueError(f"expected one of {', '.join(PROGRAMS)}")
    numbers = T.size_of(size)
    allowance = float(overrides.get("mll_allowance") or numbers.mll_allowance)  # type: ignore[arg-type]
    values: dict[str, object] = {
        "program": program,
        "size": size,
        "starting_balance": 0.0 if program == "xfa" else numbers.starting_balance,
        "mll_allowance": allowance,
        "mll_buffer": round(allowance * T.MLL_BUFFER_SHARE, 2),
        "fixed_floor": None,
        "max_lots": float(numbers.max_lots),
        "micro_weight": T.MICRO_WEIGHT[program],
        "scaling": tuple((at, float(lots)) for at, lots in T.XFA_SCALING[size])
        if program == "xfa" else None,
        "entry_cutoff": T.ENTRY_CUTOFF,
        "flatten_start": T.FLATTEN_START,
        "flat_by": T.FLAT_BY,
        "daily_loss_limit": numbers.live_daily_loss if program == "live" else None,
        "account_orders_per_minute": T.ACCOUNT_ORDERS_PER_MINUTE,
        "strategy_orders_per_minute": T.STRATEGY_ORDERS_PER_MINUTE,
        "daily_contracts": T.DAILY_CONTRACTS,
        "default_stop_ticks": T.DEFAULT_STOP_TICKS,
        "slippage_ticks": T.SLIPPAGE_TICKS,
        "families": parse_families(FAMILIES),
    }
    for key, value in overrides.items():
        if key not in RiskConfig.__dataclass_fields__:
            raise TypeError(f"unknown risk setting {key}")
        if value is not None:
            values[key] = value
    cfg = RiskConfig(**values)  # type: ignore[arg-type]
    if not (cfg.entry_cutoff <= cfg.flatten_start <= cfg.flat_by):
        raise ValueError("expected entry cut-off <= flatten start <= flat-by")
    return cfg
