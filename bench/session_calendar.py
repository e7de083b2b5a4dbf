"""Calendar benchmark: is_market_open, holiday-aware and cached, beside the weekly rule it replaced.

    .venv/bin/python bench/session_calendar.py [--calls 300000]

Both run in this process over the same timestamps:
- baseline: the former weekday-and-halt rule (no holidays), one datetime conversion per call;
- calendar: `chillly.calendar.is_market_open` (CME holidays and early closes from the
  `holidays` library, last-stretch cache), on a hot-path pattern (timestamps a few seconds
  apart, as feeds and the sim ask) and on random timestamps over two years (cache misses);
- the one-time cost of the first year table, in a fresh interpreter.
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import time as _time
from datetime import datetime, time, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chillly.calendar import CHICAGO, is_market_open  # noqa: E402

_OPEN, _HALT = time(17, 0), time(16, 0)


def weekly_rule(ms: int) -> bool:
    """The calendar before holidays (the baseline)."""
    local = datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).astimezone(CHICAGO)
    wd = local.weekday()
    t = local.timetz().replace(tzinfo=None)
    if wd == 5:
        return False
    if wd == 6:
        return t >= _OPEN
    if wd == 4 and t >= _HALT:
        return False
    return not (_HALT <= t < _OPEN)


def rate(fn, stamps: list[int]) -> float:
    t0 = _time.perf_counter()
    for s in stamps:
        fn(s)
    return len(stamps) / (_time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=300_000)
    a = ap.parse_args()
    rng = random.Random(1)
    start = int(datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp() * 1000)
    hot = [start + i * 5_000 for i in range(a.calls)]                 # every 5 s of market time
    cold = [start + rng.randrange(0, 2 * 365 * 86_400_000) for _ in range(a.calls)]
    is_market_open(start)                                             # load the table once
    for name, stamps in (("hot path (5 s apart)", hot), ("random over 2 years", cold)):
        base, new = rate(weekly_rule, stamps), rate(is_market_open, stamps)
        print(f"{name:24s} baseline {base / 1e6:6.2f} M calls/s   calendar {new / 1e6:6.2f} "
              f"M calls/s   ratio {new / base:5.2f}")
    probe = ("import time; t=time.perf_counter(); from chillly.calendar import is_market_open;"
             "a=time.perf_counter(); is_market_open(1_790_000_000_000); b=time.perf_counter();"
             "print(f'{(a-t)*1e3:.1f} {(b-a)*1e3:.1f}')")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1], check=True).stdout.split()
    print(f"fresh process: import chillly.calendar {out[0]} ms, first call (year table, written "
          f"out in chillly/cme_table.py) {out[1]} ms")


if __name__ == "__main__":
    main()
