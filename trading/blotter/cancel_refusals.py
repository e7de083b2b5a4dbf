"""Accounts whose orders the venue will not cancel (live and follower accounts, errorCode 6):
what the gateway must then refuse to place, because nothing could withdraw it later.
"""

from __future__ import annotations

from trading.orders.leg_close import cover as leg_cover
from trading.venue_codes import CANCEL_UNSUPPORTED, Side
from trading.blotter.state import BlotterState


class CancelRefusals(BlotterState):
    """Learning that cancels are refused, and the orders that are then refused."""

    def cancel_refused(self, code: int | None) -> bool:
        """A cancel the venue refused: errorCode 6 ("Live accounts not supported", "Follower
        accounts cannot cancel orders") says this account's orders can never be withdrawn.
        True the first time it is learnt."""
        if code != CANCEL_UNSUPPORTED or not self.book.can_cancel:
            return False
        self.book.can_cancel = False
        return True

    def resting_refusal(self, order_type: str, parent_id: int | None) -> str | None:
        """Why an order may not be placed on this account, or None. Where the venue refuses
        every cancel, an entry that rests (not market) could never be withdrawn: by a flatten,
        a halt, the gate or the trader; it could open a position at any later time."""
        if self.book.can_cancel or order_type == "market" or parent_id is not None:
            return None
        return ("this account cannot cancel orders at the venue (a live or follower account: "
                "Order/cancel errorCode 6), so a resting entry could never be withdrawn; "
                "only market entries are taken")

    def bracket_refusal(self, bracketed: bool, managed: bool) -> str | None:
        """Why a bracketed entry may not be placed, or None. Where the venue refuses every
        cancel, only its own OCO bracket (Auto OCO Brackets) removes a leg when its sibling
        fills or is fired by a flatten (trading/orders/leg_close.py); the gateway's managed
        pair, two separate orders, would leave the sibling working on a flat position."""
        if self.book.can_cancel or not bracketed or not managed:
            return None
        return ("this account cannot cancel orders at the venue (Order/cancel errorCode 6), so "
                "a bracket must be the venue's own OCO: set the account's bracket mode to Auto "
                "OCO Brackets (and GATEWAY_BRACKET_MODE=auto); the gateway's managed legs "
                "could not be withdrawn")

    def reduce_refusal(self, contract: str, side: int, size: int,
                       parent_id: int | None) -> str | None:
        """Why a reducing order may not be placed, or None. Where no order can be cancelled,
        an order that closes lots the position's legs protect would leave those legs working
        beyond the position (free to open one later): such a close goes through `flatten`,
        which closes through the legs themselves."""
        if self.book.can_cancel or parent_id is not None:
            return None
        net = self.expected_net(contract)
        sign = Side(side).sign
        if net == 0 or (net > 0) == (sign > 0):
            return None
        after = max(0, abs(net) - size)
        covered = leg_cover(self.working(contract), contract, side)
        if covered <= after:
            return None
        return (f"this account cannot cancel orders at the venue, and this order would leave "
                f"{covered} lots of stop-loss/take-profit working against a position of "
                f"{after}: close it with flatten, which closes through those legs")
