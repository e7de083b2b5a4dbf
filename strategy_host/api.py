"""The strategy API where strategies import it from (`from strategy_host.api import Strategy`).

It lives in the trading core (trading/strategy/api.py) so a backtest drives the same class the
host runs; this module re-exports it unchanged, so strategies already written keep working.
"""

from trading.strategy.api import TERMINAL, Bar, Config, Context, FillEvent, OrderEvent
from trading.strategy.api import OrderStatus, OrderType, Position, Quote, Side, Strategy, Trade

__all__ = ["TERMINAL", "Bar", "Config", "Context", "FillEvent", "OrderEvent", "OrderStatus",
           "OrderType", "Position", "Quote", "Side", "Strategy", "Trade"]
