"""Longest modules first: the order the parallel phase hands test modules to its workers.

`scripts/test` runs the suite on a few workers with `--dist loadfile` (a module's tests on one
worker). xdist hands modules out in collection order, and by default reorders them by their
number of tests, so the unit modules (hundreds of quick tests) went first and the integration
modules (one to three tests of 20-100 s each) came last: the run ended with one worker on a
100 s module while the others sat idle. Handing out the longest modules first (the classic
longest-processing-time rule) lets the short ones fill the gaps at the end.

The lengths come from `tests/durations.json` (seconds per module, the sum of its tests'
setup, call and teardown), refreshed by running the suite with `CHILLLY_RECORD_DURATIONS=1`.
A module missing from the file (a new one) counts as 10 s: ahead of the unit tests, behind the
known heavy modules, so it cannot hold up the end for long. The order changes only which
worker runs a module and when, never what a test does.
"""

from __future__ import annotations

import json
import os
import resource
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest

DURATIONS = Path(__file__).with_name("durations.json")
UNKNOWN_S = 10.0


def _module(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def known_durations() -> dict[str, float]:
    try:
        data = json.loads(DURATIONS.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def longest_first(items: list[pytest.Item], known: dict[str, float]) -> list[pytest.Item]:
    """`items` with whole modules ordered by their known length, longest first; the tests of
    a module keep their order (module-scoped fixtures are built once)."""
    by_module: dict[str, list[pytest.Item]] = defaultdict(list)
    for item in items:
        by_module[_module(item.nodeid)].append(item)
    order = sorted(by_module, key=lambda m: -known.get(m, UNKNOWN_S))
    return [item for m in order for item in by_module[m]]


def _cpu_s() -> float:
    """CPU seconds of this process and of every child it has reaped (the processes a test
    started are reaped by its teardown, so a module's figure includes them)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(
        resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


class Recorder:
    """Sums each module's test durations as reports arrive (in the controlling process when
    the run is distributed) and writes `tests/durations.json` at the end of a whole run; also
    prints the modules that cost the most CPU (their own and their children's), the figure
    that decides a run on 2 cores."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.cpu: dict[str, float] = defaultdict(float)
        self.spawns: dict[str, Counter[str]] = defaultdict(Counter)
        self._mark = _cpu_s()
        self._spawned: Counter[str] = Counter()
        sys.addaudithook(self._audit)

    def _audit(self, event: str, args: tuple[Any, ...]) -> None:
        """Counts the child processes a test starts (each costs a Python start-up's CPU)."""
        if event == "subprocess.Popen":
            argv = [str(a) for a in (args[1] or [])]
            what = " ".join(a for a in argv[1:4] if not a.startswith("/")) or str(args[0])
            self._spawned[what] += 1

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: Any) -> Any:
        outcome = yield
        now = _cpu_s()
        report = outcome.get_result()
        report.user_properties.append(("cpu_s", now - self._mark))
        report.user_properties += [("spawn", k, n) for k, n in self._spawned.items()]
        self._spawned.clear()
        self._mark = now

    def pytest_runtest_logreport(self, report: Any) -> None:
        self.seconds[_module(report.nodeid)] += float(report.duration)
        module = _module(report.nodeid)
        for prop in report.user_properties:
            if prop[0] == "cpu_s":
                self.cpu[module] += prop[1]
            elif prop[0] == "spawn":
                self.spawns[module][prop[1]] += prop[2]

    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if getattr(session.config, "workerinput", None) is not None or not self.seconds:
            return      # an xdist worker: the controller writes the file
        merged = {**known_durations(), **{m: round(s, 1) for m, s in self.seconds.items()}}
        DURATIONS.write_text(json.dumps(dict(sorted(merged.items())), indent=1) + "\n")
        top = sorted(self.cpu.items(), key=lambda kv: -kv[1])[:40]
        print(f"\ncpu seconds by module (total {sum(self.cpu.values()):.0f} s):")
        for m, cpu in top:
            spawns = self.spawns.get(m, Counter())
            print(f"  {cpu:7.1f} cpu  {self.seconds[m]:7.1f} wall  {sum(spawns.values()):4d} "
                  f"spawns  {m}  {dict(spawns.most_common(3))}")


def configure(config: pytest.Config) -> None:
    if os.environ.get("CHILLLY_RECORD_DURATIONS") == "1":
        config.pluginmanager.register(Recorder(), "chillly-durations")
