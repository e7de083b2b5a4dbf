"""Property tests of the risk gate over random interleavings of orders, fills, quotes and ticks.

A small account model (positions, working orders with bracket legs, balance, quotes, a clock)
is driven by hypothesis; the gate answers every order and its `due` actions are carried out as
the gateway would (Flatten: cancel everything, close at market; CancelEntries; state changes).
After every step:
- no reachable fill of the working orders (any subset, legs included once their entry has
  filled: an orphaned leg fills like any order) takes the weighted position past the cap;
- whenever equity (longs at the bid, shorts at the ask, closing fees in) is at or below
  floor + buffer, `due` has latched HALTED and flattened what was held.
"""

from __future__ import annotations

from itertools import combinations

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from trading.risk.types import (BUY, LONG, SELL, SHORT, BookView, CancelEntries, CancelOrders,
                          Flatten, Intent,
                          PositionView, QuoteView, SetTradingState, WorkingOrder)
from trading.risk.gate import RiskGate
from trading.risk.calendar import CmeCalendar
from trading.risk.config import resolve
from tests.unit.trading.risk.rig import ES, MES, NQ, ct

SPEC = {ES: ("ES", 12.5, 1.40, 1.0), MES: ("MES", 1.25, 0.37, 0.1), NQ: ("NQ", 5.0, 1.40, 1.0)}
TICK = 0.25


class Account:
    """The venue side of the model: fills at the quote, P&L and fees on the balance."""

    def __init__(self, now: int) -> None:
        self.now = now
        self.balance = 50_000.0
        self.pos: dict[str, tuple[int, float]] = {}
        self.orders: list[WorkingOrder] = []
        self.px = {ES: 6000.0, MES: 6000.0, NQ: 21000.0}
        self.state = "ACTIVE"
        self.next_id = 1

    def view(self) -> BookView:
        positions = tuple(
            PositionView(c, "_account", LONG if n > 0 else SHORT, abs(n), avg, 0.0, 0.0,
                         SPEC[c][0], TICK, SPEC[c][1])
            for c, (n, avg) in self.pos.items() if n)
        quotes = {c: QuoteView(c, p, p + TICK, p, self.now) for c, p in self.px.items()}
        return BookView(1, "M", self.now, self.balance, 0.0, 0.0, True, self.state, positions,
                        tuple(self.orders), quotes)

    def equity(self) -> float:
        eq = self.balance
        for c, (n, avg) in self.pos.items():
            if n:
                mark = self.px[c] if n > 0 else self.px[c] + TICK
                eq += (mark - avg) / TICK * SPEC[c][1] * n - SPEC[c][2] * abs(n)
        return eq

    def fill(self, c: str, direction: int, size: int) -> None:
        price = self.px[c] + TICK if direction > 0 else self.px[c]
        n, avg = self.pos.get(c, (0, price))
        self.balance -= SPEC[c][2] * size
        if n == 0 or (n > 0) == (direction > 0):
            total = abs(n) + size
            self.pos[c] = (n + direction * size, (avg * abs(n) + price * size) / total)
            return
        closed = min(size, abs(n))
        sign = 1 if n > 0 else -1
        self.balance += (price - avg) / TICK * SPEC[c][1] * closed * sign
        left = n + direction * size
        self.pos[c] = (left, avg if (left > 0) == (n > 0) and left else price)

    def fill_order(self, o: WorkingOrder) -> None:
        self.orders.remove(o)
        direction = 1 if o.side == BUY else -1
        self.fill(o.contract, direction, o.remaining)     # an orphaned leg fills like the venue

    def act(self, actions: list) -> None:  # type: ignore[type-arg]
        for a in actions:
            if isinstance(a, SetTradingState):
                self.state = a.state
            elif isinstance(a, CancelOrders):
                self.orders = [o for o in self.orders if o.order_id not in a.order_ids]
            elif isinstance(a, CancelEntries):
                self.orders = [o for o in self.orders if o.parent_id is not None or o.protective]
            elif isinstance(a, Flatten):
                self.orders = []
                for c, (n, _) in list(self.pos.items()):
                    if n:
                        self.fill(c, -1 if n > 0 else 1, abs(n))


