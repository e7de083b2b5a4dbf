"""Backtest speed and memory, every figure beside its baselines measured in the same run.

    .venv/bin/python bench/backtest.py [--bars 340000] [--grid-bars 85000] [--skip-nautilus]

- A year of synthetic 1m bars of one contract (ES, open CME minutes only, a seeded walk).
- Two strategies: one that does nothing, and an SMA cross (10/30) with market orders (long or
  short one contract, reversing on every cross), written once for our engine.
- Baselines: a bare Python loop running the same SMA logic over the same rows (no engine: the
  floor any Python engine pays), and NautilusTrader's `BacktestEngine` with the same two
  strategies on the same bars, bar execution on (the optional extra `bench`:
  `pip install -e '.[bench]'`; skipped with the reason printed when it cannot be imported).
- A 16-run grid (4 fast x 4 slow SMA windows over `--grid-bars` bars from a real database
  through `backtest.sweep`) on one process and on two.
- Peak memory (max RSS) of `chillly backtest` over the year from a database, in a child.

Targets (issue 19): >= 3x NautilusTrader's bars/s on both strategies; the 16-run grid on 2
cores >= 1.7x one core; peak memory for the year <= 200 MB. The machine is shared: the load
average is printed with the figures.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from chillly.calendar import is_market_open  # noqa: E402
from trading.strategy.api import Bar, Config, Strategy  # noqa: E402

CONTRACT = "CON.F.US.EP.H26"
START = 1_735_711_200_000       # 2025-01-01 06:00 UTC


class Params(Config):
    fast: int = 10
    slow: int = 30


class DoNothing(Strategy):
    Config = Params

    def on_bar(self, bar: Bar) -> None:
        pass


class SmaCross(Strategy):
    """Long one contract while SMA(fast) > SMA(slow), short while below; market orders."""

    Config = Params

    def on_start(self) -> None:
        self.win: deque[float] = deque(maxlen=self.config.slow)
        self.sf = self.ss = 0.0
        self.prev: bool | None = None
        self.pos = 0

    def on_bar(self, bar: Bar) -> None:
        fast, slow = self.config.fast, self.config.slow
        w = self.win
        c = bar.c
        if len(w) == slow:
            self.ss -= w[0]
        if len(w) >= fast:
            self.sf -= w[-fast]
        w.append(c)
        self.sf += c
        self.ss += c
        if len(w) < slow:
            return
        above = self.sf / fast > self.ss / slow
        if self.prev is not None and above != self.prev:
            target = 1 if above else -1
            qty = target - self.pos
            if qty > 0:
                self.buy(qty)
            else:
                self.sell(-qty)
            self.pos = target
        self.prev = above


def year_of_bars(n: int, seed: int = 19) -> list[tuple[int, float, float, float, float, int]]:
    rng = random.Random(seed)
    out = []
    t, price = START - 60_000, 6000.0
    choice = rng.choice
    steps = (-0.5, -0.25, 0.0, 0.25, 0.5)
    while len(out) < n:
        t += 60_000
        if not is_market_open(t):
            continue
        a = price + choice(steps)
        b = a + choice(steps)
        c = b + choice(steps)
        out.append((t, price, max(price, a, b, c), min(price, a, b, c), c, rng.randint(1, 900)))
        price = c
    return out


def bare_loop(rows: list, fast: int = 10, slow: int = 30) -> int:
    """The same SMA logic with no engine: the floor any Python engine pays."""
    win: deque[float] = deque(maxlen=slow)
    sf = ss = 0.0
    prev = None
    pos = orders = traded = 0
    for r in rows:
        c = r[4]
        if len(win) == slow:
            ss -= win[0]
        if len(win) >= fast:
            sf -= win[-fast]
        win.append(c)
        sf += c
        ss += c
        if len(win) < slow:
            continue
        above = sf / fast > ss / slow
        if prev is not None and above != prev:
            target = 1 if above else -1
            traded += abs(target - pos)
            pos, orders = target, orders + 1
        prev = above
    return orders if traded else 0


def ours(cls: type, rows: list, gate: bool) -> tuple[float, float, int, int]:
    """(cpu seconds, wall seconds, orders sent, orders the gate refused)."""
    from tests.unit.backtest.rig import run

    bars = [(CONTRACT, r) for r in rows]
    c, w = time.process_time(), time.perf_counter()
    _, out = run(cls, bars, slippage=1, size="150k", gate=gate)
    return (time.process_time() - c, time.perf_counter() - w, out.orders_sent,
            len(out.refusals))


def nautilus(rows: list) -> Any:
    """NautilusTrader's BacktestEngine over the same bars: a function kind -> (cpu seconds,
    wall seconds, orders), or why it cannot run (a string)."""
    try:
        from nautilus_trader.backtest.engine import BacktestEngine, BacktestEngineConfig
        from nautilus_trader.config import LoggingConfig, StrategyConfig
        from nautilus_trader.model.currencies import USD
        from nautilus_trader.model.data import Bar as NBar, BarType
        from nautilus_trader.model.enums import AccountType, OmsType, OrderSide
        from nautilus_trader.model.identifiers import TraderId, Venue
        from nautilus_trader.model.objects import Money, Price, Quantity
        from nautilus_trader.test_kit.providers import TestInstrumentProvider
        from nautilus_trader.trading.strategy import Strategy as NStrategy
    except ImportError as exc:
        return f"not installed ({exc.name}): pip install -e '.[bench]' (nautilus_trader 1.221)"

    class Cfg(StrategyConfig, frozen=True):  # type: ignore[call-arg]
        bar_type: str
        fast: int = 10
        slow: int = 30

    class NNothing(NStrategy):
        def __init__(self, config: Cfg) -> None:
            super().__init__(config)
            self.bar_type = BarType.from_str(config.bar_type)

        def on_start(self) -> None:
            self.subscribe_bars(self.bar_type)

        def on_bar(self, bar: NBar) -> None:
            pass

    class NSma(NNothing):
        def on_start(self) -> None:
            super().on_start()
            self.win: deque[float] = deque(maxlen=self.config.slow)
            self.sf = self.ss = 0.0
            self.prev: bool | None = None
            self.pos = 0
            self.orders = 0

        def on_bar(self, bar: NBar) -> None:
            fast, slow = self.config.fast, self.config.slow
            w = self.win
            c = bar.close.as_double()
            if len(w) == slow:
                self.ss -= w[0]
            if len(w) >= fast:
                self.sf -= w[-fast]
            w.append(c)
            self.sf += c
            self.ss += c
            if len(w) < slow:
                return
            above = self.sf / fast > self.ss / slow
            if self.prev is not None and above != self.prev:
                target = 1 if above else -1
                qty = target - self.pos
                order = self.order_factory.market(self.bar_type.instrument_id,
                                                  OrderSide.BUY if qty > 0 else OrderSide.SELL,
                                                  Quantity.from_int(abs(qty)))
                self.submit_order(order)
                self.orders += 1
                self.pos = target
            self.prev = above

    venue = Venue("GLBX")
    inst = TestInstrumentProvider.es_future(2026, 3, venue)
    bar_type = BarType.from_str(f"{inst.id}-1-MINUTE-LAST-EXTERNAL")
    px = Price.from_str
    bars = [NBar(bar_type, px(f"{r[1]:.2f}"), px(f"{r[2]:.2f}"), px(f"{r[3]:.2f}"),
                 px(f"{r[4]:.2f}"), Quantity.from_int(r[5]), (r[0] + 60_000) * 1_000_000,
                 (r[0] + 60_000) * 1_000_000) for r in rows]

    def once(kind: str) -> tuple[float, float, int]:
        engine = BacktestEngine(BacktestEngineConfig(trader_id=TraderId("BENCH-001"),
                                                     logging=LoggingConfig(bypass_logging=True)))
        engine.add_venue(venue=venue, oms_type=OmsType.NETTING, account_type=AccountType.MARGIN,
                         base_currency=USD, starting_balances=[Money(10_000_000, USD)],
                         bar_execution=True)
        engine.add_instrument(inst)
        engine.add_data(bars)
        strat = (NSma if kind == "sma" else NNothing)(Cfg(bar_type=str(bar_type)))
        engine.add_strategy(strat)
        c, w = time.process_time(), time.perf_counter()
        engine.run()
        cpu, wall = time.process_time() - c, time.perf_counter() - w
        orders = getattr(strat, "orders", 0)
        engine.dispose()
        return cpu, wall, orders
    return once


def _timed(fn: Any) -> tuple[float, Any]:
    c = time.process_time()
    out = fn()
    return time.process_time() - c, out


def write_db(rows: list, path: Path) -> None:
    from store.db import open_writer
    from store.writer import UPSERT_BAR

    conn = open_writer(path)
    conn.execute("BEGIN")
    conn.executemany(UPSERT_BAR, [(CONTRACT, "1m", *r, 1, 0, "bench", 0) for r in rows])
    conn.execute("COMMIT")
    conn.close()


def grid(db: Path, bars: list, jobs: int) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the runs) of the 16-run grid on `jobs` processes."""
    from backtest.cli import Job
    from backtest.sweep import run_all

    job = Job("bench/backtest.py:SmaCross", ROOT / "strategies.toml", db, bars[0][0],
              bars[-1][0] + 60_000, "ES", "1m", (), "combine", "150k", 1, "through", 0, 1)
    cpu0 = time.process_time() + _children_cpu()
    t = time.perf_counter()
    rows = run_all(job, {"fast": [5, 8, 10, 12], "slow": [20, 30, 40, 50]}, jobs)
    dt = time.perf_counter() - t
    cpu = time.process_time() + _children_cpu() - cpu0
    bad = [r for _, r in rows if "error" in r]
    assert not bad, bad[0]
    return dt, cpu


