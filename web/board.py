"""What the page shows, held in one place: the snapshot a new page starts from, and the
messages that keep an open page current.

Panels are whole answers, exactly as the CLI prints them with `--json` (`risk`, `positions`,
`orders`, `account` from the gateway, `strategies` from `chillly strategies --json`, `health`
as `chillly status --json`), so the page and the tools cannot disagree. Fills and the gate's
refusals are lists kept here, newest first: as heard on the bus, merged with the day's fills
and refusals the gateway answers (`fills`, `refusals`, asked at start and when the gateway is
back), each once; quotes and bars are the latest per key.

Every method that changes something returns the messages to push as (key, kind, data, urgent);
the caller files them with the hub. Nothing here does I/O.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from web.outbox import encode

Push = tuple[str, str, Any, bool]
MAX_FILLS = 200
MAX_REFUSALS = MAX_FILLS


class Board:
    def __init__(self, meta: dict[str, Any]) -> None:
        self.meta = meta                                  # settings the page needs to know
        self.panels: dict[str, Any] = {}
        self.fills: deque[dict[str, Any]] = deque(maxlen=MAX_FILLS)
        self.fill_ids: set[tuple[Any, ...]] = set()
        self.loads = 0                                    # gateway answers merged
        self.refusals: deque[dict[str, Any]] = deque(maxlen=MAX_REFUSALS)
        self.refusal_ids: set[str] = set()
        self.quotes: dict[str, dict[str, Any]] = {}
        self.contracts: list[str] = []
        self.infos: dict[str, dict[str, Any]] = {}
        self.missing: dict[str, str] = {}                 # what -> sentence, shown as a banner

    # ------------------------------------------------------------------ the snapshot

    def snapshot(self) -> list[bytes]:
        """Every message a page needs to draw itself from nothing, encoded."""
        out = [encode("meta", self.meta), encode("contracts", self._contracts())]
        out += [encode("panel", {"name": n, "data": d}) for n, d in self.panels.items()]
        out += [encode("fills", list(self.fills)), encode("refusals", list(self.refusals)),
                encode("missing", self.missing)]
        out += [encode("quote", q) for q in self.quotes.values()]
        return out

    # ------------------------------------------------------------------ changes

    def panel(self, name: str, data: Any) -> list[Push]:
        if self.panels.get(name) == data:
            return []
        self.panels[name] = data
        return [(f"panel:{name}", "panel", {"name": name, "data": data}, True)]

    def fill(self, f: dict[str, Any]) -> list[Push]:
        key = _fill_key(f)
        if key in self.fill_ids:
            return []
        if len(self.fill_ids) > 10 * MAX_FILLS:
            self.fill_ids = {_fill_key(x) for x in self.fills}
        self.fill_ids.add(key)
        self.fills.appendleft(f)
        # the new fill alone (a page holds the list from its snapshot): one row to draw
        return [(f"fill:{key}", "fill", f, True)]

    def load_fills(self, fills: list[dict[str, Any]]) -> list[Push]:
        """The day's fills as the gateway journaled them: those not heard on the bus (before
        this process started, or while the gateway was away) join the list, which stays newest
        first (venue time) and at most MAX_FILLS long; the whole list goes to the pages."""
        new: dict[tuple[Any, ...], dict[str, Any]] = {}
        for f in fills:
            key = _fill_key(f)
            if key not in self.fill_ids:
                new.setdefault(key, f)
        if not new:
            return []
        self.fill_ids.update(new)
        merged = sorted([*self.fills, *new.values()], key=_fill_time, reverse=True)
        self.fills = deque(merged[:MAX_FILLS], maxlen=MAX_FILLS)
        self.loads += 1
        # a key of its own: a pending list replaced in place could land before a single fill
        # pushed after it, which the page would then draw twice
        return [(f"fills:{self.loads}", "fills", list(self.fills), True)]

    def refusal(self, r: dict[str, Any]) -> list[Push]:
        """A refusal or an action of the gate heard on the bus (an action has no refusal_id:
        each is its own)."""
        rid = r.get("refusal_id")
        if rid is not None:
            if rid in self.refusal_ids:
                return []
            if len(self.refusal_ids) > 10 * MAX_REFUSALS:
                self.refusal_ids = {x["refusal_id"] for x in self.refusals
                                    if x.get("refusal_id") is not None}
            self.refusal_ids.add(rid)
        self.refusals.appendleft(r)
        return [("refusals", "refusals", list(self.refusals), True)]

    def load_refusals(self, refusals: list[dict[str, Any]]) -> list[Push]:
        """The day's refusals as the gateway journaled them: those not heard on the bus join
        the list, which stays newest first (`ts`) and at most MAX_REFUSALS long. The list is
        always pushed whole under one key, so the newest push is the one a page draws."""
        new: dict[str, dict[str, Any]] = {}
        for r in refusals:
            rid = r.get("refusal_id")
            if rid is not None and rid not in self.refusal_ids:
                new.setdefault(rid, r)
        if not new:
            return []
        self.refusal_ids.update(new)
        merged = sorted([*self.refusals, *new.values()], key=lambda r: r.get("ts") or 0,
                        reverse=True)
        self.refusals = deque(merged[:MAX_REFUSALS], maxlen=MAX_REFUSALS)
        return [("refusals", "refusals", list(self.refusals), True)]

    def quote(self, q: dict[str, Any]) -> list[Push]:
        self.quotes[q["contract"]] = q
        return [(f"q:{q['contract']}", "quote", q, False)]

    def bar(self, b: dict[str, Any]) -> list[Push]:
        # one key per bar (not per series): a final is never replaced by the next bar's partial
        return [(f"bar:{b['contract']}:{b['tf']}:{b['t']}", "bar", b, bool(b.get("final")))]

    def set_contracts(self, contracts: list[str]) -> list[Push]:
        if contracts == self.contracts:
            return []
        self.contracts = list(contracts)
        return [("contracts", "contracts", self._contracts(), True)]

    def info(self, i: dict[str, Any]) -> list[Push]:
        slim = {k: i.get(k) for k in ("contract", "symbol", "name", "tick_size", "tick_value")}
        if self.infos.get(i["contract"]) == slim:
            return []
        self.infos[i["contract"]] = slim
        return [("contracts", "contracts", self._contracts(), True)]

    def set_missing(self, what: str, sentence: str | None) -> list[Push]:
        if sentence is None:
            if what not in self.missing:
                return []
            del self.missing[what]
        else:
            if self.missing.get(what) == sentence:
                return []
            self.missing[what] = sentence
        return [("missing", "missing", dict(self.missing), True)]

    def _contracts(self) -> list[dict[str, Any]]:
        return [{"contract": c, **{k: v for k, v in self.infos.get(c, {}).items()
                                   if k != "contract"}} for c in self.contracts]


def _fill_key(f: dict[str, Any]) -> tuple[Any, ...]:
    """A fill's identity, whichever way it came (the bus or the gateway's answer)."""
    return (f.get("account"), f.get("trade_id"), f.get("order_id"))


def _fill_time(f: dict[str, Any]) -> tuple[int, int]:
    """Newest first by the venue's time (the bus's stamp when it has none), then trade id."""
    return (f.get("vt") or f.get("ts") or 0, f.get("trade_id") or 0)
