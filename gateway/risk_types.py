"""Names the risk gate shares with its events and reports: rule names and contract roots.

The records it reads and returns are the gateway's seam (gateway/gate.py: `Intent`, `BookView`,
`Verdict`, the actions); this module only adds the rule names a rejection or a risk event
carries in `rule`, so a trader (and a test) can tell which limit spoke.
"""

from __future__ import annotations

from trading import products

RULE_MLL = "mll"                        # 1: maximum loss limit (floor + buffer)
RULE_MAX_POSITION = "max_position"      # 2: maximum position size
RULE_SCALING = "scaling"                # 3: XFA scaling plan tier of the day
RULE_FLAT = "flat_by"                   # 4: entry cut-off / flatten window / flat-by
RULE_DAILY_LOSS = "daily_loss"          # 5: daily loss limit
RULE_HOURS = "hours"                    # 6: outside the session
RULE_CONTRACT = "contract"              # 6: not the front month / unknown
RULE_HEDGING = "hedging"                # 7: opposite positions in one family
RULE_RATE = "order_rate"                # 8: orders per minute
RULE_DAILY_CONTRACTS = "daily_contracts"   # 8: contracts a day
RULE_HALT = "halt"                      # `chillly halt`
RULE_VENUE = "venue_lock"               # canTrade false
RULE_STRATEGY = "strategy_limit"        # a strategy's own limits (strategies.toml)
RULE_BLIND = "blind"                    # a held contract has no fresh price: equity unknown


def root_of(contract_id: str, symbol: str = "") -> str:
    """The CME symbol of a contract: the given symbol, else from the id by the product table
    (CON.F.US.EP.Z26 -> ES, CON.F.US.MCLE.Z26 -> MCL)."""
    return symbol or products.symbol_of_contract(contract_id)
