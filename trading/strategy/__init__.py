"""A strategy without its host: the author's API (`api`), one instance's definition
(`instance`) and the engine that drives one strategy from events (`engine`). The strategy host
drives it from the bus, a backtest from stored bars; the strategy class is the same in both."""
