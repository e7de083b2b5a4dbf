"""Exchange + clearing fees the sim charges per contract per side (per half-turn fill).

TopstepX publishes its fees as round-turn figures per contract; a `HalfTrade` carries the fee
of its own side, so the sim charges half the round turn on every fill (the live MNQ fill in
projectx-api.md §6 shows `fees: 0.37`, half of the $0.74 round turn). The figures are the
Topstep schedule as of 2025-2026, rounded to the cent; they are a model, not a quote. Roots the
table does not know pay the E-mini rate.
"""

from __future__ import annotations

#: Round-turn fee per contract in dollars, keyed by our root name (`SimContract.symbol`).
ROUND_TURN: dict[str, float] = {
    "ES": 2.80, "NQ": 2.80, "RTY": 2.80, "YM": 2.80,
    "MES": 0.74, "MNQ": 0.74, "M2K": 0.74, "MYM": 0.74,
    "CL": 3.04, "MCL": 1.04, "NG": 3.20, "QM": 2.44,
    "GC": 3.24, "MGC": 1.04, "SI": 3.24, "HG": 3.24,
    "6E": 3.24, "6B": 3.24, "6J": 3.24, "6A": 3.24, "6C": 3.24,
    "ZN": 1.94,
}
DEFAULT_ROUND_TURN = 2.80


def fee_per_side(symbol: str) -> float:
    """Dollars charged per contract on one fill of `symbol` (e.g. ES -> 1.40)."""
    return round(ROUND_TURN.get(symbol, DEFAULT_ROUND_TURN) / 2.0, 2)


def fees_for(symbol: str, size: int) -> float:
    """Fees of one fill of `size` contracts."""
    return round(fee_per_side(symbol) * size, 2)