def reachable_max(acct: Account, gate: RiskGate) -> float:
    """The largest weighted position any subset of the working orders could fill into: entries,
    and legs whose entry has filled (a leg fills like any order at the venue; while its entry
    is still working it is suspended and cannot)."""
    total = 0.0
    ids = {o.order_id for o in acct.orders}
    for c in SPEC:
        n = acct.pos.get(c, (0, 0.0))[0]
        entries = [(1 if o.side == BUY else -1) * o.remaining for o in acct.orders
                   if o.contract == c and o.parent_id not in ids]
        best = abs(n)
        if len(entries) <= 10:
            for k in range(1, len(entries) + 1):
                for sub in combinations(entries, k):
                    best = max(best, abs(n + sum(sub)))
        else:
            best = max(abs(n + sum(e for e in entries if e > 0)),
                       abs(n + sum(e for e in entries if e < 0)))
        total += best * SPEC[c][3]
    return total


submit = st.tuples(st.just("submit"), st.sampled_from([ES, MES, NQ]), st.sampled_from([BUY, SELL]),
                   st.integers(1, 6), st.one_of(st.none(), st.integers(4, 60)))
fill = st.tuples(st.just("fill"), st.integers(0, 50))
quote = st.tuples(st.just("quote"), st.sampled_from([ES, NQ]), st.integers(-160, 160))
crash = st.tuples(st.just("quote"), st.sampled_from([ES, NQ]), st.integers(-400, 400))
tick = st.tuples(st.just("tick"), st.integers(1_000, 3 * 3_600_000))
steps = st.lists(st.one_of(submit, submit, fill, fill, quote, crash, tick), min_size=1, max_size=60)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, program=st.sampled_from(["combine", "live"]),
       start=st.integers(0, 5 * 3_600_000))
def test_no_reachable_breach_and_the_buffer_always_flattens(steps: list, program: str,  # type: ignore[type-arg]
                                                            start: int) -> None:
    acct = Account(ct(2026, 11, 18, 9, 0) + start)
    gate = RiskGate(resolve(program, "50k", default_stop_ticks=8), CmeCalendar())
    seq = 0
    for step in steps:
        kind = step[0]
        if kind == "submit":
            _, c, side, size, sl = step
            seq += 1
            sym, value, _, _ = SPEC[c]
            intent = Intent(f"s-{seq}", "alpha", c, sym, TICK, value, side, size, "limit",
                            sl_ticks=sl)
            if gate.check(intent, acct.view()).allowed:
                oid = acct.next_id
                acct.next_id += 3
                acct.orders.append(WorkingOrder(oid, intent.client_id, "alpha", c, side, size,
                                                size, "limit", 1))
                if sl is not None:
                    acct.orders.append(WorkingOrder(oid + 1, None, "alpha", c, 1 - side, size,
                                                    size, "stop", 8, parent_id=oid))
        elif kind == "fill" and acct.orders:
            o = acct.orders[step[1] % len(acct.orders)]
            parent_open = any(p.order_id == o.parent_id for p in acct.orders)
            if not parent_open:
                acct.fill_order(o)
        elif kind == "quote":
            _, c, ticks = step
            acct.px[c] += ticks * TICK
            if c == ES:
                acct.px[MES] = acct.px[ES]
        elif kind == "tick":
            acct.now += step[1]
        equity = acct.equity()
        at_buffer = equity - gate.floor() <= gate.cfg.mll_buffer
        held = any(n for n, _ in acct.pos.values())
        actions = gate.due(acct.view(), acct.now)
        if at_buffer and held:
            event("reached the buffer holding a position")
        if reachable_max(acct, gate) >= gate.max_lots() - 1e-9:
            event("at the cap")
        if at_buffer:
            assert gate.memory.day_halt is not None, (equity, gate.floor())
            if held or acct.orders:
                assert any(isinstance(a, Flatten) for a in actions) or acct.state == "HALTED"
        acct.act(actions)
        if at_buffer:
            assert not any(n for n, _ in acct.pos.values())
        # Reachable exposure never passes the cap (the cap of the day, micros weighted).
        assert reachable_max(acct, gate) <= gate.max_lots() + 1e-9, (acct.pos, acct.orders)


def test_the_model_can_fail_without_the_gate() -> None:
    """The same model with every order let through does breach the cap: the property bites."""
    acct = Account(ct(2026, 11, 18, 10))
    for i in range(3):
        acct.orders.append(WorkingOrder(i, None, "x", ES, BUY, 2, 2, "limit", 1))
    gate = RiskGate(resolve("combine", "50k"), CmeCalendar())
    assert reachable_max(acct, gate) > gate.max_lots()
