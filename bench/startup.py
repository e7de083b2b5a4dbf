"""Start-up benchmark: the import CPU time of each process's entry module.

    .venv/bin/python bench/startup.py [--runs 5] [MODULE ...]

Every process (`chillly NAME`) pays its imports before it does anything, and the test suite
starts hundreds of them, so this prints, per entry module, the median CPU time (user + system,
of the child alone) of `python -c "import MODULE"` over fresh interpreters, beside baselines
measured in the same run: an empty interpreter (`pass`) and the libraries every process needs
(`import asyncio, pydantic, zmq`). What a module costs beyond the second baseline is ours.
Our packages are byte-compiled first, as `scripts/test` does (PYTHONDONTWRITEBYTECODE=1 would
otherwise have every run compile them from source).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINES = {"(empty interpreter)": "pass", "(asyncio, pydantic, zmq)": "import asyncio, pydantic, zmq"}

#: The modules `chillly NAME` imports to start each process (chillly/cli.py COMMANDS).
ENTRIES = [
    "broker.relay", "sim.server", "store.process", "store.series", "feeds.aggregator_process",
    "feeds.bars", "feeds.market", "feeds.subscriptions", "gateway.process",
    "strategy_host.host", "web.process", "chillly.cli",
]


def cpu_seconds(code: str) -> float:
    """CPU (user + system) one fresh interpreter spends running `code`."""
    before = os.times()
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
    after = os.times()
    return (after.children_user - before.children_user
            + after.children_system - before.children_system)


def median_cpu(code: str, runs: int) -> float:
    return statistics.median(cpu_seconds(code) for _ in range(runs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5, help="fresh interpreters per module")
    ap.add_argument("modules", nargs="*", help="entry modules (default: every process)")
    a = ap.parse_args()
    packages = [p.parent.name for p in ROOT.glob("*/__init__.py")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    rows = [(label, code) for label, code in BASELINES.items()]
    rows += [(m, f"import {m}") for m in (a.modules or ENTRIES)]
    print(f"import CPU, median of {a.runs} fresh interpreters (user + system)")
    libs = None
    for label, code in rows:
        cpu = median_cpu(code, a.runs)
        if label == "(asyncio, pydantic, zmq)":
            libs = cpu
        extra = f"  (+{cpu - libs:.2f} s over the libraries)" if libs is not None and \
            label not in BASELINES else ""
        print(f"  {label:28s} {cpu:6.3f} s{extra}", flush=True)


if __name__ == "__main__":
    main()
