"""The risk gate's pure core: no order may breach a Topstep rule (../shared/topstep-rules.md).

`RiskGate` implements the gateway's seam (trading/risk/types.py). `check(intent, view)` answers
every order before it reaches the venue: allow, or reject naming the rule with the figures.
`due(view, now_ms)` runs on every quote, fill and clock tick and returns what the gateway must
do now: change the trading state, cancel working entries, flatten. It does no I/O: time is the
view's, the calendar is injected, and what must survive a restart lives in its `RiskMemory`.

Exposure (rule 2) is counted so that no reachable fill can breach the cap: per contract the
larger of |net + working buys| and |net - working sells| (bracket children and protective legs
excluded while their entry works, then counted, one of each stop/target pair), micros weighted,
summed over contracts. An order that only reduces (opposite the net, and with the other working
orders on that side still no bigger than the position) is always allowed unless the account is
HALTED; everything else passes every rule in turn, the first that fails names the rejection.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import datetime
from typing import Any

from chillly.calendar import CHICAGO
from trading import products
from trading.marks import blind, describe
from trading.risk.calendar import Deadlines, RiskCalendar
from trading.risk.config import RiskConfig, StrategyLimits
from trading.risk.memory import RiskMemory
from trading.risk.types import (
    ACTIVE, ALLOW, BUY, HALTED, REDUCING, RULE_BLIND, RULE_CONTRACT, RULE_DAILY_CONTRACTS,
    RULE_DAILY_LOSS, RULE_FLAT, RULE_HALT, RULE_HEDGING, RULE_HOURS, RULE_MAX_POSITION, RULE_MLL,
    RULE_RATE, RULE_SCALING, RULE_STRATEGY, RULE_VENUE, Action, BookView, CancelEntries,
    CancelOrders, Flatten, Intent, SetTradingState, Verdict, WorkingOrder, reject,
)

MINUTE = 60_000
ACCOUNT = "_account"
#: The trading tools' owner: a trader may still reduce by hand while HALTED.
MANUAL = "manual"


def _dir(side: int) -> int:
    return 1 if side == BUY else -1


def _is_entry(o: WorkingOrder) -> bool:
    """Counted in exposure: not a bracket child, not one of the gateway's protective legs."""
    return o.parent_id is None and not o.protective


