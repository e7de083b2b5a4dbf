"""Positions and P&L: fed by the venue's positions, trades and the bus's quotes (pure).

- The account's net position per contract is the venue's (Position rows / hub events): the venue
  is authoritative, so the gateway never derives it from fills.
- Realized P&L of the trading day is the venue's: the sum of `profitAndLoss` of today's non-voided
  half-trades minus their fees (projectx-api.md §8.11), per contract and for the account.
- Each owner's share (a strategy's position) is attributed from the fills of the owner's own
  orders, with an average price and realized P&L computed the venue's way
  ((price - avg) / tick_size * tick_value * size, sign flipped for shorts, less fees).
- Open P&L is marked from the newest price known: the bus's last quote, or the venue's forming
  1m bar when the quotes stopped (trading/marks.py); longs at the bid, shorts at the ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from trading.risk.types import BUY, FLAT, LONG, SELL, SHORT, PositionView, QuoteView
from trading.marks import newest

ACCOUNT = "_account"


@dataclass
class Spec:
    """What a contract's P&L needs: its tick and the dollars a tick is worth per lot."""

    tick_size: float
    tick_value: float
    symbol: str = ""


@dataclass
class Net:
    """A signed quantity with its average price and realized P&L (fees deducted)."""

    qty: int = 0
    avg: float | None = None
    realized: float = 0.0
    vt: int | None = None

    @property
    def side(self) -> int:
        return LONG if self.qty > 0 else SHORT if self.qty < 0 else FLAT


def mark(qty: int, avg: float | None, quote: QuoteView | None, spec: Spec | None) -> float:
    """Open P&L of a signed position: longs at the bid, shorts at the ask; 0 without a price."""
    if qty == 0 or avg is None or quote is None or spec is None or not spec.tick_size:
        return 0.0
    px = quote.bid if qty > 0 else quote.ask
    if px is None:
        px = quote.last
    if px is None:
        return 0.0
    return round((px - avg) / spec.tick_size * spec.tick_value * qty, 2)


