"""Pure normalisers from market-hub payloads to bus messages (projectx-api.md §6).

- Quotes: a quote may carry only some fields; each is merged into the last known quote of the
  contract, so every published `Quote` is the full current picture.
- Trades: `GatewayTrade` carries one print or a list of them; each print is one `Trade`.
- Depth: a batch that contains a Reset (DomType 6) becomes a snapshot (`snapshot=True`, the
  entries after the last Reset); a Reset alone in its batch is held and joins the next batch
  (the venue sends the Reset, then the book); any other batch is an update. `null` entries are
  skipped.
- Optional live 1m bar from prints (origin "trades", never final: the polled bar is the authority).
Anything malformed is counted in `rejected` and skipped; nothing raises.
"""

from __future__ import annotations

from typing import Any

from chillly.clock import MINUTE_MS, iso_to_ms
from chillly.messages import Bar, Depth, Quote, Trade
from trading.venue_codes import DomType

DOM_RESET = DomType.RESET
_QUOTE_FIELDS = {"bestBid": "bid", "bestAsk": "ask", "lastPrice": "last", "open": "open",
                 "high": "high", "low": "low", "volume": "volume", "change": "change"}


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v)


_MINUTES: dict[str, int] = {}


def fast_iso_ms(text: str) -> int:
    """iso_to_ms for the hub's hot path: the minute prefix ("2026-02-22T23:54") is parsed once
    and cached, seconds and fraction are read directly; anything unusual (an offset other than
    Z/+00:00, no seconds) falls back to the full parser."""
    n = len(text)
    if n >= 20 and text[16] == ":" and (text[-1] == "Z" or text.endswith("+00:00")):
        end = n - 1 if text[-1] == "Z" else n - 6
        base = _MINUTES.get(text[:16])
        if base is None:
            if len(_MINUTES) > 10_000:
                _MINUTES.clear()
            base = iso_to_ms(text[:16] + ":00Z")
            _MINUTES[text[:16]] = base
        sec = text[17:19]
        if sec.isdigit():
            ms = int(sec) * 1000
            if end > 20 and text[19] == ".":
                frac = text[20:end]
                if frac.isdigit():
                    ms += round(int(frac[:6].ljust(6, "0")) / 1000)
                    return base + ms
            elif end == 19:
                return base + ms
    return iso_to_ms(text)


def _ts(v: Any) -> int | None:
    if isinstance(v, str):
        try:
            return fast_iso_ms(v)
        except ValueError:
            return None
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return None


def as_list(data: Any) -> list[Any]:
    if isinstance(data, list):
        return data
    return [] if data is None else [data]


def split_args(args: Any) -> tuple[str, Any] | None:
    """[contractId, data] -> (contractId, data), or None when malformed."""
    if isinstance(args, list) and len(args) >= 2 and isinstance(args[0], str) and args[0]:
        return args[0], args[1]
    return None


class TickNormaliser:
    def __init__(self, live_bars: bool = False) -> None:
        self.quotes: dict[str, dict[str, Any]] = {}
        self.live_bars = live_bars
        self._bars: dict[str, list[Any]] = {}   # contract -> [t, o, h, l, c, v, rev]
        self._reset_pending: set[str] = set()
        self.rejected = 0

    def forget(self, contract: str) -> None:
        self.quotes.pop(contract, None)
        self._bars.pop(contract, None)
        self._reset_pending.discard(contract)

    def quote(self, contract: str, data: Any) -> Quote | None:
        if not isinstance(data, dict):
            self.rejected += 1
            return None
        known = self.quotes.setdefault(contract, {})
        for wire, ours in _QUOTE_FIELDS.items():
            if wire in data:
                value = _num(data[wire])
                if value is not None:
                    known[ours] = int(value) if ours == "volume" else value
        vt = _ts(data.get("timestamp")) or _ts(data.get("lastUpdated"))
        if vt is not None:
            known["vt"] = vt
        return Quote(contract=contract, **known)

    def trades(self, contract: str, data: Any) -> tuple[list[Trade], Bar | None]:
        out: list[Trade] = []
        for p in as_list(data):
            if type(p) is not dict:
                if p is not None:
                    self.rejected += 1
                continue
            price, size, stamp, side = (p.get("price"), p.get("volume"), p.get("timestamp"),
                                        p.get("type"))
            # hot path: the usual shapes without the generic checks
            if type(price) is float or type(price) is int:
                price = float(price)
            else:
                price = _num(price)
            t = fast_iso_ms(stamp) if type(stamp) is str else _ts(stamp)
            if type(size) is not int:
                size = _num(size)
            if price is None or size is None or t is None:
                self.rejected += 1
                continue
            out.append(Trade(contract=contract, price=price, size=int(size),
                             aggressor=side if type(side) is int else -1, t=t))
        bar = self._live_bar(contract, out) if self.live_bars and out else None
        return out, bar

    def _live_bar(self, contract: str, prints: list[Trade]) -> Bar | None:
        cur = self._bars.get(contract)
        changed = False
        for tr in prints:
            m = tr.t - tr.t % MINUTE_MS
            if cur is None or m > cur[0]:
                cur = [m, tr.price, tr.price, tr.price, tr.price, tr.size, 0]
                self._bars[contract] = cur
                changed = True
            elif m == cur[0]:
                cur[2] = max(cur[2], tr.price)
                cur[3] = min(cur[3], tr.price)
                cur[4] = tr.price
                cur[5] += tr.size
                cur[6] += 1
                changed = True
        if not changed or cur is None:
            return None
        return Bar(contract=contract, tf="1m", t=cur[0], o=cur[1], h=cur[2], l=cur[3], c=cur[4],
                   volume=cur[5], final=False, rev=cur[6], origin="trades")

    def depth(self, contract: str, data: Any) -> Depth | None:
        entries = as_list(data)
        levels: list[list[Any]] = []
        snapshot = False
        for e in entries:
            if not isinstance(e, dict):
                if e is not None:
                    self.rejected += 1
                continue
            kind = e.get("type")
            if not isinstance(kind, int) or isinstance(kind, bool):
                self.rejected += 1
                continue
            if kind == DOM_RESET:
                snapshot = True
                levels = []
                continue
            price = _num(e.get("price"))
            if price is None:
                self.rejected += 1
                continue
            vol, cur = _num(e.get("volume")), _num(e.get("currentVolume"))
            levels.append([kind, price, int(vol or 0), int(cur or 0), _ts(e.get("timestamp"))])
        if snapshot and not levels:
            # The venue sends the Reset in a frame of its own, then the book: hold the Reset
            # and publish it with the next batch, as one snapshot with content.
            self._reset_pending.add(contract)
            return None
        if contract in self._reset_pending:
            self._reset_pending.discard(contract)
            snapshot = True
        if not snapshot and not levels:
            return None
        return Depth(contract=contract, snapshot=snapshot, levels=levels)
