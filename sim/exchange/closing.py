"""Position/closeContract and Position/partialCloseContract in the sim's trading engine.

A close is a market order of the closing side, filled at once like any other; bracket legs are
left alone, as the live venue does. Flattening an account (liquidation in enforcement.py, an
account reset in sim/exchange/resets.py) cancels its working orders and closes the same way.
"""

from __future__ import annotations

from sim.exchange.accounts import Account
from sim.market.contracts import SimContract
from sim.exchange.state import EngineState, closing_side
from sim.exchange.wire import MARKET, PENDING, WORKING, Order, Position, TradingError


class Closing(EngineState):
    """Closing positions at market."""

    def close_position(self, account_id: int, contract_id: str) -> None:
        """Market-close the whole position. Leaves bracket legs alone, as the live venue does."""
        pos, contract = self._position_for_close(account_id, contract_id)
        now = self.clock.now_ms()
        if not self.market.is_open(now) or self.prices.market_price(
                contract, closing_side(pos)) is None:
            raise TradingError(5, None)
        self._market_close(pos, contract, pos.size, now)

    def partial_close(self, account_id: int, contract_id: str, size: int) -> None:
        pos, contract = self._position_for_close(account_id, contract_id)
        if size < 1 or size > pos.size:
            raise TradingError(5, f"Invalid close size ({size}); the position has {pos.size}.")
        now = self.clock.now_ms()
        if not self.market.is_open(now) or self.prices.market_price(
                contract, closing_side(pos)) is None:
            raise TradingError(6, None)
        self._market_close(pos, contract, size, now)

    def _position_for_close(self, account_id: int, contract_id: str
                            ) -> tuple[Position, SimContract]:
        if account_id not in self._accounts:
            raise TradingError(1, "Account not found.")
        contract = self.catalogue.get(contract_id) if contract_id else None
        if contract is None:
            raise TradingError(3, f"Contract {contract_id!r} was not found.")
        pos = self.book.position(account_id, contract.id)
        if pos is None:
            raise TradingError(2, f"No open position in {contract.id}.")
        return pos, contract

    def _market_close(self, pos: Position, contract: SimContract, size: int, now: int) -> None:
        order = Order(id=self._new_order_id(), account_id=pos.account_id, contract_id=contract.id,
                      symbol_id=contract.symbol_id, created_ms=now, updated_ms=now,
                      status=PENDING, type=MARKET, side=closing_side(pos), size=size,
                      contract=contract)
        self._store(order)
        self._emit_order(order)
        self._activate(order, now)
        self._after(now)
        self._flush()

    def _flatten(self, account: Account, now: int) -> None:
        """Cancel every working order of the account and close every position at market that
        can be (the market open, a price to close at)."""
        for order in list(self._by_account[account.id]):
            if order.status in WORKING:
                self._cancel(order, now)
        for pos in self.book.open_positions(account.id):
            contract = pos.contract
            if self.market.is_open(now) and self.prices.market_price(
                    contract, closing_side(pos)) is not None:
                self._market_close(pos, contract, pos.size, now)
