"""The risk gate's resolved numbers: Topstep's defaults per program and size, as plain data.

topstep-rules.md gives every number as a setting with a default, never a constant: this module
holds the defaults (one table per rule) and `RiskConfig`, the frozen record the pure core reads
on its hot path (no pydantic, no environment). `gateway/risk_settings.py` builds it from the
`TOPSTEP_*` / `RISK_*` variables; tests build it directly with `resolve(...)`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import time

PROGRAMS = ("combine", "xfa", "live")
SIZES = ("50k", "100k", "150k")

#: Combine starting balance S (the XFA starts at 0, topstep-rules.md "Programs").
STARTING_BALANCE = {"50k": 50_000.0, "100k": 100_000.0, "150k": 150_000.0}
#: Maximum Loss Limit allowance D.
MLL_ALLOWANCE = {"50k": 2_000.0, "100k": 3_000.0, "150k": 4_500.0}
#: Maximum position in lots (micros weighted, below).
MAX_LOTS = {"50k": 5.0, "100k": 10.0, "150k": 15.0}
#: Live Funded daily loss limit (its starting tier).
LIVE_DAILY_LOSS = {"50k": 2_000.0, "100k": 3_000.0, "150k": 4_500.0}
#: XFA scaling plan: (profit over S at the previous EOD, lots from there). 50K is [3P];
#: 100K and 150K are unverified guesses kept at or below the account's maximum position.
SCALING = {
    "50k": ((0.0, 2.0), (1_500.0, 3.0), (2_000.0, 5.0)),
    "100k": ((0.0, 3.0), (1_500.0, 4.0), (2_000.0, 6.0), (3_000.0, 10.0)),
    "150k": ((0.0, 3.0), (1_500.0, 4.0), (2_000.0, 5.0), (3_000.0, 10.0), (4_500.0, 15.0)),
}
#: Micro contracts (TopstepX and CME roots): weighted by `micro_weight` in the position cap.
MICROS = frozenset({"MES", "MNQ", "M2K", "MYM", "MCL", "MGC", "SIL", "MHG", "M6E", "M6A", "M6B",
                    "MBT", "MET", "MNG", "M2KE"})
#: Product families that may not be held in opposite directions (rule 7); TopstepX roots
#: (EP, ENQ, CLE, GCE, EU6) beside the CME ones.
FAMILIES = "ES,EP,MES;NQ,ENQ,MNQ;RTY,M2K;YM,MYM;CL,CLE,MCL,QM;GC,GCE,MGC;SI,SIE,SIL;" \
           "HG,CPE,MHG;NG,NGE,QG,MNG;6E,EU6,M6E;6A,DA6,M6A;6B,BP6,M6B"
#: Fees per contract per side (Topstep's published schedule, as the sim charges).
FEES = {"ES": 1.40, "EP": 1.40, "NQ": 1.40, "ENQ": 1.40, "RTY": 1.40, "YM": 1.40,
        "MES": 0.37, "MNQ": 0.37, "M2K": 0.37, "MYM": 0.37, "CL": 1.52, "CLE": 1.52,
        "MCL": 0.52, "MGC": 0.52, "NG": 1.60, "NGE": 1.60, "QM": 1.22, "GC": 1.62, "GCE": 1.62,
        "SI": 1.62, "HG": 1.62, "6E": 1.62, "EU6": 1.62, "6B": 1.62, "6J": 1.62, "6A": 1.62,
        "6C": 1.62, "ZN": 0.97}
DEFAULT_FEE = 1.40
#: Dollars per tick by root, for orders whose contract the gate has not yet seen in an intent
#: (working orders after a restart); an unknown root takes the largest, to stay strict.
TICK_VALUES = {"ES": 12.5, "NQ": 5.0, "RTY": 5.0, "YM": 5.0, "MES": 1.25, "MNQ": 0.5,
               "M2K": 0.5, "MYM": 0.5, "CL": 10.0, "MCL": 1.0, "QM": 12.5, "GC": 10.0,
               "MGC": 1.0, "SI": 25.0, "SIL": 10.0, "HG": 12.5, "MHG": 1.25, "NG": 10.0,
               "QG": 12.5, "6E": 6.25, "M6E": 1.25, "6A": 5.0, "6B": 6.25, "6J": 6.25,
               "6C": 5.0, "ZN": 15.625}
UNKNOWN_TICK_VALUE = 25.0


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
        return self.fees.get(root, DEFAULT_FEE)

    def weight(self, root: str) -> float:
        return self.micro_weight if root in self.micros else 1.0


def parse_families(text: str) -> dict[str, str]:
    """"ES,MES;NQ,MNQ" -> {"ES": "ES", "MES": "ES", ...}: each group named by its first root."""
    out: dict[str, str] = {}
    for group in text.split(";"):
        roots = [r.strip().upper() for r in group.split(",") if r.strip()]
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
    """"ES:1.40,MES:0.37" -> {"ES": 1.4, "MES": 0.37}."""
    out = {}
    for part in text.split(","):
        if part.strip():
            root, _, fee = part.partition(":")
            out[root.strip().upper()] = float(fee)
    return out


def resolve(program: str = "combine", size: str = "50k", **overrides: object) -> RiskConfig:
    """The defaults for `program` x `size`, with any field overridden (None keeps the default)."""
    if program not in PROGRAMS:
        raise ValueError(f"expected one of {', '.join(PROGRAMS)}")
    if size not in SIZES:
        raise ValueError(f"expected one of {', '.join(SIZES)}")
    allowance = float(overrides.get("mll_allowance") or MLL_ALLOWANCE[size])  # type: ignore[arg-type]
    values: dict[str, object] = {
        "program": program,
        "size": size,
        "starting_balance": 0.0 if program == "xfa" else STARTING_BALANCE[size],
        "mll_allowance": allowance,
        "mll_buffer": round(allowance * 0.10, 2),
        "fixed_floor": None,
        "max_lots": MAX_LOTS[size],
        "micro_weight": 1.0 if program == "live" else 0.1,
        "scaling": SCALING[size] if program == "xfa" else None,
        "entry_cutoff": time(15, 0),
        "flatten_start": time(15, 5),
        "flat_by": time(15, 10),
        "daily_loss_limit": LIVE_DAILY_LOSS[size] if program == "live" else None,
        "account_orders_per_minute": 60,
        "strategy_orders_per_minute": 30,
        "daily_contracts": 200,
        "default_stop_ticks": 40,
        "slippage_ticks": 1,
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
