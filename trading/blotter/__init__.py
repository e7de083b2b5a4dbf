"""The blotter: the one owner of what the gateway knows of its account (pure: no I/O, no clock).

Venue reports go in (orders, trades, positions, the account: from the user hub or a REST read,
already decoded into the plain reports below), typed changes come out (what changed, for the
gateway to journal, publish and act on), and `view(now_ms)` builds the picture the risk gate
judges. Time is always given by the caller.

The gate's view counts every order that may still fill, not only the venue's working orders:
- intents in flight: passed the gate, not yet a venue order (`judged`), and intents whose
  place call had no clear answer (status `sending`) while they are resolved by tag;
- fills not yet in a position: the venue reports an order's fill before the Position event
  that includes it; such a fill is counted as a working order until a position report for
  its contract arrives, or a read of every position begun after it answers (however late).

A read of the venue's positions, orders or account (REST) is a snapshot taken when the read
began: it is never applied over a contract whose fill, trade or position event, an order whose
report, or an account whose event arrived after that (it is older than what is known: a
phantom position, a working order taken back to an earlier size or price, a balance from
before a loss). Realized P&L (the account's and each owner's) rolls at the trading
day's start (17:00 CT, chillly/calendar.py), from the time given.

The blotter's parts are one module each, on `BlotterState` (state.py): the intent ledger
(intents.py), order reports (orders.py), positions, P&L and the account (positions.py), the
cancel refusals of accounts that cannot cancel (cancel_refusals.py), the gate's view
(gate_view.py); the reports in and changes out are records (reports.py). `Blotter` is defined
here, so the gateway's many `from trading.blotter import Blotter` name the whole blotter.
"""

from __future__ import annotations

from dataclasses import dataclass

from trading.blotter.cancel_refusals import CancelRefusals
from trading.blotter.gate_view import GateView
from trading.blotter.intents import IntentLedger
from trading.blotter.orders import OrderReports
from trading.blotter.positions import PositionReports


@dataclass
class Blotter(IntentLedger, OrderReports, PositionReports, CancelRefusals, GateView):
    """What the gateway knows of one account: intents, orders, fills, positions, the account's
    balance and trading state, and what the gate has let through but the venue does not show
    yet."""


__all__ = ["Blotter"]
