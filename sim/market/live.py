"""The live market: walks the tape forward with the clock and keeps what a venue shows.

`step(now)` takes every print since the last step (from the tape, so exactly the prints history
will aggregate), updates each contract's last price, best bid/ask, session open/high/low/volume
and change, and returns per contract what happened, already in the hub's payload shapes. It is
pure given the clock value, so unit tests drive it with plain integers.

Quotes: after a buy print the ask is at the print and the bid one tick below; after a sell the
bid is at the print. Depth: ten levels a side around that touch, sizes drawn from a seeded
generator (the book is not part of the one-record promise, only prints are); on subscribe a
Reset (type 6, price 0), then a snapshot (session volume at each traded price as type 5, the
levels as Ask 1 / Bid 2, the touch as BestAsk 3 / BestBid 4, session Low 7 / High 8), then small
updates. Session volume at price covers the prints the sim streamed since it started.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from chillly.calendar import is_market_open, session_open_ms, trading_date
from chillly.clock import ms_to_iso

from sim.market.contracts import Catalogue, SimContract, spec_of
from sim.market.history import History
from sim.market.tape import Print, Tape
from trading.venue_codes import DomType, TradeLogType

LEVELS = 10

DOM_ASK, DOM_BID, DOM_BEST_ASK, DOM_BEST_BID, DOM_TRADE, DOM_RESET, DOM_LOW, DOM_HIGH = (
    DomType.ASK, DomType.BID, DomType.BEST_ASK, DomType.BEST_BID, DomType.TRADE, DomType.RESET,
    DomType.LOW, DomType.HIGH)


def session_bounds(t_ms: int) -> tuple[int, int]:
    day = trading_date(t_ms)
    return session_open_ms(day), session_open_ms(day + timedelta(days=1))


@dataclass
class LiveState:
    contract: SimContract
    last: int | None = None
    last_side: int = TradeLogType.BUY     # the last print's aggressor
    last_t: int = 0
    bid: int | None = None
    ask: int | None = None
    session_start: int = 0
    session_end: int = 0
    s_open: int | None = None
    s_high: int | None = None
    s_low: int | None = None
    s_volume: int = 0
    prev_close: int | None = None
    vap: dict[int, int] = field(default_factory=dict)
    book: dict[int, int] = field(default_factory=dict)   # price ticks -> resting size


@dataclass
class Update:
    """What one step produced for one contract (payloads in the market hub's shapes)."""

    contract_id: str
    prints: list[Print]
    trades: list[dict[str, Any]]
    quote: dict[str, Any] | None
    depth: list[dict[str, Any]]


class Market:
    """Live state of every listed contract; the engine's MarketView."""

    def __init__(self, clock: Any, catalogue: Catalogue, tape: Tape, history: History,
                 always_open: bool, seed: int = 0) -> None:
        self.clock = clock
        self.catalogue = catalogue
        self.tape = tape
        self.history = history
        self.always_open = always_open
        self.states: dict[str, LiveState] = {}
        self.cursor_ms: int | None = None
        self._rng = random.Random(seed ^ 0xD0E)

    # ---- MarketView (the seam with the trading engine) --------------------------------------
    def _state(self, contract_id: str) -> LiveState | None:
        st = self.states.get(contract_id)
        if st is None:
            contract = self.catalogue.get(contract_id)
            if contract is None:
                return None
            st = self._init_state(contract, self.cursor_ms or self.clock.now_ms())
        return st

    def last_price(self, contract_id: str) -> float | None:
        st = self._state(contract_id)
        return None if st is None or st.last is None else self.tape.to_price(contract_id, st.last)

    def best_bid(self, contract_id: str) -> float | None:
        st = self._state(contract_id)
        return None if st is None or st.bid is None else self.tape.to_price(contract_id, st.bid)

    def best_ask(self, contract_id: str) -> float | None:
        st = self._state(contract_id)
        return None if st is None or st.ask is None else self.tape.to_price(contract_id, st.ask)

    def is_open(self, now_ms: int) -> bool:
        return self.always_open or is_market_open(now_ms)

    # ---- state ------------------------------------------------------------------------------
    def _init_state(self, contract: SimContract, now: int) -> LiveState:
        cid = contract.id
        st = LiveState(contract)
        last = self.tape.last_print_before(cid, now)
        if last is not None:
            st.last, st.last_side, st.last_t = last[1], last[3], last[0]
            st.session_start, st.session_end = session_bounds(last[0])
            agg = self.history.minutes_agg(cid, st.session_start, now + 1, now)
            if agg is not None:
                st.s_open, st.s_high, st.s_low, st.s_volume = agg[1], agg[2], agg[3], agg[5]
            prev = self.tape.last_print_before(cid, st.session_start - 1)
            st.prev_close = None if prev is None else prev[1]
            self._touch(st)
        self.states[cid] = st
        return st

    def _touch(self, st: LiveState) -> None:
        """Best bid/ask follow the last print's aggressor; the book is rebuilt around them."""
        if st.last is None:
            return
        if st.last_side == TradeLogType.BUY:
            st.ask, st.bid = st.last, st.last - 1
        else:
            st.bid, st.ask = st.last, st.last + 1
        book = {}
        for i in range(LEVELS):
            book[st.bid - i] = st.book.get(st.bid - i) or self._size(st, i)
            book[st.ask + i] = st.book.get(st.ask + i) or self._size(st, i)
        st.book = book

    def _size(self, st: LiveState, depth: int) -> int:
        base = max(2, int(spec_of(st.contract).size_mean * 6))
        return 1 + int(self._rng.random() * base * (1 + depth * 0.4))

    def start(self, now: int) -> None:
        """Initialise every listed contract at `now` (history up to now is already 'streamed')."""
        self.cursor_ms = now
        for c in self.catalogue.all():
            if c.id not in self.states:
                self._init_state(c, now)

    def step(self, now: int) -> list[Update]:
        """Advance to `now`: every print in (cursor, now] of every listed contract, in order."""
        if self.cursor_ms is None:
            self.start(now)
            return []
        after = self.cursor_ms
        if now <= after:
            return []
        self.cursor_ms = now
        out = []
        for c in self.catalogue.all():
            st = self.states.get(c.id) or self._init_state(c, after)
            prints = self.tape.prints_between(c.id, after, now)
            if not prints:
                continue
            out.append(self._apply(st, prints, now))
        return out

    def _apply(self, st: LiveState, prints: list[Print], now: int) -> Update:
        cid = st.contract.id
        old_bid, old_ask = st.bid, st.ask
        old_low, old_high = st.s_low, st.s_high
        traded: dict[int, int] = {}
        for t, p, size, side in prints:
            if t >= st.session_end:  # the first print of a new session (or of all)
                if st.session_end:
                    st.prev_close = st.last
                st.session_start, st.session_end = session_bounds(t)
                st.s_open = st.s_high = st.s_low = None
                st.s_volume = 0
                st.vap = {}
                old_low = old_high = None
            if st.s_open is None:
                st.s_open = st.s_high = st.s_low = p
            else:
                if p > st.s_high:  # type: ignore[operator]
                    st.s_high = p
                if p < st.s_low:  # type: ignore[operator]
                    st.s_low = p
            st.s_volume += size
            st.vap[p] = st.vap.get(p, 0) + size
            traded[p] = traded.get(p, 0) + size
            st.last, st.last_side, st.last_t = p, side, t
        self._touch(st)
        trades = [self.trade_entry(cid, pr) for pr in prints]
        depth: list[dict[str, Any]] = []
        ts = ms_to_iso(st.last_t)
        for p, vol in traded.items():
            depth.append(self._dom(cid, DOM_TRADE, p, st.vap.get(p, vol), vol, ts))
        if st.bid != old_bid or st.ask != old_ask:
            depth.append(self._dom(cid, DOM_BEST_BID, st.bid, st.book[st.bid],  # type: ignore[index]
                                   st.book[st.bid], ts))  # type: ignore[index]
            depth.append(self._dom(cid, DOM_BEST_ASK, st.ask, st.book[st.ask],  # type: ignore[index]
                                   st.book[st.ask], ts))  # type: ignore[index]
        for i in (1, 2):
            for kind, p in ((DOM_BID, st.bid - i), (DOM_ASK, st.ask + i)):  # type: ignore[operator]
                size = max(1, st.book[p] + self._rng.choice((-2, -1, 1, 2)))
                st.book[p] = size
                depth.append(self._dom(cid, kind, p, size, size, ts))
        if st.s_low != old_low and st.s_low is not None:
            depth.append(self._dom(cid, DOM_LOW, st.s_low, st.vap.get(st.s_low, 0), 0, ts))
        if st.s_high != old_high and st.s_high is not None:
            depth.append(self._dom(cid, DOM_HIGH, st.s_high, st.vap.get(st.s_high, 0), 0, ts))
        return Update(cid, prints, trades, self.quote(cid, now), depth)

    # ---- payloads ---------------------------------------------------------------------------
    def price(self, cid: str, ticks: int | None) -> float | None:
        return None if ticks is None else self.tape.to_price(cid, ticks)

    def trade_entry(self, cid: str, pr: Print) -> dict[str, Any]:
        st = self.states[cid]
        return {"symbolId": st.contract.symbol_id, "price": self.tape.to_price(cid, pr[1]),
                "timestamp": ms_to_iso(pr[0]), "type": pr[3], "volume": pr[2]}

    def quote(self, cid: str, now: int) -> dict[str, Any] | None:
        """The GatewayQuote payload (no bid/ask sizes: the venue sends none)."""
        st = self._state(cid)
        if st is None or st.last is None:
            return None
        q: dict[str, Any] = {
            "symbol": st.contract.symbol_id, "symbolName": "/" + st.contract.symbol,
            "lastPrice": self.price(cid, st.last), "bestBid": self.price(cid, st.bid),
            "bestAsk": self.price(cid, st.ask),
            "open": self.price(cid, st.s_open), "high": self.price(cid, st.s_high),
            "low": self.price(cid, st.s_low), "volume": st.s_volume,
            "lastUpdated": ms_to_iso(now), "timestamp": ms_to_iso(st.last_t),
        }
        if st.prev_close is not None:
            change = self.tape.to_price(cid, st.last - st.prev_close)
            q["change"] = change
            q["changePercent"] = round((st.last - st.prev_close) / st.prev_close, 4)
        return {k: v for k, v in q.items() if v is not None}

    def _dom(self, cid: str, kind: int, ticks: int | None, volume: int, current: int,
             ts: str) -> dict[str, Any]:
        return {"timestamp": ts, "type": kind,
                "price": 0 if ticks is None else self.tape.to_price(cid, ticks),
                "volume": volume, "currentVolume": current}

    def depth_snapshot(self, cid: str, now: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(reset, snapshot) sent to a new depth subscriber."""
        ts = ms_to_iso(now)
        reset = [self._dom(cid, DOM_RESET, None, 0, 0, ts)]
        st = self._state(cid)
        if st is None or st.last is None:
            return reset, []
        snap = [self._dom(cid, DOM_TRADE, p, v, 0, ts) for p, v in sorted(st.vap.items())]
        for p, size in sorted(st.book.items()):
            snap.append(self._dom(cid, DOM_BID if p <= st.bid else DOM_ASK, p, size, size, ts))  # type: ignore[operator]
        snap.append(self._dom(cid, DOM_BEST_BID, st.bid, st.book[st.bid], st.book[st.bid], ts))  # type: ignore[index]
        snap.append(self._dom(cid, DOM_BEST_ASK, st.ask, st.book[st.ask], st.book[st.ask], ts))  # type: ignore[index]
        if st.s_low is not None:
            snap.append(self._dom(cid, DOM_LOW, st.s_low, st.vap.get(st.s_low, 0), 0, ts))
        if st.s_high is not None:
            snap.append(self._dom(cid, DOM_HIGH, st.s_high, st.vap.get(st.s_high, 0), 0, ts))
        return reset, snap
