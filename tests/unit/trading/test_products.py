"""The product table: every product resolves both ways, and the venue's names are the ones
projectx-api.md §8.1 lists."""

from __future__ import annotations

import pytest

from trading import products as P

#: projectx-api.md §8.1, verbatim: CME ticker -> TopstepX root.
VENUE_ROOTS = {
    "ES": "EP", "NQ": "ENQ", "MNQ": "MNQ", "MES": "MES", "RTY": "RTY", "M2K": "M2K", "YM": "YM",
    "MYM": "MYM", "CL": "CLE", "MCL": "MCLE", "NG": "NGE", "GC": "GCE", "MGC": "MGC", "SI": "SIE",
    "HG": "CPE", "6E": "EU6", "6B": "BP6", "6J": "JY6", "6A": "DA6", "6C": "CA6", "ZN": "TYA",
}


@pytest.mark.parametrize("product", P.PRODUCTS, ids=lambda p: p.symbol)
def test_every_product_resolves_both_ways(product: P.Product) -> None:
    assert P.by_symbol(product.symbol) is product
    assert P.by_root(product.root) is product
    assert P.product(product.symbol) is product and P.product(product.root) is product
    assert P.root_of(product.symbol) == product.root
    assert P.symbol_of(product.root) == product.symbol
    assert P.symbol_of_contract(f"CON.F.US.{product.root}.Z26") == product.symbol
    assert P.family_of(product.root) == product.family
    family = P.BY_SYMBOL[product.family]
    assert family.family == family.symbol and (not family.micro or family is product)
    assert product.tick_size > 0 and product.tick_value > 0 and product.fee > 0


def test_names_are_unique_and_never_mean_two_products() -> None:
    assert len(P.BY_SYMBOL) == len(P.BY_ROOT) == len(P.PRODUCTS)
    for p in P.PRODUCTS:
        other = P.BY_SYMBOL.get(p.root)
        assert other is None or other is p, f"root {p.root} is another product's symbol"


def test_the_venue_roots_of_projectx_api() -> None:
    for symbol, root in VENUE_ROOTS.items():
        assert P.root_of(symbol) == root
        assert P.symbol_of(root) == symbol


def test_the_drifted_mappings() -> None:
    """The roots the gate's old alias table missed (a held MCL was weighed as a full lot)."""
    assert P.symbol_of_contract("CON.F.US.MCLE.Z26") == "MCL"
    assert P.is_micro("MCLE") and P.is_micro("MCL")
    assert P.symbol_of("JY6") == "6J" and P.symbol_of("CA6") == "6C"
    assert P.symbol_of("TYA") == "ZN"


def test_unknown_names_are_strict() -> None:
    assert P.product("XYZ") is None
    assert P.root_of("xyz") == "XYZ" and P.symbol_of("XYZ") == "XYZ"
    assert not P.is_micro("XYZ")
    assert P.tick_value("XYZ") == P.UNKNOWN_TICK_VALUE >= max(p.tick_value for p in P.PRODUCTS)
    assert P.fee_per_side("XYZ") == P.DEFAULT_FEE


def test_tick_data_of_projectx_api() -> None:
    """§8.2's figures from the venue's docs."""
    for sym, size, value in (("ES", 0.25, 12.5), ("NQ", 0.25, 5.0), ("MNQ", 0.25, 0.5),
                             ("6E", 0.00005, 6.25), ("6B", 0.0001, 6.25), ("6A", 0.00005, 5.0),
                             ("6C", 0.00005, 5.0), ("QG", 0.005, 12.5), ("QM", 0.025, 12.5)):
        p = P.by_symbol(sym)
        assert p is not None and (p.tick_size, p.tick_value) == (size, value)


def test_cost_per_side_is_fee_plus_commission() -> None:
    mnq = P.by_symbol("MNQ")
    assert mnq is not None and mnq.fee == 0.37   # the live fill of projectx-api.md §6
    assert P.fee_per_side("MNQ") == mnq.fee + mnq.commission
