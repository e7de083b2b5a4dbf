"""Closing a position on an account that cannot cancel (pure).

The venue refuses `Order/cancel` on a live or follower account (errorCode 6). There a flatten
by market order would leave the position's stop-loss and take-profit working at the venue,
free to fill later and open a naked position (projectx-api.md note 9: closing a position does
not cancel its legs). So a position that has legs is closed *through* them: one leg of each
bracket is moved through the market with `Order/modify` (a stop to beyond the last price: it
fires at once; a take-profit with no stop beside it to a price through the quote: a marketable
limit) and sized to what it closes; the venue fills it, and its own OCO (Auto OCO brackets)
cancels the sibling. Only what no leg covers is closed by a market order.

Never more is fired or sent than the lots being closed (the flatten's targets are already
capped at the venue's net, `Blotter.closing_shares`), so a position is never reversed. Legs that
cannot be resolved this way are `left` and reported: a managed pair (two separate orders with
no OCO at the venue: firing one leaves the other), a trailing stop alone, or more brackets than
lots (a bracket fired for 0 lots is not a thing). The gateway so takes managed brackets on such
an account only as the venue's native OCO (`Blotter.bracket_refusal`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from trading.marks import QuoteView
from trading.orders.records import OrderRecord
from trading.venue_codes import OrderStatus, OrderType, Side

#: How far through the market a leg is moved, in ticks: enough that a price a little stale
#: (a venue mark is up to a bar old) still fires it; a stop's fill is a market fill whatever
#: its trigger, and a take-profit moved so is a limit that bounds the slippage to this.
FIRE_TICKS = 20


@dataclass(frozen=True)
class LegFire:
    """An `Order/modify` that closes `lots` lots through a leg: its new `size` (what it has
    filled plus the lots) and one price through the market."""

    order_id: int
    owner: str
    contract: str
    lots: int
    size: int
    field: str              # "stop_price" or "limit_price"
    price: float


@dataclass(frozen=True)
class LegClosePlan:
    fires: tuple[LegFire, ...]
    #: (owner, contract, signed qty) still to close by a market order (no leg covers it)
    market: tuple[tuple[str, str, int], ...]
    #: legs of the flatten's scope beyond the lots it closes: they stay working, protecting
    #: nothing (more brackets than lots, or on the position's own side), and cannot be withdrawn
    stranded: tuple[int, ...]
    #: what could not be closed, and why (its lots stay open, with their legs)
    problems: tuple[str, ...]


def _units(legs: Iterable[OrderRecord]) -> list[list[OrderRecord]]:
    """The legs of one entry together (a bracket: one OCO unit at the venue), oldest first."""
    by_parent: dict[int, list[OrderRecord]] = {}
    for r in legs:
        by_parent.setdefault(r.parent_id if r.parent_id is not None else -r.order_id,
                             []).append(r)
    return [sorted(u, key=lambda r: r.order_id) for _, u in sorted(by_parent.items())]


def fire_price(leg: OrderRecord, quote: QuoteView | None, tick: float) -> tuple[str, float] | None:
    """(field, price) that makes `leg` fill at once, or None (no price, or a type that cannot be
    moved so). A closing sell stop goes FIRE_TICKS above every price known (the venue fires a
    sell stop at a last price at or below it), a buy stop as far below; a closing sell limit
    goes as far under them (marketable at the bid), a buy limit over."""
    if quote is None or tick <= 0:
        return None
    known = [p for p in (quote.bid, quote.ask, quote.last) if p is not None]
    if not known:
        return None
    sell = leg.side == Side.SELL
    if leg.order_type == OrderType.STOP:
        field, px = "stop_price", (max(known) + FIRE_TICKS * tick if sell
                                   else min(known) - FIRE_TICKS * tick)
    elif leg.order_type == OrderType.LIMIT:
        field, px = "limit_price", (min(known) - FIRE_TICKS * tick if sell
                                    else max(known) + FIRE_TICKS * tick)
    else:
        return None
    steps = px / tick
    n = math.ceil(steps - 1e-9) if (field == "stop_price") == sell else math.floor(steps + 1e-9)
    return field, round(max(n, 1) * tick, 10)


def _pick(unit: list[OrderRecord], refused: Mapping[int, int]) -> OrderRecord | None:
    """The leg of a unit to fire: the one the venue refused to move the fewest times, the stop
    (a market fill) before the take-profit (a limit through the quote, an order every venue
    takes) among equals; so a refused stop gives way to its target, and a refusal that passes
    (the market shut for a while) never leaves a bracket that can no longer be fired."""
    legs = [r for r in unit if r.order_type in (OrderType.STOP, OrderType.LIMIT)]
    if not legs:
        return None
    return min(legs, key=lambda r: (refused.get(r.order_id, 0), r.order_type != OrderType.STOP))


def plan_close(targets: Iterable[tuple[str, str, int]], legs: Iterable[OrderRecord],
               native: Mapping[int, bool], quotes: Mapping[str, QuoteView],
               ticks: Mapping[str, float],
               refused: Mapping[int, int] | None = None) -> LegClosePlan:
    """How to close `targets` ((owner, contract, signed qty), `Blotter.closing_shares`) when
    no order can be cancelled. `legs`: the working protective orders in the flatten's scope;
    `native[entry id]`: that entry's legs are the venue's OCO bracket (False: the gateway's
    own managed pair); `quotes`/`ticks` by contract; `refused`: how often the venue refused
    to move a leg (`_pick`).

    Each owner's brackets close its share, oldest first; one larger than what is left is fired
    for what is left (it fills whole, and the venue cancels its sibling). Lots covered by a
    bracket that cannot be fired (a managed pair, no price, a trailing stop alone) are not
    closed at all: closing them by market would leave that bracket working on a flat position,
    so they stay open with their protection, and the reason is a problem. Only lots no leg
    covers go to market. Brackets beyond the lots are `stranded`."""
    pending = [r for r in legs if not r.terminal and r.remaining > 0]
    fires: list[LegFire] = []
    market: list[tuple[str, str, int]] = []
    problems: list[str] = []
    seen: set[int] = set()      # fired or kept with the lots they cover
    targets = list(targets)
    sharing = {(o, c) for o, c, _ in targets}
    for owner, contract, qty in targets:
        left = abs(qty)
        closing = Side.SELL if qty > 0 else Side.BUY
        mine = [r for r in pending if r.contract == contract and r.side == closing
                and r.order_id not in seen]
        # the owner's own brackets first, then those of no owner with a share here (placed on
        # the venue's platform, or left from a share already closed)
        for unit in _units(r for r in mine if r.owner == owner) + \
                _units(r for r in mine if (r.owner, contract) not in sharing):
            if left == 0:
                break
            cover = max(r.remaining for r in unit)
            leg = _pick(unit, refused or {})
            how = fire_price(leg, quotes.get(contract), ticks.get(contract, 0.0)) \
                if leg is not None else None
            if len(unit) > 1 and not native.get(unit[0].parent_id or 0, False):
                why = "a managed pair has no OCO at the venue: firing one leaves the other"
            elif any(r.status == OrderStatus.SUSPENDED for r in unit):
                why = "its entry has not filled yet (the venue moves no suspended leg)"
            elif leg is None:
                why = "no stop or limit leg to move through the market"
            elif how is None:
                why = "no price to move it through the market"
            else:
                why = None
            if why is not None or leg is None or how is None:
                seen.update(r.order_id for r in unit)
                stuck = min(left, cover)
                left -= stuck
                problems.append(f"{owner} {contract}: {stuck} lots kept open with their bracket "
                                f"(orders {', '.join(str(r.order_id) for r in unit)}): {why}")
                continue
            take = min(left, leg.remaining)
            fires.append(LegFire(leg.order_id, owner, contract, take, leg.fill_volume + take,
                                 *how))
            seen.update(r.order_id for r in unit)
            left -= take
        if left:
            market.append((owner, contract, left if qty > 0 else -left))
    stranded = tuple(sorted(r.order_id for r in pending if r.order_id not in seen))
    return LegClosePlan(tuple(fires), tuple(market), stranded, tuple(problems))


def cover(legs: Iterable[OrderRecord], contract: str, side: int) -> int:
    """The lots the working legs of `side` on `contract` would close: each bracket counts its
    larger leg once (its two legs are alternatives)."""
    return sum(max(r.remaining for r in unit) for unit in _units(
        r for r in legs if r.contract == contract and r.side == side and not r.terminal
        and r.remaining > 0))