class RiskGate:
    """One account's gate (the `Gate` protocol), plus the halt / resume / report commands."""

    def __init__(self, config: RiskConfig, calendar: RiskCalendar,
                 memory: RiskMemory | None = None, retry_ms: int = 10_000) -> None:
        self.cfg = config
        self.cal = calendar
        self.memory = memory or RiskMemory()
        self.retry_ms = retry_ms
        #: Contracts the venue lists as not the front month (filled by the gateway).
        self.inactive: set[str] = set()
        #: contract -> (tick size, tick value, CME root), learnt from intents and positions.
        self.ticks: dict[str, tuple[float, float, str]] = {}
        #: The figures of the last rejection, for its `risk.` event.
        self.last_figures: dict[str, Any] = {}
        #: Flattens held back because an order was in motion (a counter for the heartbeat).
        self.held_back = 0
        self._dl: Deadlines | None = None
        self._meta: dict[str, tuple[str, float, float, float]] = {}
        self._sent: dict[tuple[Any, ...], int] = {}

    # ------------------------------------------------------------------ the day

    def deadlines(self, now_ms: int) -> Deadlines:
        dl = self._dl
        if dl is None or not (dl.start <= now_ms < dl.end):
            c = self.cfg
            dl = Deadlines.for_day(self.cal, self.cal.trading_date(now_ms), c.entry_cutoff,
                                   c.flatten_start, c.flat_by)
            self._dl = dl
        return dl

    def _sync(self, view: BookView, now_ms: int) -> Deadlines:
        """Roll the day at 17:00 CT: EOD balance, high-water mark, tier, latches, counters."""
        dl = self.deadlines(now_ms)
        b = self.memory
        today = dl.day.isoformat()
        if b.day != today:
            if b.day is None:
                if b.high_water is None:
                    # No history known: the strict reading counts today's balance as an EOD.
                    b.high_water = max(self.cfg.starting_balance, view.balance)
                if b.sod_balance is None:
                    b.sod_balance = view.balance - view.realized_pnl
            else:
                eod = b.last_balance if b.last_balance is not None else view.balance
                b.record_eod(b.day, eod)
                b.sod_balance = eod
                b.day_halt = None
                b.owner_halts.clear()
                b.contracts_today = 0
            b.day = today
            b.tier_lots = self._tier(b.sod_balance)
            b.dirty = True
        if b.last_balance != view.balance:
            b.last_balance = view.balance
            b.dirty = True
        return dl

    def _tier(self, sod: float | None) -> float | None:
        table = self.cfg.scaling
        if table is None:
            return None
        s = self.cfg.starting_balance
        profit = (sod if sod is not None else s) - s
        lots = table[0][1]
        for at, tier in table:
            if profit >= at:
                lots = tier
        return lots

    # ------------------------------------------------------------------ figures

    def floor(self) -> float:
        """F = min(S, max(S - D, H - D)): it moves only when an EOD is recorded at 17:00 CT."""
        c = self.cfg
        if c.fixed_floor is not None:
            return c.fixed_floor
        s, d = c.starting_balance, c.mll_allowance
        h = self.memory.high_water if self.memory.high_water is not None else s
        return min(s, max(s - d, h - d))

    def max_lots(self) -> float:
        tier = self.memory.tier_lots
        return self.cfg.max_lots if tier is None else min(self.cfg.max_lots, tier)

    def _learn(self, contract: str, tick_size: float, tick_value: float, symbol: str) -> None:
        if tick_size > 0 and contract not in self.ticks:
            self.ticks[contract] = (tick_size, tick_value, symbol or products.symbol_of_contract(contract))
            self._meta.pop(contract, None)

    def _m(self, contract: str) -> tuple[str, float, float, float]:
        """(root, lot weight, fee per side, dollars per tick) of a contract, cached."""
        m = self._meta.get(contract)
        if m is None:
            t = self.ticks.get(contract)
            root = t[2] if t is not None else products.symbol_of_contract(contract)
            value = t[1] if t is not None else products.tick_value(root)
            m = self._meta[contract] = (root, self.cfg.weight(root), self.cfg.fee(root), value)
        return m

    def _root(self, contract: str) -> str:
        return self._m(contract)[0]

    def equity(self, view: BookView) -> float:
        """Balance plus open P&L (longs at the bid, shorts at the ask) less the fees to close."""
        eq = view.balance
        for p in view.positions:
            if p.owner != ACCOUNT or not p.size:
                continue
            n = p.signed_size
            self._learn(p.contract, p.tick_size, p.tick_value, p.symbol)
            t = self.ticks.get(p.contract)
            q = view.quotes.get(p.contract)
            mark = None
            if q is not None:
                mark = (q.bid if n > 0 else q.ask) or q.last
            if t is not None and mark is not None and p.avg_price is not None:
                eq += (mark - p.avg_price) / t[0] * t[1] * n
            else:
                eq += p.open_pnl
            eq -= self._m(p.contract)[2] * abs(n)
        return eq

    def _sod(self, view: BookView) -> float:
        sod = self.memory.sod_balance
        return sod if sod is not None else view.balance - view.realized_pnl

    def day_pnl(self, view: BookView) -> float:
        """Realized plus open since the day's start (the last EOD), fees in."""
        return self.equity(view) - self._sod(view)

    @staticmethod
    def net(view: BookView, owner: str = ACCOUNT) -> dict[str, int]:
        return {p.contract: p.signed_size for p in view.positions if p.owner == owner and p.size}

    def owner_pnl(self, view: BookView, owner: str) -> float:
        return sum(p.realized_pnl + p.open_pnl for p in view.positions if p.owner == owner)

    def exposure(self, net: dict[str, int], orders: Any,
                 extra: tuple[str, int, int] | None = None, skip: int | None = None) -> float:
        """Weighted lots reachable if any subset of the working entries (and `extra`) fills."""
        buys: dict[str, int] = {}
        sells: dict[str, int] = {}
        legs = None
        pairs: dict[tuple[int, str, int], int] | None = None
        for o in orders:
            if o.order_id == skip:
                continue
            if o.parent_id is not None:
                # A bracket child cannot fill while its entry still works (or its fill is not
                # yet in the position). Once it can, it counts in full on its side: it and a
                # new entry of that side may both fill (long 1 with its stop working, a sell 5
                # reaches short 5, not 4). The stop and the target of one entry are one
                # cancels-other pair: the larger of the two.
                if legs is None:
                    legs = {x.order_id for x in orders}
                if _suspended(o, legs):
                    continue
                if pairs is None:
                    pairs = {}
                key = (o.parent_id, o.contract, o.side)
                pairs[key] = max(pairs.get(key, 0), o.remaining)
                continue
            side = buys if o.side == BUY else sells
            side[o.contract] = side.get(o.contract, 0) + o.remaining
        if pairs:
            for (_, contract, leg_side), size in pairs.items():
                side = buys if leg_side == BUY else sells
                side[contract] = side.get(contract, 0) + size
        if extra is not None:
            cid, direction, size = extra
            side = buys if direction > 0 else sells
            side[cid] = side.get(cid, 0) + size
        m = self._m
        total = 0.0
        for cid, n in net.items():
            reach = max(abs(n + buys.pop(cid, 0)), abs(n - sells.pop(cid, 0)))
            total += reach * m(cid)[1]
        for cid, b in buys.items():
            total += max(b, sells.pop(cid, 0)) * m(cid)[1]
        for cid, s in sells.items():
            total += s * m(cid)[1]
        return total

    # ------------------------------------------------------------------ state

    def state(self, view: BookView, now_ms: int) -> tuple[str, str, str | None]:
        """(state, reason, rule) by latch, venue lock, the day's limits and the clock."""
        b = self.memory
        if not view.can_trade:
            return HALTED, "the venue has locked the account (canTrade false)", RULE_VENUE
        if b.manual_halt is not None:
            return HALTED, f"halted by hand: {b.manual_halt} (chillly resume when flat)", RULE_HALT
        if b.day_halt is not None:
            return HALTED, b.day_halt[1], b.day_halt[0]
        dl = self.deadlines(now_ms)
        if dl.close is None:
            return REDUCING, f"no session on {dl.day.isoformat()}", RULE_HOURS
        if now_ms >= dl.entry_cutoff:
            return REDUCING, (f"no new entries from {_ct(dl.entry_cutoff)} CT until the "
                              f"17:00 CT reset (flat by {_ct(dl.flat_by)} CT)"), RULE_FLAT
        return ACTIVE, "", None

    def _rule_halt(self, view: BookView, equity: float) -> tuple[str, str] | None:
        """The MLL buffer or the daily loss limit reached now: (rule, reason)."""
        c = self.cfg
        fl = self.floor()
        if equity - fl <= c.mll_buffer:
            return RULE_MLL, (f"equity {equity:,.2f} is within the buffer {c.mll_buffer:,.2f} "
                              f"of the floor {fl:,.2f}: flat and halted until 17:00 CT")
        if c.daily_loss_limit is not None:
            pnl = equity - self._sod(view)
            if pnl <= -c.daily_loss_limit:
                return RULE_DAILY_LOSS, (f"day P&L {pnl:,.2f} reached the daily loss limit "
                                         f"-{c.daily_loss_limit:,.2f}: halted until 17:00 CT")
        return None

    def halt(self, reason: str) -> tuple[str, str]:
        """`chillly halt`: latch HALTED; `due` then cancels and flattens."""
        self.memory.manual_halt = reason or "manual halt"
        self.memory.dirty = True
        return HALTED, self.memory.manual_halt

    def resume(self, view: BookView) -> tuple[bool, str]:
        """`chillly resume`: lift the manual latch, only when the account is flat."""
        held = self.net(view)
        if held:
            text = ", ".join(f"{c} {n:+d}" for c, n in sorted(held.items()))
            return False, f"not flat ({text}): flatten first"
        if self.memory.manual_halt is None:
            return True, "not halted by hand"
        self.memory.manual_halt = None
        self.memory.dirty = True
        return True, "manual halt lifted"

    def set_high_water(self, value: float) -> None:
        """`chillly risk --set-high-water X`: the highest EOD balance, when history is unknown.
        It may add history the gateway did not see, never contradict what it recorded: a value
        that is not finite, or below a recorded EOD balance (which would lower the floor), is
        refused with ValueError."""
        value = float(value)
        if not math.isfinite(value):
            raise ValueError(f"the high-water mark must be a finite number, not {value}")
        recorded = max(self.memory.eod.values(), default=None)
        if recorded is not None and value < recorded:
            day = max(d for d, b in self.memory.eod.items() if b == recorded)
            raise ValueError(f"{value:,.2f} is below the EOD balance {recorded:,.2f} recorded "
                             f"on {day}: the high-water mark can only be raised")
        self.memory.high_water = value
        self.memory.dirty = True

    # ------------------------------------------------------------------ check

    def reduces(self, intent: Intent, view: BookView, net: dict[str, int]) -> bool:
        """True when the order can only bring the account's position in its contract to zero."""
        n = net.get(intent.contract, 0)
        d = _dir(intent.side)
        if n == 0 or (n > 0) == (d > 0):
            return False
        pending = intent.size
        for o in view.orders:
            if o.contract == intent.contract and o.side == intent.side and _is_entry(o) \
                    and o.order_id != intent.order_id:
                pending += o.remaining
        return pending <= abs(n)

    def _reject(self, rule: str, message: str, **figures: Any) -> Verdict:
        self.memory.rejections += 1
        self.memory.dirty = True
        self.last_figures = figures
        return reject(rule, message)

    def check(self, intent: Intent, view: BookView) -> Verdict:
        """Allow, or reject with the rule and a sentence with the figures."""
        if intent.protective:
            # A stop / target leg only reduces risk while it is no bigger than what it
            # protects: moving it passes, growing it is weighed; either counts in the rate.
            verdict = self._leg(intent, view)
            if verdict is None and intent.kind == "modify":
                verdict = self._action(intent.owner, view.now_ms)
            return verdict or ALLOW
        now_ms = view.now_ms
        dl = self._sync(view, now_ms)
        cid = intent.contract
        self._learn(cid, intent.tick_size, intent.tick_value, intent.symbol)
        if cid in self.inactive:
            return self._reject(RULE_CONTRACT, f"{cid} is not the front month")
        if dl.close is None or now_ms >= dl.close:
            return self._reject(RULE_HOURS, f"the market is closed ({_ct(now_ms)} CT)")
        state, reason, rule = self.state(view, now_ms)
        owner = intent.owner
        net = self.net(view)
        limits = self.cfg.strategies.get(owner)
        if self.reduces(intent, view, net):
            if state == HALTED and owner != MANUAL:
                return self._reject(rule or RULE_HALT, f"HALTED: {reason}")
            verdict = self._rates(owner, now_ms, limits)
            if verdict is not None:
                return verdict
            self._count(intent, now_ms)
            return ALLOW
        if state != ACTIVE:
            return self._reject(rule or RULE_FLAT, f"{state}: {reason}; only orders that reduce")
        if owner in self.memory.owner_halts:
            return self._reject(RULE_STRATEGY, f"{owner} is halted for the day: "
                                               f"{self.memory.owner_halts[owner]}")
        if limits is not None and limits.contracts is not None \
                and not _allowed(cid, self._root(cid), limits):
            return self._reject(RULE_STRATEGY, f"{owner} may not trade {intent.symbol or cid} "
                                               f"(allowed: {', '.join(sorted(limits.contracts))})")
        verdict = (self._rates(owner, now_ms, limits) or self._hedging(intent, view, net)
                   or self._position(intent, view, net, limits) or self._contracts(intent)
                   or self._blind(view, net) or self._losses(intent, view, net, limits))
        if verdict is not None:
            return verdict
        self._count(intent, now_ms)
        return ALLOW

    def _leg(self, intent: Intent, view: BookView) -> Verdict | None:
        """A modify that grows a bracket leg: at most the position it protects (the account's
        net opposite the leg, plus its entry's unfilled part while the entry works), and the
        account's exposure with it within the cap."""
        if intent.kind != "modify":
            return None
        old = next((o for o in view.orders if o.order_id == intent.order_id), None)
        if old is not None and intent.size <= old.size:
            return None
        net = self.net(view)
        n = net.get(intent.contract, 0)
        d = _dir(intent.side)
        protects = abs(n) if n and (n > 0) != (d > 0) else 0
        parent = old.parent_id if old is not None else None
        for o in view.orders:
            if parent is not None and o.order_id in (parent, -parent) and o.side != intent.side:
                protects += o.remaining
        if intent.size > protects:
            return self._reject(RULE_MAX_POSITION, f"a stop or target leg of {intent.size} would "
                                                   f"be larger than the {protects} lot(s) it "
                                                   f"protects on {intent.symbol or intent.contract}",
                                size=intent.size, protects=protects)
        limits = self.cfg.strategies.get(intent.owner)
        return self._position(intent, view, net, limits)

    def count_cancel(self, owner: str, now_ms: int) -> Verdict:
        """A cancel asked by `owner` (the trader's tools or a strategy; never the gate's own
        actions, which the gateway carries out directly): counted in the fair-use rate like any
        order action, refused when the minute's allowance is used up."""
        return self._action(owner, now_ms) or ALLOW

    def _action(self, owner: str, now_ms: int) -> Verdict | None:
        """An order action that adds no contracts (a cancel, a leg's modify): rate-checked and
        recorded."""
        verdict = self._rates(owner, now_ms, self.cfg.strategies.get(owner))
        if verdict is None:
            self._record(owner, now_ms)
        return verdict

    def _count(self, intent: Intent, now_ms: int) -> None:
        self.memory.contracts_today += intent.size
        self._record(intent.owner, now_ms)

    def _record(self, owner: str, now_ms: int) -> None:
        b = self.memory
        b.account_orders.append(now_ms)
        q = b.owner_orders.get(owner)
        if q is None:
            q = b.owner_orders[owner] = deque()
        q.append(now_ms)
        b.dirty = True

    def _rates(self, owner: str, now_ms: int, limits: StrategyLimits | None) -> Verdict | None:
        b = self.memory
        since = now_ms - MINUTE
        acct = b.account_orders
        while acct and acct[0] <= since:
            acct.popleft()
        cap = self.cfg.account_orders_per_minute
        if len(acct) >= cap:
            return self._reject(RULE_RATE, f"{len(acct)} orders in the last minute on the "
                                           f"account (limit {cap})", orders=len(acct), limit=cap)
        q = b.owner_orders.get(owner)
        if q is not None:
            while q and q[0] <= since:
                q.popleft()
            cap = self.cfg.strategy_orders_per_minute
            if limits is not None and limits.max_orders_per_minute is not None:
                cap = limits.max_orders_per_minute
            if len(q) >= cap:
                return self._reject(RULE_RATE, f"{len(q)} orders in the last minute from "
                                               f"{owner} (limit {cap})",
                                    orders=len(q), limit=cap)
        return None

    def _hedging(self, intent: Intent, view: BookView, net: dict[str, int]) -> Verdict | None:
        families = self.cfg.families
        fam = families.get(self._root(intent.contract))
        if fam is None:
            return None
        d = _dir(intent.side)
        for cid, n in net.items():
            if cid != intent.contract and (n > 0) != (d > 0) \
                    and families.get(self._root(cid)) == fam:
                return self._reject(RULE_HEDGING, f"{'buying' if d > 0 else 'selling'} "
                                                  f"{intent.symbol or intent.contract} opposes "
                                                  f"the open {cid} {n:+d} (family {fam})")
        for o in view.orders:
            if o.contract != intent.contract and o.side != intent.side and _is_entry(o) \
                    and families.get(self._root(o.contract)) == fam \
                    and not _exits(o, net):
                return self._reject(RULE_HEDGING, f"{intent.symbol or intent.contract} opposes "
                                                  f"a working entry on {o.contract} "
                                                  f"(family {fam})")
        return None

    def _position(self, intent: Intent, view: BookView, net: dict[str, int],
                  limits: StrategyLimits | None) -> Verdict | None:
        extra = (intent.contract, _dir(intent.side), intent.size)
        used = self.exposure(net, view.orders, extra, skip=intent.order_id)
        cap = self.max_lots()
        if used > cap + 1e-9:
            tier = self.memory.tier_lots is not None and cap < self.cfg.max_lots
            what = "the scaling tier of the day" if tier else "the maximum position"
            return self._reject(RULE_SCALING if tier else RULE_MAX_POSITION,
                                f"{used:g} lots reachable with this order (positions plus "
                                f"working entries, micros x{self.cfg.micro_weight:g}) would pass "
                                f"{what} {cap:g}", lots=used, allowed=cap)
        if limits is not None and limits.max_lots is not None:
            mine = self.net(view, intent.owner)
            own = [o for o in view.orders if o.owner == intent.owner]
            used = self.exposure(mine, own, extra, skip=intent.order_id)
            if used > limits.max_lots + 1e-9:
                return self._reject(RULE_STRATEGY, f"{intent.owner}: {used:g} lots would pass "
                                                   f"its limit {limits.max_lots:g}",
                                    lots=used, allowed=limits.max_lots)
        return None

    def _contracts(self, intent: Intent) -> Verdict | None:
        today, cap = self.memory.contracts_today, self.cfg.daily_contracts
        if today + intent.size > cap:
            return self._reject(RULE_DAILY_CONTRACTS, f"{today} contracts today + {intent.size} "
                                                      f"would pass the daily count {cap}",
                                contracts_today=today, limit=cap)
        return None

    def blind(self, view: BookView) -> dict[str, int | None]:
        """Held contracts without a fresh mark (contract -> age ms, None: never priced)."""
        return blind(self.net(view), view.quotes, view.now_ms, int(self.cfg.mark_max_age_s * 1000))

    def _blind(self, view: BookView, net: dict[str, int]) -> Verdict | None:
        """Without a price for what is held, equity (and so the MLL and daily loss checks) is
        unknown: an entry that adds risk waits for a price."""
        ages = blind(net, view.quotes, view.now_ms, int(self.cfg.mark_max_age_s * 1000)) \
            if net else None
        if not ages:
            return None
        return self._reject(RULE_BLIND, f"no price for {describe(ages)}: quotes and the venue's "
                                        f"bars are both silent, so equity is unknown; entries "
                                        f"are refused until a price returns (exits, cancels and "
                                        f"flatten still work)", blind=sorted(ages))

    def worst_loss(self, contract: str, size: int, sl_ticks: int | None) -> float:
        """Loss if the order fills and its stop (or the default stop) is hit, fees and slip in."""
        _, _, fee, value = self._m(contract)
        c = self.cfg
        ticks = (sl_ticks if sl_ticks else c.default_stop_ticks) + c.slippage_ticks
        return size * (ticks * value + 2 * fee)

    def _losses(self, intent: Intent, view: BookView, net: dict[str, int],
                limits: StrategyLimits | None) -> Verdict | None:
        c = self.cfg
        risk = self.worst_loss(intent.contract, intent.size, intent.sl_ticks)
        pending = 0.0
        for o in view.orders:
            if _is_entry(o) and o.order_id != intent.order_id and not _exits(o, net):
                pending += self.worst_loss(o.contract, o.remaining, None)
        equity = self.equity(view)
        fl = self.floor()
        if equity - pending - risk <= fl + c.mll_buffer:
            return self._reject(RULE_MLL, f"worst case {risk:,.2f} (plus {pending:,.2f} working) "
                                          f"from equity {equity:,.2f} reaches the floor "
                                          f"{fl:,.2f} + buffer {c.mll_buffer:,.2f}",
                                equity=equity, floor=fl, worst_case=risk, working=pending)
        pnl = equity - self._sod(view)
        if c.daily_loss_limit is not None and pnl - pending - risk <= -c.daily_loss_limit:
            return self._reject(RULE_DAILY_LOSS, f"day P&L {pnl:,.2f} less worst case "
                                                 f"{risk + pending:,.2f} reaches the daily "
                                                 f"loss limit -{c.daily_loss_limit:,.2f}",
                                day_pnl=pnl, worst_case=risk + pending)
        if limits is not None and limits.max_daily_loss is not None:
            own = self.owner_pnl(view, intent.owner)
            if own - risk <= -limits.max_daily_loss:
                return self._reject(RULE_STRATEGY, f"{intent.owner}: day P&L {own:,.2f} less "
                                                   f"worst case {risk:,.2f} reaches its daily "
                                                   f"loss limit -{limits.max_daily_loss:,.2f}",
                                    day_pnl=own, worst_case=risk)
        return None

    # ------------------------------------------------------------------ due

    def due(self, view: BookView, now_ms: int) -> list[Action]:
        """State changes, cancels and flattens due now; each repeated at most once per
        `retry_ms` while the view shows it not yet carried out."""
        dl = self._sync(view, now_ms)
        b = self.memory
        out: list[Action] = []
        if b.day_halt is None and view.can_trade:
            hit = self._rule_halt(view, self.equity(view))
            if hit is not None:
                b.day_halt = hit
                b.dirty = True
        state, reason, rule = self.state(view, now_ms)
        if state != b.state or reason != b.state_reason:
            b.state, b.state_reason, b.state_rule = state, reason, rule
            b.dirty = True
            self._sent.clear()          # a new state acts at once
        if state != view.trading_state and self._once(("state", state, reason), now_ms):
            out.append(SetTradingState(state, reason, rule))  # type: ignore[arg-type]
        if state == HALTED and view.can_trade or state == REDUCING and (
                dl.close is None or now_ms >= dl.flatten_start):
            # Flatten cancels every working order (legs included), then closes at market. Not
            # while an order that reduces is in motion (sent, or filled but not yet in the
            # venue's position): closing the stale, larger position would reverse it.
            net = self.net(view)
            orders = view.orders
            moving = [o for o in orders if o.order_id < 0 and _exits(o, net)]
            if moving and (orders or net):
                self.held_back += 1
            if (orders or net) and not moving and self._once(
                    ("flatten", tuple(sorted(net.items()))), now_ms):
                out.append(Flatten(reason, rule))
        else:
            self._orphans(view, now_ms, out)
        self._owners(view, now_ms, out)
        return out

    def _orphans(self, view: BookView, now_ms: int, out: list[Action]) -> None:
        """Cancel legs whose position is gone (flat, or now on the leg's own side)."""
        orders = view.orders
        if not orders:
            return
        net = self.net(view)
        ids = {o.order_id for o in orders}
        dead = tuple(o.order_id for o in orders if (o.parent_id is not None or o.protective)
                     and o.order_id > 0 and _orphan(o, net, ids) == o.remaining
                     and o.remaining > 0)
        if dead and self._once(("orphans", dead), now_ms):
            out.append(CancelOrders(dead, "bracket legs left without their position",
                                    RULE_MAX_POSITION))

    def _once(self, key: tuple[Any, ...], now_ms: int) -> bool:
        last = self._sent.get(key)
        if last is not None and now_ms - last < self.retry_ms:
            return False
        self._sent[key] = now_ms
        return True

    def _owners(self, view: BookView, now_ms: int, out: list[Action]) -> None:
        """A strategy past its daily loss is halted alone: its orders cancelled, its share closed."""
        b = self.memory
        for owner, limits in self.cfg.strategies.items():
            if limits.max_daily_loss is None or owner in b.owner_halts:
                continue
            pnl = self.owner_pnl(view, owner)
            if pnl <= -limits.max_daily_loss:
                b.owner_halts[owner] = (f"day P&L {pnl:,.2f} reached its daily loss limit "
                                        f"-{limits.max_daily_loss:,.2f}")
                b.dirty = True
        for owner, reason in b.owner_halts.items():
            held = self.net(view, owner)
            if view.working(owner=owner) and self._once(("cancel", owner), now_ms):
                out.append(CancelEntries(f"{owner} halted: {reason}", RULE_STRATEGY, owner=owner))
            for cid in sorted(held):
                if self._once(("flatten", cid, owner), now_ms):
                    out.append(Flatten(f"{owner} halted: {reason}", RULE_STRATEGY, cid,
                                       owner=owner))

    # ------------------------------------------------------------------ report

    def report(self, view: BookView, now_ms: int) -> dict[str, Any]:
        """The risk view (`chillly risk --json`)."""
        dl = self._sync(view, now_ms)
        c, b = self.cfg, self.memory
        equity = self.equity(view)
        fl = self.floor()
        state, reason, rule = self.state(view, now_ms)
        marks = [("entry cut-off", dl.entry_cutoff), ("flatten start", dl.flatten_start),
                 ("flat by", dl.flat_by), ("daily reset", dl.end)]
        name, at = next(((n, t) for n, t in marks if t > now_ms), ("daily reset", dl.end))
        days = sorted(b.eod.items())
        pnls = [b2 - b1 for (_, b1), (_, b2) in zip(days, days[1:])]
        total = sum(pnls)
        owners = sorted({p.owner for p in view.positions if p.owner != ACCOUNT}
                        | set(c.strategies))
        return {
            "account": view.account_id, "program": c.program, "size": c.size,
            "starting_balance": c.starting_balance, "trading_date": dl.day.isoformat(),
            "balance": view.balance, "equity": round(equity, 2), "floor": round(fl, 2),
            "distance_to_floor": round(equity - fl, 2), "buffer": c.mll_buffer,
            "high_water": b.high_water, "sod_balance": b.sod_balance,
            "day_pnl": round(equity - self._sod(view), 2), "daily_loss_limit": c.daily_loss_limit,
            "lots_used": round(self.exposure(self.net(view), view.orders), 2),
            "lots_allowed": self.max_lots(), "micro_weight": c.micro_weight,
            "contracts_today": b.contracts_today, "daily_contracts": c.daily_contracts,
            "state": state, "reason": reason, "rule": rule, "manual_halt": b.manual_halt,
            "next_deadline": {"name": name, "at_ms": at, "ct": _ct(at),
                              "in_s": round((at - now_ms) / 1000.0, 1)},
            "rejections": b.rejections, "blind": sorted(self.blind(view)),
            "strategies": {o: {"day_pnl": round(self.owner_pnl(view, o), 2),
                               "lots_used": round(self.exposure(self.net(view, o),
                                                                view.working(owner=o)), 2),
                               "halted": b.owner_halts.get(o)} for o in owners},
            "consistency": {"best_day": max(pnls, default=0.0), "total_profit": total,
                            "best_day_share": (max(pnls) / total) if pnls and total > 0
                            else None},
        }


