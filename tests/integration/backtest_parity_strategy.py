"""The strategy of the backtest parity test (tests/integration/test_backtest_parity.py): an EMA
cross that is always in the market, one contract long or short, reversing with market orders.

Its orders depend on the bars alone (it keeps its own intended position instead of waiting for
the gateway's position events, which at an accelerated clock may trail a bar), so a live run
and a backtest over the same bars must send the same orders at the same bars. It logs every
bar it is handed and every order it sends, with the bar, so the test can line both runs up."""

from pydantic import Field

from trading.strategy.api import Bar, Config, Strategy


class Params(Config):
    fast: int = Field(3, ge=1)
    slow: int = Field(8, ge=2)


def ema(values: list[float], n: int) -> float:
    k, e = 2 / (n + 1), values[0]
    for v in values[1:]:
        e = v * k + e * (1 - k)
    return e


class Reversal(Strategy):
    Config = Params

    def on_start(self) -> None:
        self.pos = 0

    def on_bar(self, bar: Bar) -> None:
        self.log.info("parity bar %d", bar.t)
        p = self.config
        closes = [b.c for b in self.bars(n=p.slow * 3)]
        if len(closes) < p.slow + 1:
            return
        was = ema(closes[:-1], p.fast) - ema(closes[:-1], p.slow)
        now = ema(closes, p.fast) - ema(closes, p.slow)
        target = 1 if was <= 0 < now else -1 if was >= 0 > now else self.pos
        qty = target - self.pos
        if qty:
            cid = self.buy(qty) if qty > 0 else self.sell(-qty)
            self.log.info("parity send %s %+d at bar %d", cid, qty, bar.t)
            self.pos = target
