"""Start-up benchmark: the import CPU time of each process's entry module.

    .venv/bin/python bench/startup.py [--runs 7] [--against REF] [MODULE ...]

Every process (`chillly NAME`) pays its imports before it does anything, and the test suite
starts hundreds of them, so this prints, per entry module, the median CPU time (user + system,
of the child alone, from getrusage) of `python -c "import MODULE"` over fresh interpreters,
beside baselines measured in the same run: an empty interpreter (`pass`) and the libraries every
process needs (`import asyncio, pydantic, zmq`). What a module costs beyond the second baseline
is ours. `--against REF` also measures a checkout of REF (a temporary git worktree, same
interpreter and libraries), alternating the two run by run so the machine's load falls on both
alike: the before/after of a change. Our packages are byte-compiled first, as `scripts/test`
does (PYTHONDONTWRITEBYTECODE=1 would otherwise have every run compile them from source).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

BASELINES = {"(empty interpreter)": "pass", "(asyncio, pydantic, zmq)": "import asyncio, pydantic, zmq"}

#: The modules `chillly NAME` imports to start each process (chillly/cli.py COMMANDS).
ENTRIES = [
    "broker.relay", "sim.server", "store.process", "store.series", "feeds.aggregator_process",
    "feeds.bars", "feeds.market", "feeds.subscriptions", "gateway.process",
    "strategy_host.host", "web.process", "chillly.cli",
]


def compile_tree(tree: Path) -> None:
    packages = [p.parent.name for p in tree.glob("*/__init__.py")]
    subprocess.run([sys.executable, "-m", "compileall", "-q", *packages], cwd=tree, check=True,
                   stdout=subprocess.DEVNULL)


def cpu_seconds(code: str, tree: Path) -> float:
    """CPU (user + system) one fresh interpreter spends running `code` in `tree` (the working
    directory comes first on sys.path, so `tree`'s packages are the ones imported)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-c", code], cwd=tree, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(code: str, trees: list[Path], runs: int) -> list[float]:
    """Median CPU of `code` in each tree, the trees alternating run by run."""
    samples: list[list[float]] = [[] for _ in trees]
    for _ in range(runs):
        for i, tree in enumerate(trees):
            samples[i].append(cpu_seconds(code, tree))
    return [statistics.median(s) for s in samples]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=7, help="fresh interpreters per module (and tree)")
    ap.add_argument("--against", metavar="REF", help="also measure this git ref (e.g. a commit)")
    ap.add_argument("modules", nargs="*", help="entry modules (default: every process)")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        trees = [ROOT]
        if a.against:
            other = Path(tmp) / "ref"
            subprocess.run(["git", "worktree", "add", "-q", "--detach", str(other), a.against],
                           cwd=ROOT, check=True)
            trees.insert(0, other)
        try:
            report(trees, a)
        finally:
            if a.against:
                subprocess.run(["git", "worktree", "remove", "--force", str(trees[0])],
                               cwd=ROOT, check=True)


def report(trees: list[Path], a: argparse.Namespace) -> None:
    for tree in trees:
        compile_tree(tree)
    rows = [(label, code) for label, code in BASELINES.items()]
    rows += [(m, f"import {m}") for m in (a.modules or ENTRIES)]
    print(f"import CPU in seconds, median of {a.runs} fresh interpreters (user + system)"
          + (f"; {a.against} and this tree alternating" if a.against else ""))
    print(f"  {'':28s} " + (f"{a.against[:10]:>10s} {'now':>6s} {'saved':>6s}" if a.against
                             else f"{'now':>6s} over the libraries"))
    libs = None
    for label, code in rows:
        cpu = measure(code, trees, a.runs)
        if label == "(asyncio, pydantic, zmq)":
            libs = cpu[-1]
        if a.against:
            line = f"{cpu[0]:10.3f} {cpu[1]:6.3f} {cpu[0] - cpu[1]:+6.3f}"
        else:
            line = f"{cpu[0]:6.3f}" + (f"  +{cpu[0] - libs:.3f}" if libs is not None and
                                       label not in BASELINES else "")
        print(f"  {label:28s} {line}", flush=True)


if __name__ == "__main__":
    main()