def _suspended(o: WorkingOrder, ids: set[int]) -> bool:
    """A bracket child whose entry is still working or whose fill is not yet in the position
    (negative id): it cannot fill yet."""
    return o.parent_id is not None and (o.parent_id in ids or -o.parent_id in ids)


def _orphan(o: WorkingOrder, net: dict[str, int], ids: set[int]) -> int:
    """How much of a bracket or protective leg could open or add to a position on its own: 0
    while its entry is working or its fill is not yet in the position (negative id), else the
    part beyond the position it would close (all of it when flat or on the same side)."""
    if _suspended(o, ids):
        return 0
    n = net.get(o.contract, 0)
    if n == 0 or (n > 0) == (o.side == BUY):
        return o.remaining
    return max(0, o.remaining - abs(n))


def _exits(o: WorkingOrder, net: dict[str, int]) -> bool:
    """A working order that only reduces the account's current position."""
    n = net.get(o.contract, 0)
    return n != 0 and (n > 0) != (o.side == BUY) and o.remaining <= abs(n)


def _allowed(contract: str, root: str, limits: StrategyLimits) -> bool:
    allowed = limits.contracts or frozenset()
    return contract in allowed or root in allowed or \
        any(products.symbol_of(a) == root for a in allowed)


def _ct(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000.0, tz=CHICAGO).strftime("%a %H:%M")
