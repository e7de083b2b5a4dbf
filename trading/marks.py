"""Marks for held contracts: the bus's quotes first, the venue's forming 1m bar when they stop.

The risk gate's equity, MLL and daily-loss figures are only as good as the price it marks open
positions with. The quotes (`quote.<contract>.`, from feed-market) are the primary mark; when a
held contract's quote is missing or older than `RISK_MARK_MAX_AGE` (the feed crashed, the
contract was never subscribed, the hub dropped) the gateway polls the venue's forming 1m bar
(`History/retrieveBars`, includePartialBar) every `RISK_MARK_POLL_INTERVAL` and marks from its
close. A contract with neither a quote nor a venue mark younger than `RISK_MARK_MAX_AGE` is
*blind*: the gate refuses entries that add risk, the gateway raises alarm `blind`.

Pure functions of plain data (no I/O, time passed in), shared by the gate, the positions
code and the gateway's runner, so all read "fresh" and "blind" the same way.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class QuoteView:
    """The last price of one contract: a bus quote, or a venue mark made by `venue_mark`."""

    contract: str
    bid: float | None
    ask: float | None
    last: float | None
    t: int                   # when the gateway received it, epoch ms (market clock)


def venue_mark(contract: str, close: float, tick_size: float, now_ms: int) -> QuoteView:
    """A mark from the venue's last traded price, as a quote a tick either side of it: a long
    is marked at close - 1 tick and a short at close + 1 tick, never better than the venue's
    own bid/ask mark (the last trade prints at the bid or the ask; a liquid future's spread is
    one tick)."""
    tick = tick_size if tick_size > 0 else 0.0
    return QuoteView(contract, round(close - tick, 10), round(close + tick, 10), close, now_ms)


def newest(a: QuoteView | None, b: QuoteView | None) -> QuoteView | None:
    """The later of two marks (a bus quote and a venue mark): the one the gate uses."""
    if a is None:
        return b
    if b is None:
        return a
    return b if b.t > a.t else a


def fresh(q: QuoteView | None, now_ms: int, max_age_ms: int) -> bool:
    """A usable mark: it has a price and is at most `max_age_ms` old."""
    return q is not None and (q.bid is not None or q.ask is not None or q.last is not None) \
        and now_ms - q.t <= max_age_ms


def blind(held: Iterable[str], marks: Mapping[str, QuoteView], now_ms: int,
          max_age_ms: int) -> dict[str, int | None]:
    """Held contracts without a usable mark: contract -> age of its last mark in ms (None:
    never marked)."""
    out: dict[str, int | None] = {}
    for c in held:
        q = marks.get(c)
        if not fresh(q, now_ms, max_age_ms):
            out[c] = None if q is None else now_ms - q.t
    return out


def blind_unpolled(held: Iterable[str], marks: Mapping[str, QuoteView], polling: Collection[str],
                   tried: Mapping[str, int], now_ms: int, max_age_ms: int,
                   interval_ms: int) -> dict[str, int | None]:
    """`blind` less the contracts whose venue poll is under way and began less than a poll
    interval ago: those are judged when the poll answers, so a quote outage the venue's bars
    cover raises no alarm. The runner decides the polls (`polls_due`) and this at one `now`:
    read apart, a quote that turned stale between the two reads was blind with no poll started
    (the `blind` alarm rose and cleared within a millisecond, CI)."""
    ages = blind(held, marks, now_ms, max_age_ms)
    for c in [c for c in ages if c in polling and now_ms - tried.get(c, now_ms) < interval_ms]:
        del ages[c]
    return ages


def polls_due(held: Iterable[str], quotes: Mapping[str, QuoteView],
              venue: Mapping[str, QuoteView], tried: Mapping[str, int], now_ms: int,
              max_age_ms: int, interval_ms: int) -> list[str]:
    """Held contracts whose quote is not fresh and whose last venue poll (`tried`, successful
    or not) is at least `interval_ms` old: the ones to ask the venue for now, oldest mark first
    (a shared budget then serves the blindest first)."""
    due = [c for c in held if not fresh(quotes.get(c), now_ms, max_age_ms)
           and now_ms - tried.get(c, -interval_ms - 1) >= interval_ms]
    return sorted(due, key=lambda c: (venue[c].t if c in venue else -1, c))


def next_due_ms(held: Iterable[str], quotes: Mapping[str, QuoteView], tried: Mapping[str, int],
                now_ms: int, max_age_ms: int, interval_ms: int,
                busy: Collection[str] | None = ()) -> int:
    """When the next poll can be due: the moment a fresh quote goes stale, or a stale contract's
    next poll; at most `interval_ms` from now. `busy`: contracts whose poll is under way (its
    end wakes the poller), None when nothing is polled (the fallback is off)."""
    at = now_ms + interval_ms
    for c in held:
        q = quotes.get(c)
        if fresh(q, now_ms, max_age_ms):
            assert q is not None
            at = min(at, q.t + max_age_ms + 1)
        elif busy is not None and c not in busy:
            at = min(at, tried.get(c, now_ms - interval_ms) + interval_ms)
    return max(now_ms, at)


def describe(ages: Mapping[str, int | None]) -> str:
    """'CON.F.US.EP.Z26 (no price yet), CON.F.US.ENQ.Z26 (last 42 s ago)'."""
    return ", ".join(f"{c} ({'no price yet' if a is None else f'last {a / 1000:.0f} s ago'})"
                     for c, a in sorted(ages.items()))
