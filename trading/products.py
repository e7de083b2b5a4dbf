"""The product table: every futures product we know, once (CME symbol, TopstepX root, ticks,
micro or not, fees), with lookups both ways.

TopstepX names a product by its own root in contract ids and symbol ids
(`CON.F.US.EP.Z26`, `F.US.EP`), which is often not the CME symbol a trader types (ES is `EP`,
MCL is `MCLE`, 6J is `JY6`, ZN is `TYA`). Every part that meets both names (the venue client's
symbol search, the risk gate's position weights and fees, the sim's catalogue and referee)
reads them from here.

Sources, per column (../shared/projectx-api.md §8.1-§8.2, ../shared/topstep-rules.md):
- root: §8.1's list (EP, ENQ, MNQ, MES, RTY, M2K, YM, MYM, CLE, MCLE, NGE, GCE, MGC, SIE, CPE,
  EU6, BP6, JY6, DA6, CA6, TYA); QM and QG from §8.2's tick list (NQM, NQG). Products §8 does
  not name (the other micros) keep their CME symbol as root, as the venue does for MNQ and MES:
  unverified, and `product()` accepts either name anyway.
- tick size and value: §8.2 (docs: ES, NQ, MNQ, 6E, 6B, 6A, 6C, QM, QG; CME specs: the rest).
  Where a source is missing, the larger tick value (the stricter for the gate's worst case).
- micro: counted 1/10 of a lot on Combine and XFA (topstep-rules.md rule 2). Only products
  that are micro contracts at CME; an unknown product is a full lot (the strict reading).
- fee: exchange + clearing fees per contract per side, Topstep's schedule (2025-2026) as the
  venue reports it in `HalfTrade.fees` (the live MNQ fill in projectx-api.md §6 shows 0.37, half
  the $0.74 round turn). Products not in the schedule we have pay the E-mini rate.
- commission: per contract per side, beside the fee (`HalfTrade.commissions`); TopstepX
  reports none on the accounts we know, so 0.0, kept separate so a cost is fee + commission.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Product:
    """One futures product (all its contract months)."""

    symbol: str          # CME symbol, "ES": what traders type and what the gate keys on
    root: str            # TopstepX root, "EP": in `CON.F.US.EP.Z26` and `F.US.EP`
    title: str           # "E-mini S&P 500"
    tick_size: float
    tick_value: float    # dollars per tick per contract
    micro: bool
    family: str          # the full-size product's symbol: ES and MES may not be held opposite
    fee: float           # dollars per contract per side
    commission: float = 0.0

    @property
    def cost_per_side(self) -> float:
        """What one contract costs on one fill: fee + commission."""
        return self.fee + self.commission


#: The E-mini rate, for a product the schedule does not list (and an unknown one).
DEFAULT_FEE = 1.40
#: Dollars per tick assumed for a product nobody knows: the largest of the table, to be strict.
UNKNOWN_TICK_VALUE = 25.0

P = Product
PRODUCTS: tuple[Product, ...] = (
    # equity index
    P("ES", "EP", "E-mini S&P 500", 0.25, 12.5, False, "ES", 1.40),
    P("MES", "MES", "Micro E-mini S&P 500", 0.25, 1.25, True, "ES", 0.37),
    P("NQ", "ENQ", "E-mini NASDAQ-100", 0.25, 5.0, False, "NQ", 1.40),
    P("MNQ", "MNQ", "Micro E-mini Nasdaq-100", 0.25, 0.5, True, "NQ", 0.37),
    P("RTY", "RTY", "E-mini Russell 2000", 0.1, 5.0, False, "RTY", 1.40),
    P("M2K", "M2K", "Micro E-mini Russell 2000", 0.1, 0.5, True, "RTY", 0.37),
    P("YM", "YM", "E-mini Dow ($5)", 1.0, 5.0, False, "YM", 1.40),
    P("MYM", "MYM", "Micro E-mini Dow", 1.0, 0.5, True, "YM", 0.37),
    # energy
    P("CL", "CLE", "Crude Oil", 0.01, 10.0, False, "CL", 1.52),
    P("MCL", "MCLE", "Micro WTI Crude Oil", 0.01, 1.0, True, "CL", 0.52),
    P("QM", "NQM", "E-mini Crude Oil", 0.025, 12.5, False, "CL", 1.22),
    P("NG", "NGE", "Natural Gas", 0.001, 10.0, False, "NG", 1.60),
    P("QG", "NQG", "E-mini Natural Gas", 0.005, 12.5, False, "NG", DEFAULT_FEE),
    P("MNG", "MNG", "Micro Henry Hub Natural Gas", 0.001, 1.0, True, "NG", DEFAULT_FEE),
    # metals
    P("GC", "GCE", "Gold", 0.1, 10.0, False, "GC", 1.62),
    P("MGC", "MGC", "Micro Gold", 0.1, 1.0, True, "GC", 0.52),
    P("SI", "SIE", "Silver", 0.005, 25.0, False, "SI", 1.62),
    P("SIL", "SIL", "Micro Silver", 0.01, 10.0, True, "SI", DEFAULT_FEE),
    P("HG", "CPE", "Copper", 0.0005, 12.5, False, "HG", 1.62),
    P("MHG", "MHG", "Micro Copper", 0.0005, 1.25, True, "HG", DEFAULT_FEE),
    # currencies
    P("6E", "EU6", "Euro FX", 0.00005, 6.25, False, "6E", 1.62),
    P("M6E", "M6E", "Micro EUR/USD", 0.0001, 1.25, True, "6E", DEFAULT_FEE),
    P("6B", "BP6", "British Pound", 0.0001, 6.25, False, "6B", 1.62),
    P("M6B", "M6B", "Micro GBP/USD", 0.0001, 0.625, True, "6B", DEFAULT_FEE),
    P("6A", "DA6", "Australian Dollar", 0.00005, 5.0, False, "6A", 1.62),
    P("M6A", "M6A", "Micro AUD/USD", 0.0001, 1.0, True, "6A", DEFAULT_FEE),
    P("6J", "JY6", "Japanese Yen", 0.0000005, 6.25, False, "6J", 1.62),
    P("6C", "CA6", "Canadian Dollar", 0.00005, 5.0, False, "6C", 1.62),
    # rates
    P("ZN", "TYA", "10-Year T-Note", 0.015625, 15.625, False, "ZN", 0.97),
    # crypto
    P("MBT", "MBT", "Micro Bitcoin", 5.0, 0.5, True, "MBT", DEFAULT_FEE),
    P("MET", "MET", "Micro Ether", 0.5, 0.05, True, "MET", DEFAULT_FEE),
)
del P

BY_SYMBOL: dict[str, Product] = {p.symbol: p for p in PRODUCTS}
BY_ROOT: dict[str, Product] = {p.root: p for p in PRODUCTS}
#: CME symbols of the micro contracts.
MICRO_SYMBOLS = frozenset(p.symbol for p in PRODUCTS if p.micro)


def by_symbol(symbol: str) -> Product | None:
    """The product of a CME symbol ("MCL"), None when unknown."""
    return BY_SYMBOL.get(symbol.upper())


def by_root(root: str) -> Product | None:
    """The product of a TopstepX root ("MCLE"), None when unknown."""
    return BY_ROOT.get(root.upper())


def product(name: str) -> Product | None:
    """The product of either name: a CME symbol first, then a TopstepX root."""
    key = name.upper()
    return BY_SYMBOL.get(key) or BY_ROOT.get(key)


def root_of(symbol: str) -> str:
    """The TopstepX root of a CME symbol (MCL -> MCLE); an unknown symbol is its own root."""
    p = by_symbol(symbol)
    return p.root if p is not None else symbol.upper()


def symbol_of(name: str) -> str:
    """The CME symbol of a TopstepX root or a symbol (MCLE -> MCL, MCL -> MCL); an unknown name
    is its own symbol."""
    p = product(name)
    return p.symbol if p is not None else name.upper()


def contract_root(contract_id: str) -> str:
    """The TopstepX root inside a contract id ("CON.F.US.MCLE.Z26" -> "MCLE"), or the text
    itself when it is not an id."""
    parts = contract_id.split(".")
    return parts[3] if len(parts) >= 5 else contract_id


def symbol_of_contract(contract_id: str) -> str:
    """The CME symbol of a contract id (CON.F.US.EP.Z26 -> ES, CON.F.US.JY6.H27 -> 6J)."""
    return symbol_of(contract_root(contract_id))


def is_micro(name: str) -> bool:
    """Whether a symbol or root names a micro contract (unknown: no, the strict reading)."""
    p = product(name)
    return p is not None and p.micro


def fee_per_side(name: str) -> float:
    """Fees + commissions of one contract on one fill, by symbol or root."""
    p = product(name)
    return p.cost_per_side if p is not None else DEFAULT_FEE


def tick_value(name: str) -> float:
    """Dollars per tick, by symbol or root; an unknown product the strict UNKNOWN_TICK_VALUE."""
    p = product(name)
    return p.tick_value if p is not None else UNKNOWN_TICK_VALUE


def family_of(name: str) -> str:
    """The product family (the full-size symbol) of a symbol or root; unknown: itself."""
    p = product(name)
    return p.family if p is not None else name.upper()