def _children_cpu() -> float:
    import resource
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def peak_memory(db: Path) -> tuple[float, str]:
    """Max RSS (MB) of `chillly backtest` over the whole database, in a child process."""
    env = {**os.environ, "DATABASE_PATH": str(db)}
    # VmHWM of the child itself (ru_maxrss would carry the forking parent's peak over exec).
    code = ("import sys; from chillly.cli import main\n"
            "sys.argv = ['chillly', 'backtest', 'bench/backtest.py:SmaCross', '--size', '150k',"
            " '--json']\ntry:\n    main()\nexcept SystemExit as e:\n    rc = e.code\n"
            "hwm = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
            "print('MAXRSS', hwm.split()[1], file=sys.stderr)\n")
    p = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                       text=True)
    for line in p.stderr.splitlines():
        if line.startswith("MAXRSS "):
            return int(line.split()[1]) / 1024, ""
    return -1.0, p.stderr.strip()[-300:]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=340_000)
    ap.add_argument("--grid-bars", type=int, default=85_000)
    ap.add_argument("--skip-nautilus", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each, the best counts")
    ns = ap.parse_args()
    logging.getLogger("strategy").setLevel(logging.ERROR)   # as chillly backtest: no per-refusal
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    rows = year_of_bars(ns.bars)
    n = len(rows)
    print(f"{n} synthetic 1m bars of ES, {rows[0][0]} .. {rows[-1][0]}")

    # CPU seconds of this process (the machine is shared: wall time counts other users' load),
    # best of --repeat runs, ours and NautilusTrader's alternating.
    bare = min(_timed(lambda: bare_loop(rows))[0] for _ in range(ns.repeat))
    bare_orders = bare_loop(rows)
    print(f"bare loop, SMA 10/30:           {n / bare:>10,.0f} bars/s  {bare / n * 1e6:6.2f} "
          f"us/bar  {bare_orders} orders")
    naut = "skipped (--skip-nautilus)" if ns.skip_nautilus else nautilus(rows)
    for kind, cls in (("nothing", DoNothing), ("sma", SmaCross)):
        runs = []
        nruns = []
        for _ in range(ns.repeat):
            runs.append(ours(cls, rows, gate=False))
            if not isinstance(naut, str):
                nruns.append(naut(kind))
        cpu, wall, orders, _ = min(runs)
        extra = f"  {(cpu - bare) / n * 1e6:+6.2f} us/bar over the bare loop" \
            if kind == "sma" else ""
        print(f"chillly backtest {kind:7} (no gate): {n / cpu:>10,.0f} bars/s  "
              f"{cpu / n * 1e6:6.2f} us/bar  {orders} orders  (wall {wall:.1f}s){extra}")
        if isinstance(naut, str):
            print(f"NautilusTrader {kind:7}: skipped: {naut}")
        else:
            ncpu, nwall, norders = min(nruns)
            print(f"NautilusTrader {kind:7}:            {n / ncpu:>10,.0f} bars/s  "
                  f"{ncpu / n * 1e6:6.2f} us/bar  {norders} orders  (wall {nwall:.1f}s); "
                  f"ours is {ncpu / cpu:.2f}x (target >= 3x)")
        cpu, wall, orders, refused = ours(cls, rows, gate=True)
        print(f"chillly backtest {kind:7} (gate):    {n / cpu:>10,.0f} bars/s  "
              f"{cpu / n * 1e6:6.2f} us/bar  {orders} orders, {refused} refused by the gate")
    del naut        # NautilusTrader's bars out of memory before the grid forks its workers
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "market.db"
        write_db(rows, db)
        sub = rows[:ns.grid_bars]
        one, one_cpu = grid(db, sub, 1)
        two, two_cpu = grid(db, sub, 2)
        print(f"16-run grid over {len(sub)} bars (wall): 1 process {one:.1f}s, 2 processes "
              f"{two:.1f}s: {one / two:.2f}x (target >= 1.7x); load average "
              f"{os.getloadavg()[0]:.2f}; CPU of the 16 runs {one_cpu:.1f}s on 1, "
              f"{two_cpu:.1f}s on 2 (the same work: no shared state between runs)")
        mb, err = peak_memory(db)
        print(f"peak memory, chillly backtest over the {n} bars: "
              + (f"{mb:.0f} MB (target <= 200 MB)" if mb >= 0 else f"failed: {err}"))
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
