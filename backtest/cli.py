"""`chillly backtest INSTANCE|CLASS [--from D] [--to D] [--data PATH] [--program P] [--size S]
[--param k=v ...] [--grid k=a,b,c ...] [--json] [--report DIR] [--slippage N]
[--limit-fill through|touch] [--mc N] [--seed N]` (docs/backtest.md).

Exit codes: 0 the run finished (whatever the verdict), 2 bad input: one line naming it (an
unknown instance, class or parameter, a range with no data and the range that exists).
"""

from __future__ import annotations

import argparse
import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chillly.settings import Settings, load_settings
from trading.matching.bar_path import LIMIT_FILLS, FillRules
from trading.risk.programs import PROGRAMS, SIZES

from backtest.data import DataError, History, day_ms, load
from backtest.run import LookAhead, Run
from backtest.setup import Setup, SetupError, build, instance_of, pairs, parse_value
from backtest.summary import Summary, summarize, text


@dataclass(frozen=True)
class Job:
    """Everything one run needs, picklable (a sweep sends these to worker processes)."""

    target: str
    strategies_file: Path
    db: Path
    start_ms: int
    end_ms: int
    contract: str
    timeframe: str
    params: tuple[tuple[str, Any], ...]
    program: str
    size: str
    slippage: int
    limit_fill: str
    mc: int
    seed: int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", metavar="INSTANCE|CLASS",
                   help="an instance of strategies.toml, or a class (package.module:Class)")
    p.add_argument("--from", dest="start", default=None, help="first trading day (YYYY-MM-DD)")
    p.add_argument("--to", dest="end", default=None, help="last trading day (YYYY-MM-DD)")
    p.add_argument("--data", type=Path, default=None,
                   help="the market database (default DATABASE_PATH)")
    p.add_argument("--program", choices=PROGRAMS, default="combine")
    p.add_argument("--size", choices=SIZES, default="50k")
    p.add_argument("--param", action="append", default=[], metavar="k=v",
                   help="a strategy parameter (over the instance's)")
    p.add_argument("--grid", action="append", default=[], metavar="k=a,b,c",
                   help="sweep a parameter over values (every combination, all cores)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--report", type=Path, default=None, metavar="DIR",
                   help="write DIR/index.html, DIR/report.json, trades.csv, refusals.csv")
    p.add_argument("--slippage", type=int, default=1, help="ticks on market and stop fills")
    p.add_argument("--limit-fill", choices=LIMIT_FILLS, default="through",
                   help="limits fill when the path trades through them (default) or touches")
    p.add_argument("--mc", type=int, default=0, metavar="N",
                   help="Monte Carlo of day orderings: N runs (Combine)")
    p.add_argument("--seed", type=int, default=1, help="the Monte Carlo's seed")
    p.add_argument("--contract", default="ES", help="for a CLASS: the contract (default ES)")
    p.add_argument("--timeframe", default="1m", help="for a CLASS: the timeframe (default 1m)")
    p.add_argument("--jobs", type=int, default=None, help="sweep processes (default: cores)")


def code_version() -> str:
    """`git describe` of the checkout, else the package's version."""
    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty", "--tags"],
                             cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            return "git " + out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    from importlib.metadata import PackageNotFoundError, version
    try:
        return "chillly " + version("chillly")
    except PackageNotFoundError:
        return "unknown"


def prepare(job: Job) -> tuple[Setup, History]:
    where = job.strategies_file
    inst = instance_of(job.target, where, job.contract, job.timeframe)
    setup = build(inst, where.resolve().parent, where, dict(job.params), job.program, job.size)
    hist = load(job.db, list(setup.instance.contracts), list(setup.instance.timeframes),
                setup.instance.warmup, job.start_ms, job.end_ms)
    return setup, hist


def execute(job: Job, setup: Setup, hist: History, progress: Any = None,
            version: str = "") -> tuple[Summary, Any]:
    inst = setup.instance.model_copy(update={"contracts": [hist.contracts[c] for c in
                                                           setup.instance.contracts]})
    rules = {cid: FillRules(tick=_tick(cid), slippage=job.slippage, limit_fill=job.limit_fill)
             for cid in inst.contracts}
    from backtest.gate import BacktestGate
    gate = BacktestGate(job.program, job.size, inst.name, inst.limits)
    run = Run(inst, setup.strategy_cls, setup.config, setup.program, rules, gate=gate)
    warm = run.warm(hist.warmup)
    out = run.go(hist.bars, hist.start_ms, progress)
    out.warmup_bars = warm
    fills = (f"bar path (open, nearer extreme, other, close); market and stop fills "
             f"{job.slippage} tick(s) worse; limits {job.limit_fill}; stop-loss first when a bar "
             f"reaches both legs; on_quote/on_trade get the path's 4 prints per bar")
    s = summarize(setup, hist.contracts, hist.first, hist.last, hist.digest, out, fills, job.mc,
                  job.seed, version)
    return s, out


def _tick(contract: str) -> float:
    from backtest.book import Spec
    return Spec.of(contract).tick_size


def progress_bar(start: float) -> Any:
    """A progress bar on stderr (only on a terminal)."""
    if not sys.stderr.isatty():
        return None

    def show(i: int, total: int) -> None:
        frac = i / total if total else 1.0
        n = int(frac * 30)
        sys.stderr.write(f"\r[{'#' * n}{'.' * (30 - n)}] {frac * 100:5.1f}%  {i}/{total} bars"
                         f"  {time.monotonic() - start:5.1f}s")
        if i >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def cli(ns: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    # The strategy's log: its errors (a hook that raised) on stderr; the engine's notes on each
    # refused order would drown the summary, and the refusals are in the report with their rule.
    logging.getLogger("strategy").setLevel(logging.ERROR)
    try:
        params = {k: parse_value(v) for k, v in pairs(ns.param, "--param").items()}
        grid = {k: [parse_value(x) for x in v.split(",") if x != ""]
                for k, v in pairs(ns.grid, "--grid").items()}
        start = day_ms(ns.start) if ns.start else 0
        end = day_ms(ns.end, end=True) if ns.end else 2**62
        if ns.slippage < 0:
            raise SetupError("--slippage: expected ticks >= 0")
    except (SetupError, ValueError) as exc:
        print(f"chillly backtest: {exc}", file=sys.stderr)
        return 2
    job = Job(ns.target, settings.strategies_file, ns.data or settings.database_path, start,
              end, ns.contract, ns.timeframe, tuple(sorted(params.items())), ns.program,
              ns.size, ns.slippage, ns.limit_fill, ns.mc, ns.seed)
    if grid:
        from backtest.sweep import sweep
        return sweep(job, grid, ns)
    try:
        setup, hist = prepare(job)
    except (SetupError, DataError) as exc:
        print(f"chillly backtest: {exc}", file=sys.stderr)
        return 2
    version = code_version()
    try:
        summary, out = execute(job, setup, hist,
                               None if ns.json else progress_bar(time.monotonic()), version)
    except LookAhead as exc:
        print(f"chillly backtest: the run is void, the strategy saw ahead: {exc}",
              file=sys.stderr)
        return 1
    if ns.report is not None:
        from backtest.report import write_report
        write_report(ns.report, summary, out, hist)
    if ns.json:
        print(json.dumps(summary.to_json(), indent=2))
    else:
        print(text(summary))
        if ns.report is not None:
            print(f"  report: {ns.report / 'index.html'}")
    return 0
