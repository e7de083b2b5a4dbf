"""Positions, P&L and the account: trades taken once into the book and each owner's share,
the venue's positions and account (a REST read refused where an event arrived after it began),
and what a flatten sends so a position is never reversed.
"""

from __future__ import annotations

from trading.orders.records import EXTERNAL, FillRecord
from trading.blotter.reports import AccountReport, PositionReport, TradeReport, TradeTaken
from trading.blotter.state import BlotterState


class PositionReports(BlotterState):
    """Trades, positions and the account applied; the shares a flatten closes."""

    def trade_is_new(self, t: TradeReport) -> bool:
        """A trade of this account not taken yet (the caller may fetch its contract first)."""
        return t.account_id in (None, self.account_id) and t.order_id is not None \
            and t.trade_id not in self.ledger.seen

    def apply_trade(self, t: TradeReport, now_ms: int, day_start_ms: int) -> TradeTaken | None:
        """One half-trade, taken once: today's ones go into P&L and the owner's share.
        None: another account's, or a repeat (counted)."""
        if t.account_id not in (None, self.account_id) or t.order_id is None:
            return None
        if not self.ledger.add(t.trade_id):
            return None
        order = self.orders.get(t.order_id)
        fill = FillRecord(
            trade_id=t.trade_id, account=self.account_id, order_id=t.order_id,
            owner=order.owner if order else EXTERNAL, client_id=order.client_id if order else None,
            contract=t.contract or "", side=t.side or 0, size=t.size or 0,
            price=float(t.price or 0.0), fees=t.fees, pnl=t.pnl, vt=t.created_ms, at_ms=now_ms,
            voided=t.voided)
        own = None
        if fill.contract:
            self._touch(fill.contract)
        self.book.roll(day_start_ms)
        if t.created_ms is None or t.created_ms >= day_start_ms:
            own = self.book.add_trade(fill.contract, fill.owner, fill.side, fill.size,
                                      fill.price, fill.fees, fill.pnl, fill.voided)
            if order is None and not t.voided:
                self._orphans.setdefault(t.order_id, []).append(fill)
        return TradeTaken(fill, own)

    def replay_fill(self, f: FillRecord, day_start_ms: int) -> None:
        """A journaled fill at start: today's go into P&L and the owner's share."""
        self.book.roll(day_start_ms)
        if (f.vt or f.at_ms) >= day_start_ms:
            self.book.add_trade(f.contract, f.owner, f.side, f.size, f.price, f.fees, f.pnl)

    def apply_position(self, p: PositionReport, read_mark: int | None = None) -> bool:
        """The venue's position of a contract (which includes every fill reported before it).
        True if it changed. `read_mark`: the report comes from a read of every position begun
        at that mark (`read_started`); it is refused (counted in `stale_positions`)
        when a fill, trade or position event of the contract arrived since: it is older."""
        if p.account_id not in (None, self.account_id) or not p.contract:
            return False
        if read_mark is not None:
            if self._touched.get(p.contract, -1) > read_mark:
                self.stale_positions += 1
                return False
        else:
            self._unposted.pop(p.contract, None)
            self._touch(p.contract)
        return self.book.set_venue_position(p.contract, p.side or 0, p.size or 0, p.avg_price,
                                            p.created_ms)

    def read_started(self) -> int:
        """Before a REST read (of every position, or of orders): the mark its answer is applied
        with (`read_mark`), and for `position_read_done`."""
        return self._unposted_seq

    def position_read_done(self, mark: int) -> None:
        """That read has answered: the fills known before it are in its positions."""
        for c in list(self._unposted):
            self._unposted[c] = {o: u for o, u in self._unposted[c].items() if u.seq > mark}

    def flat_unless(self, held: set[str], read_mark: int | None = None) -> list[str]:
        """A read of every position listed `held`: contracts the book holds that it does not
        list are flat (returned, and set flat), unless an event of theirs arrived after the
        read began (`read_mark`)."""
        gone = [c for c in sorted(self.book.held()) if c not in held
                and (read_mark is None or self._touched.get(c, -1) <= read_mark)]
        self.stale_positions += sum(1 for c in self.book.held() if c not in held) - len(gone)
        for c in gone:
            self.book.set_venue_position(c, 0, 0, None)
        return gone

    def apply_account(self, a: AccountReport, read_mark: int | None = None) -> bool:
        """The venue's account. `read_mark`: from a read begun at that mark (`read_started`),
        refused (counted in `stale_accounts`) when an account event arrived since: a balance
        from before a fill's P&L would lift the gate's equity by that loss."""
        if a.account_id != self.account_id:
            return False
        if a.simulated is False:        # what the account is never goes stale
            self.book.can_cancel = False
        if read_mark is None:
            self._account_touched = self._next_seq()
        elif self._account_touched > read_mark:
            self.stale_accounts += 1
            return False
        if a.balance is not None:
            self.book.balance = float(a.balance)
        if a.can_trade is not None:
            self.book.can_trade = bool(a.can_trade)
        return True

    def closing_shares(self, contract: str | None, owner: str | None = None
                       ) -> list[tuple[str, str, int]]:
        """What a flatten sends now, as (owner, contract, signed qty to close): the book's
        shares (`Book.closing_shares`), never more than the contract's net once what is
        already on its way is counted (fills not yet in its position, closing market orders
        working or unresolved). Two flattens, or a flatten whose fills have not reached the
        position yet, can so never send a second close: a position is never reversed."""
        out: list[tuple[str, str, int]] = []
        targets = self.book.closing_shares(contract, owner)
        for c in sorted({t[1] for t in targets}):
            left = self.expected_net(c)
            for o, cc, q in targets:
                if cc != c or left == 0 or (q > 0) != (left > 0):
                    continue
                take = min(abs(q), abs(left)) * (1 if q > 0 else -1)
                out.append((o, c, take))
                left -= take
        return out
