"""The sim's referee: the rule state of every sim account and every breach seen, kept by the
pure judge in trading/referee/judge.py (shared with a backtest's verdict)."""

from trading.referee.judge import Breach, Referee, RiskState, fresh_state

__all__ = ["Breach", "Referee", "RiskState", "fresh_state"]
