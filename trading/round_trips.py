"""Round trips and per-strategy performance from the gateway's fills (`chillly trades`,
`chillly report`): pure, the journal's rows are passed in.

A round trip is one owner's position in one contract from flat back to flat: every fill that
opens or adds to it is its entry, every fill that reduces it its exit; a fill that crosses
flat closes the trip with part of its size and opens the next with the rest (its costs split
by size). P&L is the owner's own, from its fill prices and the product's point value, not the
venue's account-wide `profitAndLoss` (two owners in one contract share one venue position).
Costs are what the venue charged on each fill, fees and commissions (the journal's `fees`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from chillly.calendar import trading_date
from trading import products
from trading.venue_codes import Side


@dataclass(frozen=True, slots=True)
class Fill:
    """One venue trade (half-turn) of the journal."""

    owner: str
    contract: str
    side: Side
    size: int
    price: float
    cost: float          # fees + commissions of this fill, dollars
    at_ms: int
    account: int = 0


@dataclass(slots=True)
class RoundTrip:
    """One owner's position in one contract, from flat to flat."""

    owner: str
    contract: str
    account: int
    direction: Side          # BUY: long, SELL: short
    entry_ms: int
    exit_ms: int = 0
    size: int = 0            # contracts entered (= exited once closed)
    entry_value: float = 0.0  # sum of price * size over the entry fills
    exit_value: float = 0.0
    exited: int = 0
    costs: float = 0.0
    fills: int = 0
    open_size: int = field(default=0, repr=False)

    @property
    def closed(self) -> bool:
        return self.size > 0 and self.open_size == 0

    @property
    def entry_price(self) -> float:
        return self.entry_value / self.size if self.size else 0.0

    @property
    def exit_price(self) -> float:
        return self.exit_value / self.exited if self.exited else 0.0

    @property
    def gross(self) -> float:
        """Dollars made before costs on what has been exited."""
        p = products.product(products.contract_root(self.contract))
        point = p.tick_value / p.tick_size if p is not None else 0.0
        sign = 1.0 if self.direction is Side.BUY else -1.0
        return round(sign * (self.exit_value - self.entry_price * self.exited) * point, 2)

    @property
    def net(self) -> float:
        return round(self.gross - self.costs, 2)

    @property
    def duration_s(self) -> float:
        return max(0, self.exit_ms - self.entry_ms) / 1000.0

    @property
    def day(self) -> date:
        """The CME trading date the trip closed on (a session opens 17:00 CT the day before)."""
        return trading_date(self.exit_ms)

    def as_dict(self) -> dict[str, object]:
        return {"owner": self.owner, "account": self.account, "contract": self.contract,
                "side": "long" if self.direction is Side.BUY else "short", "size": self.size,
                "entry_ms": self.entry_ms, "entry_price": round(self.entry_price, 6),
                "exit_ms": self.exit_ms, "exit_price": round(self.exit_price, 6),
                "gross": self.gross, "costs": round(self.costs, 2), "net": self.net,
                "duration_s": self.duration_s, "fills": self.fills,
                "day": self.day.isoformat()}


def round_trips(fills: Iterable[Fill]) -> tuple[list[RoundTrip], list[RoundTrip]]:
    """(closed trips in the order they closed, trips still open), from fills in any order."""
    done: list[RoundTrip] = []
    open_: dict[tuple[int, str, str], RoundTrip] = {}
    for f in sorted(fills, key=lambda f: f.at_ms):
        key = (f.account, f.owner, f.contract)
        left, per_contract = f.size, f.cost / f.size if f.size else 0.0
        while left > 0:
            trip = open_.get(key)
            if trip is None:
                trip = open_[key] = RoundTrip(f.owner, f.contract, f.account, f.side, f.at_ms)
            trip.fills += 1
            if f.side is trip.direction:          # opens or adds
                trip.size += left
                trip.open_size += left
                trip.entry_value += f.price * left
                trip.costs += per_contract * left
                left = 0
                continue
            qty = min(left, trip.open_size)        # reduces; the rest opens the other way
            trip.open_size -= qty
            trip.exited += qty
            trip.exit_value += f.price * qty
            trip.costs += per_contract * qty
            trip.exit_ms = f.at_ms
            left -= qty
            if trip.open_size == 0:
                done.append(open_.pop(key))
    return done, list(open_.values())


@dataclass(frozen=True, slots=True)
class Performance:
    """One owner's closed trips summed up."""

    owner: str
    trips: int
    net: float
    gross: float
    costs: float
    wins: int
    win_rate: float | None          # share of trips with net > 0
    profit_factor: float | None     # gross winnings / gross losses (net); None: no losing trip
    max_drawdown: float             # largest fall of cumulative net P&L from a peak (>= 0)
    by_day: dict[str, float]

    def as_dict(self) -> dict[str, object]:
        return {"owner": self.owner, "trips": self.trips, "net": self.net, "gross": self.gross,
                "costs": self.costs, "wins": self.wins, "win_rate": self.win_rate,
                "profit_factor": self.profit_factor, "max_drawdown": self.max_drawdown,
                "by_day": self.by_day}


def performance(owner: str, trips: list[RoundTrip]) -> Performance:
    """Net P&L, win rate, profit factor, max drawdown and per-day P&L of `trips` (closed, in
    the order they closed)."""
    nets = [t.net for t in trips]
    won = sum(n for n in nets if n > 0)
    lost = -sum(n for n in nets if n < 0)
    peak = equity = drawdown = 0.0
    by_day: dict[str, float] = {}
    for t in trips:
        equity += t.net
        peak = max(peak, equity)
        drawdown = max(drawdown, peak - equity)
        day = t.day.isoformat()
        by_day[day] = round(by_day.get(day, 0.0) + t.net, 2)
    wins = sum(1 for n in nets if n > 0)
    return Performance(
        owner=owner, trips=len(trips), net=round(sum(nets), 2),
        gross=round(sum(t.gross for t in trips), 2), costs=round(sum(t.costs for t in trips), 2),
        wins=wins, win_rate=round(wins / len(trips), 4) if trips else None,
        profit_factor=round(won / lost, 4) if lost > 0 else None,
        max_drawdown=round(drawdown, 2), by_day=by_day)
