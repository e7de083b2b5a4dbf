"""The backtest: a strategy class, unchanged, over stored bars, judged by Topstep's rules
(docs/backtest.md)."""
