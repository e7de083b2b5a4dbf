"""Exchange + clearing fees the sim charges per contract per side (per half-turn fill).

TopstepX publishes its fees as round-turn figures per contract; a `HalfTrade` carries the fee
of its own side, so the sim charges the per-side figure of the product table
(trading/products.py, the same the risk gate counts) on every fill: the live MNQ fill in
projectx-api.md §6 shows `fees: 0.37`, half of the $0.74 round turn. Roots the table does not
know pay the E-mini rate. No commission: TopstepX reports none beside its fees.
"""

from __future__ import annotations

from trading import products


def fee_per_side(symbol: str) -> float:
    """Dollars charged per contract on one fill of `symbol` (e.g. ES -> 1.40)."""
    p = products.by_symbol(symbol)
    return p.fee if p is not None else products.DEFAULT_FEE


def fees_for(symbol: str, size: int) -> float:
    """Fees of one fill of `size` contracts."""
    return round(fee_per_side(symbol) * size, 2)