@dataclass
class Book:
    """The account's positions: the venue's net per contract, each owner's share, today's
    realized P&L, and the newest price of every contract."""

    account_id: int
    account_name: str = ""
    balance: float = 0.0
    can_trade: bool = True
    #: the venue withdraws this account's orders (Order/cancel): False on a live account
    #: (`simulated` false) or a follower, which the venue refuses (errorCode 6)
    can_cancel: bool = True
    specs: dict[str, Spec] = field(default_factory=dict)
    venue: dict[str, Net] = field(default_factory=dict)              # contract -> account net
    owners: dict[tuple[str, str], Net] = field(default_factory=dict)  # (owner, contract) -> share
    realized_by_contract: dict[str, float] = field(default_factory=dict)
    quotes: dict[str, QuoteView] = field(default_factory=dict)
    #: marks from the venue's forming 1m bar, taken while a held contract's quotes are stale
    venue_marks: dict[str, QuoteView] = field(default_factory=dict)
    #: start (ms) of the trading day the realized figures belong to (None: not known yet)
    day_ms: int | None = None

    def roll(self, day_start_ms: int) -> bool:
        """A new trading day (17:00 CT): realized P&L, the account's and every owner's, starts
        again from zero; positions and their averages carry over. True if it rolled."""
        if self.day_ms is not None and day_start_ms <= self.day_ms:
            return False
        rolled = self.day_ms is not None
        self.day_ms = day_start_ms
        if rolled:
            self.realized_by_contract.clear()
            for share in self.owners.values():
                share.realized = 0.0
        return rolled

    # ------------------------------------------------------------------ venue input

    def set_venue_position(self, contract: str, side: int, size: int, avg: float | None,
                           vt: int | None = None) -> bool:
        """The venue's row for a contract (side 0 / size 0 = flat). True if it changed."""
        qty = size if side == LONG else -size if side == SHORT else 0
        cur = self.venue.get(contract)
        new_avg = avg if qty else None
        if cur is not None and cur.qty == qty and cur.avg == new_avg:
            return False
        net = self.venue.setdefault(contract, Net())
        net.qty, net.avg, net.vt = qty, new_avg, vt
        return True

    def add_trade(self, contract: str, owner: str, side: int, size: int, price: float,
                  fees: float, pnl: float | None, voided: bool = False) -> float | None:
        """One venue half-trade of today: realized P&L per contract, and the owner's share.
        Returns the owner's P&L of this trade against the owner's own average (fees apart;
        None when it opens or adds): the venue's `pnl` is against the account's average, which
        mixes every owner's entries."""
        if voided:
            return None
        self.realized_by_contract[contract] = round(
            self.realized_by_contract.get(contract, 0.0) + (pnl or 0.0) - fees, 2)
        return self.attribute(contract, owner, side, size, price, fees)

    def reattribute(self, contract: str, was: str, owner: str, side: int, size: int,
                    price: float, fees: float) -> float | None:
        """A trade booked to `was` (its order was unknown then) moves to its real owner: the
        account's figures do not change, the shares do."""
        back = SELL if side == BUY else BUY
        self.attribute(contract, was, back, size, price, -fees)
        return self.attribute(contract, owner, side, size, price, fees)

    def attribute(self, contract: str, owner: str, side: int, size: int, price: float,
                  fees: float) -> float | None:
        """One trade in an owner's share (see `add_trade`)."""
        own: float | None = None
        spec = self.specs.get(contract)
        share = self.owners.setdefault((owner, contract), Net())
        signed = size if side == BUY else -size
        if share.qty == 0 or (share.qty > 0) == (signed > 0):  # open or add
            total = share.qty + signed
            share.avg = price if share.qty == 0 else (
                (share.avg or price) * abs(share.qty) + price * size) / abs(total)
            share.qty = total
        else:  # reduce, close or reverse
            closed = min(abs(signed), abs(share.qty))
            if spec is not None and spec.tick_size and share.avg is not None:
                direction = 1 if share.qty > 0 else -1
                own = round((price - share.avg) / spec.tick_size * spec.tick_value * closed
                            * direction, 2)
                share.realized += own
            rest = abs(signed) - closed
            share.qty += closed if signed > 0 else -closed
            if share.qty == 0:
                share.avg = None
            if rest:
                share.qty = rest if signed > 0 else -rest
                share.avg = price
        share.realized = round(share.realized - fees, 2)
        return own

    def set_quote(self, quote: QuoteView) -> None:
        self.quotes[quote.contract] = quote

    def set_venue_mark(self, mark: QuoteView) -> None:
        self.venue_marks[mark.contract] = mark

    def mark_of(self, contract: str) -> QuoteView | None:
        """The newest price of a contract: its quote or its venue mark, whichever is later."""
        return newest(self.quotes.get(contract), self.venue_marks.get(contract))

    def marks(self) -> dict[str, QuoteView]:
        """The newest price of every contract priced so far (what the risk gate marks with)."""
        out: dict[str, QuoteView] = {}
        for c in self.quotes.keys() | self.venue_marks.keys():
            m = self.mark_of(c)
            if m is not None:
                out[c] = m
        return out

    # ------------------------------------------------------------------ figures

    def realized(self) -> float:
        return round(sum(self.realized_by_contract.values()), 2)

    def open_pnl(self) -> float:
        return round(sum(mark(n.qty, n.avg, self.mark_of(c), self.specs.get(c))
                         for c, n in self.venue.items()), 2)

    def held(self) -> set[str]:
        return {c for c, n in self.venue.items() if n.qty}

    def view(self, contract: str, owner: str = ACCOUNT) -> PositionView:
        net = self.venue.get(contract, Net()) if owner == ACCOUNT \
            else self.owners.get((owner, contract), Net())
        spec = self.specs.get(contract)
        realized = self.realized_by_contract.get(contract, 0.0) if owner == ACCOUNT \
            else net.realized
        return PositionView(
            contract=contract, owner=owner, side=net.side, size=abs(net.qty), avg_price=net.avg,
            realized_pnl=realized, open_pnl=mark(net.qty, net.avg, self.mark_of(contract), spec),
            symbol=spec.symbol if spec else "", tick_size=spec.tick_size if spec else 0.0,
            tick_value=spec.tick_value if spec else 0.0)

    def positions(self, owner: str | None = None) -> list[PositionView]:
        """Account positions (owner "_account"), owners' shares, or one owner's."""
        out: list[PositionView] = []
        contracts = set(self.venue) | set(self.realized_by_contract)
        if owner in (None, ACCOUNT):
            out += [self.view(c) for c in sorted(contracts)]
        for (o, c) in sorted(self.owners):
            if owner is None and o != ACCOUNT or owner == o:
                out.append(self.view(c, o))
        return out

    def closing_shares(self, contract: str | None, owner: str | None = None
                       ) -> list[tuple[str, str, int]]:
        """What a flatten closes, as (owner, contract, signed qty): one order per owner's share,
        so every fill stays attributed, plus a "manual" one for whatever the venue holds beyond
        the shares. With `owner`: only that owner's shares. `contract` None: every contract."""
        targets: list[tuple[str, str, int]] = []
        contracts = {c for (o, c), n in self.owners.items() if n.qty} | self.held()
        for c in sorted(contracts):
            if contract is not None and c != contract:
                continue
            shares = {o: n.qty for (o, cc), n in self.owners.items() if cc == c and n.qty}
            if owner is not None:
                if shares.get(owner):
                    targets.append((owner, c, shares[owner]))
                continue
            net = self.venue.get(c)
            residual = (net.qty if net else 0) - sum(shares.values())
            if residual:
                shares["manual"] = shares.get("manual", 0) + residual
            targets += [(o, c, q) for o, q in sorted(shares.items()) if q]
        return targets
