"""Order validation: what Order/place and Order/modify accept, with the venue's messages. Pure.

Each check raises `TradingError` with the endpoint's errorCode and the message the live venue
gives where it is known (projectx-api.md §3, §8). The engine calls these before it changes any
state, so a rejected request changes nothing but the rejected order's own record.
"""

from __future__ import annotations

from typing import Any

from sim.exchange.accounts import Account
from sim.market.contracts import SimContract
from sim.exchange.wire import (
    BUY,
    JOIN_ASK,
    JOIN_BID,
    LIMIT,
    MARKET,
    SELL,
    STOP,
    STOP_LIMIT,
    TRAILING_STOP,
    TYPE_NAMES,
    Order,
    PlaceRequest,
    TradingError,
)
from trading.matching.prints import LIMIT_LIKE, MarketView, Prices, is_tick_aligned, round_to_tick
from trading.venue_codes import OrderType

MIN_BRACKET_TICKS = 4
MAX_TICKS = 1000


def validate_place(account: Account, contract: SimContract | None, req: PlaceRequest, now: int,
                   market: MarketView, prices: Prices, used_tags: set[str]) -> dict[str, float]:
    """The entry's prices ("limit", "stop", "trail_ticks", "anchor"), or TradingError."""
    if not account.can_trade or not account.active:
        raise TradingError(4, "Account is not allowed to trade.")
    if contract is None:
        raise TradingError(8, f"Contract {req.contract_id!r} was not found.")
    if not contract.active:
        raise TradingError(9, f"Contract {contract.id} is not the active contract.")
    if not market.is_open(now):
        raise TradingError(5, "Outside of trading hours.")
    for name, value in (("type", req.type), ("side", req.side), ("size", req.size)):
        if value is None:
            raise TradingError(2, f"The {name} field is required.")
    assert req.type is not None and req.side is not None and req.size is not None
    if req.type not in TYPE_NAMES or req.type == OrderType.UNKNOWN:
        raise TradingError(2, f"Invalid order type ({req.type}).")
    if req.side not in (BUY, SELL):
        raise TradingError(2, f"Invalid order side ({req.side}).")
    if req.size < 1:
        raise TradingError(2, f"Invalid order size ({req.size}).")
    if req.custom_tag is not None:
        check_tag(used_tags, req)
    check_brackets(account, req)
    return entry_prices(contract, req, market, prices)


def check_tag(used: set[str], req: PlaceRequest) -> None:
    tag = req.custom_tag or ""
    wanted = [tag]
    if req.stop_loss is not None:
        wanted.append(f"{tag}-SL")
    if req.take_profit is not None:
        wanted.append(f"{tag}-TP")
    for t in wanted:
        if t in used:
            raise TradingError(2, f"Custom tag '{t}' is already in use on this account. "
                                  "Custom tags must be unique across the account.")


def check_brackets(account: Account, req: PlaceRequest) -> None:
    if req.stop_loss is None and req.take_profit is None:
        return
    if account.bracket_mode != "auto_oco":
        raise TradingError(2, "Brackets cannot be used with Position Brackets. "
                              "You must enable Auto OCO Brackets.")
    longing = req.side == BUY
    for br, what, want_type, want_negative in (
            (req.stop_loss, "stop loss", STOP, longing),
            (req.take_profit, "take profit", LIMIT, not longing)):
        if br is None:
            continue
        if br.type != want_type:
            raise TradingError(2, f"Invalid {what} type ({TYPE_NAMES.get(br.type, br.type)})")
        if want_negative and br.ticks >= 0:
            raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks should be less "
                                  f"than zero when {'longing' if longing else 'shorting'}.")
        if not want_negative and br.ticks <= 0:
            raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks should be "
                                  "greater than zero when "
                                  f"{'longing' if longing else 'shorting'}.")
        if abs(br.ticks) < MIN_BRACKET_TICKS:
            raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Price should be at "
                                  f"least {MIN_BRACKET_TICKS} ticks away.")
        if abs(br.ticks) > MAX_TICKS:
            raise TradingError(2, f"Invalid {what} ticks ({br.ticks}). Ticks exceed "
                                  f"maximum ({MAX_TICKS}).")


