"""Paper trading that survives a restart: the trading state in one atomically replaced file.

With `SIM_STATE_PATH` set the sim writes its accounts (balance, canTrade), orders, positions,
trades, id counters, the referee's rule state and breaches, the enforcement switch (set at run
time by POST /admin/rules, it wins over SIM_ENFORCE on restart) and the market drifts (they are
part of the price record) to one JSON file: written to a temporary file, fsynced, renamed over the
old one, the directory fsynced. A REST call that changed trading state is answered only after
the write that holds its change completed, so a SIGKILL loses nothing that was acknowledged;
fills made by the market are written within one market step. Without the setting nothing is
written (tests keep an in-memory sim).

`snapshot` / `restore` read and write the engine's own tables; `StateFile` does the I/O off
the event loop (asyncio.to_thread) and orders concurrent saves so each caller waits for a write
that includes its change.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import asdict, fields
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from chillly.anchor import refuse_earlier
from chillly.files import write_atomic

from sim.market.tape import Drift, Tape
from sim.exchange.enforcement import set_enforce
from sim.exchange.referee import Breach
from sim.exchange.wire import OPEN, HalfTrade, Order, Position

if TYPE_CHECKING:
    from sim.exchange.engine import TradingEngine

VERSION = 1
_ORDER_FIELDS = [f.name for f in fields(Order) if f.name != "contract"]


class StateError(Exception):
    """The state file exists but cannot be read back: the sim refuses to start on it."""


def snapshot(engine: TradingEngine, tape: Tape) -> dict[str, Any]:
    """Everything a restarted sim needs to go on trading where this one stopped."""
    ref = engine.referee
    return {
        "version": VERSION,
        # The market time this state is from: a restart at an earlier one is refused.
        "market_ms": engine.clock.now_ms(),
        "next_order": engine._next_order,
        "next_trade": engine.book.next_trade,
        "next_position": engine.book.next_position,
        "accounts": {str(a.id): {"balance": a.balance, "can_trade": a.can_trade}
                     for a in engine._accounts.values()},
        "enforce": sorted(engine.enforce),
        "orders": [{k: getattr(o, k) for k in _ORDER_FIELDS} for o in engine._orders.values()],
        "children": {str(k): v for k, v in engine._children.items()},
        "positions": [{"id": p.id, "account_id": p.account_id, "contract": p.contract.id,
                       "created_ms": p.created_ms, "type": p.type, "size": p.size,
                       "average_price": p.average_price} for p in engine.book.positions.values()],
        "trades": [asdict(t) for rows in engine.book.trades.values() for t in rows],
        "referee": {
            "day": ref.day.isoformat(),
            "flat_done": ref.flat_done.isoformat() if ref.flat_done else None,
            "breaches": [asdict(b) for b in ref.breaches],
            "state": {str(a): {"high_water": st.high_water, "floor": st.floor,
                               "day_start_balance": st.day_start_balance,
                               "max_lots": st.max_lots, "eod_balances": st.eod_balances,
                               "lost": st.lost, "blocked": st.blocked, "lots": st.lots,
                               "violating": sorted(st.violating)}
                      for a, st in ref.state.items()},
        },
        "drifts": [asdict(d) for d in tape.drifts],
    }


def restore(engine: TradingEngine, tape: Tape, data: dict[str, Any]) -> None:
    """Load a snapshot into a freshly built engine (its accounts come from the settings; saved
    accounts that are no longer configured are left out)."""
    if data.get("version") != VERSION:
        raise StateError(f"unknown state version {data.get('version')!r}")
    known = set(engine._accounts)
    if "enforce" in data:                 # snapshots before the switch was saved lack it
        engine.enforce = set_enforce(data["enforce"])
    engine._next_order = max(engine._next_order, int(data["next_order"]))
    for key, saved in data["accounts"].items():
        account = engine._accounts.get(int(key))
        if account is not None:
            account.balance = float(saved["balance"])
            account.can_trade = bool(saved["can_trade"])
    book = engine.book
    book.next_trade = max(book.next_trade, int(data["next_trade"]))
    book.next_position = max(book.next_position, int(data["next_position"]))
    for row in data["orders"]:
        if row["account_id"] not in known:
            continue
        order = Order(**row)
        order.contract = engine.catalogue.get(order.contract_id) if order.contract_id else None
        engine._orders[order.id] = order
        engine._by_account[order.account_id].append(order)
        if order.custom_tag is not None:
            engine._tags[order.account_id].add(order.custom_tag)
        if order.status == OPEN:
            engine._working.setdefault(order.contract_id, {})[order.id] = order
    engine._children = {int(k): list(v) for k, v in data["children"].items()
                        if int(k) in engine._orders}
    for row in data["positions"]:
        contract = engine.catalogue.get(row["contract"])
        if row["account_id"] not in known or contract is None:
            continue
        pos = Position(row["id"], row["account_id"], contract, row["created_ms"], row["type"],
                       row["size"], row["average_price"])
        book.positions[(pos.account_id, contract.id)] = pos
    for row in data["trades"]:
        if row["account_id"] in known:
            book.trades[row["account_id"]].append(HalfTrade(**row))
    _restore_referee(engine, data["referee"], known)
    tape.restore_drifts([Drift(**d) for d in data.get("drifts", [])])


def _restore_referee(engine: TradingEngine, saved: dict[str, Any], known: set[int]) -> None:
    ref = engine.referee
    ref.day = date.fromisoformat(saved["day"])
    ref.flat_done = date.fromisoformat(saved["flat_done"]) if saved["flat_done"] else None
    ref.breaches = [Breach(**b) for b in saved["breaches"] if b["account"] in known]
    for key, st_saved in saved["state"].items():
        st = ref.state.get(int(key))
        if st is None:
            continue
        st.high_water = float(st_saved["high_water"])
        st.floor = float(st_saved["floor"])
        st.day_start_balance = float(st_saved["day_start_balance"])
        st.max_lots = int(st_saved["max_lots"])
        st.eod_balances = [(str(d), float(b)) for d, b in st_saved["eod_balances"]]
        st.lost = bool(st_saved["lost"])
        st.blocked = bool(st_saved["blocked"])
        st.lots = int(st_saved["lots"])
        st.violating = set(st_saved["violating"])


class StateFile:
    """One state file; `save()` returns once a write holding every change so far completed."""

    def __init__(self, path: Path, engine: TradingEngine, tape: Tape) -> None:
        self.path = path
        self.engine = engine
        self.tape = tape
        self.saves = 0
        self._lock = asyncio.Lock()
        # A save cancelled at shutdown may still be writing in its thread when the final one
        # starts: writes are serialised and an older snapshot never replaces a newer one.
        self._seq = 0
        self._written = 0
        self._io = threading.Lock()

    def load(self) -> bool:
        """Restore the engine from the file; False when there is none yet."""
        if not self.path.exists():
            return False
        try:
            data = orjson.loads(self.path.read_bytes())
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot restore {self.path}: {exc}") from None
        saved_ms = data.get("market_ms") if isinstance(data, dict) else None
        refuse_earlier(f"the sim's state {self.path}",
                       saved_ms if isinstance(saved_ms, int) else None, self.engine.clock.now_ms())
        try:
            restore(self.engine, self.tape, data)
        except (ValueError, KeyError, TypeError, AttributeError, StateError) as exc:
            raise StateError(f"cannot restore {self.path}: {exc}") from None
        return True

    def prepare(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)

    async def save(self) -> None:
        async with self._lock:
            if not self.engine.dirty:
                return
            self.engine.dirty = False
            data = orjson.dumps(snapshot(self.engine, self.tape))
            self._seq += 1
            try:
                await asyncio.to_thread(self._write, self._seq, data)
            except BaseException:
                self.engine.dirty = True
                raise
            self.saves += 1

    def _write(self, seq: int, data: bytes) -> None:
        with self._io:
            if seq < self._written:
                return
            write_atomic(self.path, data)
            self._written = seq

