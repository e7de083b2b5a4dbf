"""EMA crossover with a bracket: long when the fast EMA crosses above the slow one, short when
it crosses below; every entry carries a stop-loss and a take-profit (ticks), placed by the
gateway as the entry's bracket children. One position at a time."""

from pydantic import Field

from strategy_host.api import Bar, Config, Strategy


class Params(Config):
    fast: int = Field(9, ge=1)
    slow: int = Field(21, ge=2)
    size: int = Field(1, ge=1)
    sl_ticks: int = Field(8, ge=1)
    tp_ticks: int = Field(16, ge=1)


def ema(values: list[float], n: int) -> float:
    k, e = 2 / (n + 1), values[0]
    for v in values[1:]:
        e = v * k + e * (1 - k)
    return e


class EmaCross(Strategy):
    Config = Params

    def on_bar(self, bar: Bar) -> None:
        p = self.config
        closes = [b.c for b in self.bars(n=p.slow * 3)]
        if len(closes) < p.slow + 1:
            return
        was = ema(closes[:-1], p.fast) - ema(closes[:-1], p.slow)
        now = ema(closes, p.fast) - ema(closes, p.slow)
        if not self.position().flat or self.open_orders():
            return
        if was <= 0 < now:
            self.buy(p.size, sl=p.sl_ticks, tp=p.tp_ticks)
        elif was >= 0 > now:
            self.sell(p.size, sl=p.sl_ticks, tp=p.tp_ticks)
