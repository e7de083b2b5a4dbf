"""`--grid k=a,b,c ...`: every combination of the grid's values, on all cores.

Each combination is one backtest in a worker process (a `ProcessPoolExecutor`; each worker
reads the bars itself, read-only, so nothing large crosses a pipe); the table is ranked by net
P&L, then the smaller drawdown, then the Monte Carlo pass rate, and every row prints the
command that runs it alone.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from typing import Any

import chillly
from chillly.process import die_with_parent

from backtest.cli import Job, code_version, execute, prepare
from backtest.data import DataError
from backtest.run import LookAhead
from backtest.setup import SetupError


def combinations(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = sorted(grid)
    return [dict(zip(keys, values)) for values in itertools.product(*(grid[k] for k in keys))]


def one(job: Job) -> dict[str, Any]:
    """One combination (in a worker): its summary as JSON, or its error."""
    try:
        setup, hist = prepare(job)
    except (SetupError, DataError) as exc:
        return {"error": str(exc)}
    try:
        s, _ = execute(job, setup, hist, None, "")
    except LookAhead as exc:
        return {"error": f"the run is void, the strategy saw ahead: {exc}"}
    return s.to_json()


def command(ns: argparse.Namespace, params: dict[str, Any]) -> str:
    """The command line that runs this row alone."""
    args = ["chillly", "backtest", ns.target]
    for flag, value in (("--from", ns.start), ("--to", ns.end), ("--data", ns.data)):
        if value is not None:
            args += [flag, str(value)]
    args += ["--program", ns.program, "--size", ns.size, "--slippage", str(ns.slippage),
             "--limit-fill", ns.limit_fill]
    if ":" in ns.target:
        args += ["--contract", ns.contract, "--timeframe", ns.timeframe]
    if ns.mc:
        args += ["--mc", str(ns.mc), "--seed", str(ns.seed)]
    fixed = dict(kv.split("=", 1) for kv in ns.param)
    for k, v in {**fixed, **{k: str(v) for k, v in params.items()}}.items():
        args += ["--param", f"{k}={v}"]
    return shlex.join(args)


def worker_start() -> None:
    """A sweep worker runs in its own session: a scheduler that shares the CPU by session
    (Linux autogroup, on by default) would otherwise give the whole pool one share of a busy
    machine, as if it were one process. It dies with the sweep (a Ctrl-C stops the parent,
    whose death sends the worker SIGTERM), as it no longer gets the terminal's signals."""
    os.setsid()
    chillly.PARENT_PID = os.getppid()   # the sweep, not the shell that started it
    die_with_parent()


def run_all(job: Job, grid: dict[str, list[Any]], jobs: int) -> list[tuple[dict[str, Any],
                                                                           dict[str, Any]]]:
    combos = combinations(grid)
    base = dict(job.params)
    work = [replace(job, params=tuple(sorted({**base, **c}.items()))) for c in combos]
    if jobs <= 1:
        results = [one(w) for w in work]
    else:
        with ProcessPoolExecutor(max_workers=jobs, initializer=worker_start) as pool:
            results = list(pool.map(one, work))
    return list(zip(combos, results))


def rank_key(r: dict[str, Any]) -> tuple[float, float, float]:
    mc = (r.get("verdict") or {}).get("monte_carlo") or {}
    return (-r.get("net_pnl", float("-inf")), r.get("max_drawdown", float("inf")),
            -mc.get("pass_rate", 0.0))


def sweep(job: Job, grid: dict[str, list[Any]], ns: argparse.Namespace) -> int:
    if not all(grid.values()):
        print("chillly backtest: --grid k=a,b,c needs at least one value", file=sys.stderr)
        return 2
    jobs = ns.jobs or os.cpu_count() or 1
    rows = run_all(job, grid, jobs)
    errors = [r["error"] for _, r in rows if "error" in r]
    if errors:
        print(f"chillly backtest: {errors[0]}", file=sys.stderr)
        return 2
    rows.sort(key=lambda cr: rank_key(cr[1]))
    version = code_version()
    if ns.json:
        print(json.dumps({"code_version": version, "rows": [
            {"params": c, "command": command(ns, c), **r} for c, r in rows]}, indent=2))
        return 0
    keys = sorted(grid)
    head = f"{'#':>3} " + " ".join(f"{k:>10}" for k in keys) + \
        f" {'net P&L':>12} {'max DD':>10} {'trades':>7} {'pass':>6}  verdict"
    print(head)
    for i, (c, r) in enumerate(rows, 1):
        v = r["verdict"]
        mc = v.get("monte_carlo")
        rate = f"{mc['pass_rate'] * 100:5.1f}%" if mc else "     -"
        state = "lost" if v["lost"] else ("passed" if v.get("combine_passed") else "-")
        print(f"{i:>3} " + " ".join(f"{str(c[k]):>10}" for k in keys) +
              f" {r['net_pnl']:>12,.2f} {r['max_drawdown']:>10,.2f} {r['trades']:>7} {rate:>6}"
              f"  {state}")
        print(f"      {command(ns, c)}")
    print(f"{len(rows)} runs on {jobs} process(es); code {version}")
    return 0
