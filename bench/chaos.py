"""Chaos benchmark, the long form of tests/system/test_chaos.py: the whole system under
supervisord on the sim at an accelerated clock, two example strategies trading through the
gateway; for each program (all but the sim), ROUNDS times: a clean stop (SIGTERM, supervisord
restarts it: the baseline, measured in the same run) and a SIGKILL at a random moment; after each
the run settles and compares with the venue (tests/system/chaos.py).

    .venv/bin/python bench/chaos.py [--rounds 2] [--speed 60] [--seed 1]

Printed per program: seconds until `chillly status` would say all is well again after SIGTERM
(baseline) and after SIGKILL (median over rounds), and what the kills cost: orders lost and
doubled (venue order list vs the gateway journal), bars lost and doubled (database and live
stream vs the venue's retrieveBars), strategy events missed while a host was down and whether
the restarted host's position equalled the gateway's (recovered). Then the final comparison.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support import Procs, free_port  # noqa: E402
from tests.system.chaos import Chaos, Verdict  # noqa: E402


def bus_env(tmp: Path) -> dict[str, str]:
    return {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "RUN_DIR": str(tmp / "run"), "DATABASE_PATH": str(tmp / "market.db"),
            "SIM_PORT": str(free_port()), "METRICS_PORT": str(free_port()),
            "LOG_LEVEL": "INFO"}


def counts(v: Verdict) -> dict[str, int]:
    return {"orders_lost": len(v.orders_lost) + len(v.intents_unresolved),
            "orders_doubled": len(v.orders_doubled),
            "bars_lost": len(v.bars_lost) + len(v.bars_wrong) + len(v.htf_wrong),
            "bars_doubled": len(v.bars_doubled)}


async def run(rounds: int, speed: float, seed: int) -> int:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="chillly-chaos-"))
    procs = Procs(tmp, {})
    chaos = Chaos(procs, tmp, bus_env(tmp), speed)
    rows: dict[str, dict[str, list[float]]] = {}
    try:
        await chaos.start()
        await chaos.settle(1)
        seen = counts(await chaos.compare())
        for r in range(rounds):
            for program in chaos.victims():
                row = rows.setdefault(program, {k: [] for k in (
                    "term", "kill", "orders_lost", "orders_doubled", "bars_lost",
                    "bars_doubled", "missed", "recovered")})
                k = await chaos.kill(program, signal.SIGTERM)
                row["term"].append(k.seconds_to_healthy or 0.0)
                await chaos.wait_healthy(90, f"after restarting {program}")
                await asyncio.sleep(rng.uniform(0, 2.0))   # a random moment of its work
                k = await chaos.kill(program, signal.SIGKILL)
                row["kill"].append(k.seconds_to_healthy or 0.0)
                row["missed"].append(k.strategy_events_missed)
                if k.strategy_recovered is not None:
                    row["recovered"].append(1.0 if k.strategy_recovered else 0.0)
                try:
                    await chaos.settle(1, timeout=60)
                except AssertionError as exc:
                    print(f"  {program}: did not settle: {exc}", flush=True)
                now = counts(await chaos.compare())
                for key in ("orders_lost", "orders_doubled", "bars_lost", "bars_doubled"):
                    row[key].append(now[key] - seen[key])
                seen = now
                print(f"round {r + 1} {program}: SIGTERM {row['term'][-1]:.1f}s, SIGKILL "
                      f"{row['kill'][-1]:.1f}s", flush=True)
        await chaos.settle(2)
        final = await chaos.compare()
    finally:
        await chaos.close()
        procs.cleanup()
    print(f"\nchaos: {rounds} round(s) at {speed:g}x, seed {seed}; seconds to healthy again "
          "(median), and what the SIGKILLs cost (sum over rounds)")
    print(f"{'program':<16} {'SIGTERM (base)':>14} {'SIGKILL':>8} {'ord lost':>9} "
          f"{'ord doubled':>11} {'bars lost':>9} {'bars doubled':>12} {'strat missed':>12} "
          f"{'recovered':>9}")
    for program, row in rows.items():
        rec = (f"{sum(row['recovered']):.0f}/{len(row['recovered'])}" if row["recovered"]
               else "-")
        print(f"{program:<16} {statistics.median(row['term']):>14.1f} "
              f"{statistics.median(row['kill']):>8.1f} {sum(row['orders_lost']):>9.0f} "
              f"{sum(row['orders_doubled']):>11.0f} {sum(row['bars_lost']):>9.0f} "
              f"{sum(row['bars_doubled']):>12.0f} {sum(row['missed']):>12.0f} {rec:>9}")
    print(f"\nfinal: venue orders {final.venue_orders}, fills {final.venue_fills}, "
          f"bars checked {final.bars_checked}; problems: {final.problems() or 'none'}")
    return 0 if not final.problems() else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--speed", type=float, default=60)
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args()
    os.chdir(ROOT)
    return asyncio.run(run(a.rounds, a.speed, a.seed))


if __name__ == "__main__":
    sys.exit(main())