def entry_prices(contract: SimContract, req: PlaceRequest, market: MarketView,
                 prices: Prices) -> dict[str, float]:
    tick = contract.tick_size
    last = prices.last_price(contract.id)
    t = req.type
    side = SELL if req.side == SELL else BUY   # validated before
    out: dict[str, float] = {}
    if t in (LIMIT, STOP_LIMIT):
        if req.limit_price is None:
            raise TradingError(2, "Limit price not set.")
        if not is_tick_aligned(req.limit_price, tick):
            raise TradingError(2, "Invalid limit price. Price is not aligned to tick size.")
        out["limit"] = round_to_tick(req.limit_price, tick)
    if t in (STOP, STOP_LIMIT):
        if req.stop_price is None:
            raise TradingError(2, "Stop price not set.")
        if not is_tick_aligned(req.stop_price, tick):
            raise TradingError(2, "Invalid stop price. Price is not aligned to tick size.")
        stop = round_to_tick(req.stop_price, tick)
        if last is not None and side == BUY and stop <= last:
            raise TradingError(2, f"Invalid stop price ({stop}). A buy stop must be above "
                                  f"the last price ({last}).")
        if last is not None and side == SELL and stop >= last:
            raise TradingError(2, f"Invalid stop price ({stop}). A sell stop must be below "
                                  f"the last price ({last}).")
        out["stop"] = stop
    if t == TRAILING_STOP:
        if req.trail_price is None:
            raise TradingError(2, "Trail Distance not set.")
        if last is None:
            raise TradingError(2, "Cannot trail without a last price")
        if not is_tick_aligned(req.trail_price, tick):
            raise TradingError(2, "Invalid trail price. Price is not aligned to tick size.")
        ticks = int(abs(last - req.trail_price) / tick + 1e-9)
        if ticks < 1:
            raise TradingError(2, "Trail Distance not set.")
        if ticks > MAX_TICKS:
            raise TradingError(2, f"Trail Distance exceeds maximum ({MAX_TICKS})")
        out["trail_ticks"] = ticks
        out["anchor"] = last
        dist = ticks * tick
        out["stop"] = round_to_tick(last - dist if side == SELL else last + dist, tick)
    if t in (JOIN_BID, JOIN_ASK):
        ref = market.best_bid(contract.id) if t == JOIN_BID else market.best_ask(contract.id)
        ref = ref if ref is not None else last
        if ref is None:
            raise TradingError(2, f"Cannot join the {'bid' if t == JOIN_BID else 'ask'} "
                                  "without a price")
        out["limit"] = round_to_tick(ref, tick)
    if t == MARKET and prices.market_price(contract, side) is None:
        raise TradingError(2, "Cannot place a market order without a price")
    return out


def modify_changes(order: Order, prices: Prices, size: int | None, limit_price: float | None,
                   stop_price: float | None, trail_price: float | None) -> dict[str, Any]:
    """The field changes an Order/modify makes to a working order, or TradingError."""
    contract = order.contract
    assert contract is not None
    tick = contract.tick_size
    if size is not None and size < 1:
        raise TradingError(3, f"Invalid order size ({size}).")
    changes: dict[str, Any] = {}
    if limit_price is not None:
        if order.type not in LIMIT_LIKE and order.type != STOP_LIMIT:
            raise TradingError(3, f"A {TYPE_NAMES[order.type]} order has no limit price.")
        if not is_tick_aligned(limit_price, tick):
            raise TradingError(3, "Invalid limit price. Price is not aligned to tick size.")
        changes["limit_price"] = round_to_tick(limit_price, tick)
    if stop_price is not None:
        if order.type not in (STOP, STOP_LIMIT):
            raise TradingError(3, f"A {TYPE_NAMES[order.type]} order has no stop price "
                                  "to modify (a trailing stop moves with trailPrice).")
        if not is_tick_aligned(stop_price, tick):
            raise TradingError(3, "Invalid stop price. Price is not aligned to tick size.")
        changes["stop_price"] = round_to_tick(stop_price, tick)
    if trail_price is not None:
        if order.type != TRAILING_STOP:
            raise TradingError(3, f"A {TYPE_NAMES[order.type]} order does not trail.")
        last = prices.last_price(contract.id)
        if last is None:
            raise TradingError(3, "Cannot trail without a last price")
        if not is_tick_aligned(trail_price, tick):
            raise TradingError(3, "Invalid trail price. Price is not aligned to tick size.")
        ticks = int(abs(last - trail_price) / tick + 1e-9)
        if ticks < 1:
            raise TradingError(3, "Trail Distance not set.")
        dist = ticks * tick
        changes.update(trail_ticks=ticks, trail_distance=ticks,
                       trail_price=round_to_tick(dist, tick), anchor=last,
                       stop_price=round_to_tick(last - dist if order.side == SELL
                                                else last + dist, tick))
    if size is not None:
        changes["size"] = size
    return changes
