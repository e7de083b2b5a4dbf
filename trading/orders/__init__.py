"""Orders: the typed records of what was asked and what the venue holds, and the order state
machine that decides which venue report may follow which.

- `records`: `IntentRecord` (an order the gateway asked for, journaled before it is sent),
  `OrderRecord` (a venue order as the gateway knows it), `FillRecord` (one venue half-trade).
- `machine`: the venue's statuses mapped onto the gateway's states, the transitions allowed,
  and the fill ledger (a trade id counted once).
- `requests`: a command's fields checked, and what reaches the gate (`build_intent`).
- `views`: how the trader's tools show orders (a bracket's legs waiting for their entry, the
  day's refusals).
"""
