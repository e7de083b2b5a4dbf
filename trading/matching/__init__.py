"""The matching rules: how an order fills against a price path (the sim's prints, a backtest's bars)."""
