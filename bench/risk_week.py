"""A simulated trading week of adversarial orders through the risk gate, judged by the referee.

    .venv/bin/python bench/risk_week.py [--program combine|xfa|live] [--size 50k|100k|150k]
        [--speed 120] [--days 5] [--seed 11]

The long form of tests/integration/test_risk_referee.py (same processes, same adversary): a
lax sim (SIM_ENFORCE=none) with two accounts of the chosen program and size, the adversary
trading one through the gateway and one straight over REST, from Monday 08:00 CT for `days`
trading days (every 17:00 CT reset, EOD trailing floor, XFA tier and 15:10 CT flat window of
the week), with a random admin market drift posted every few market hours. Prints the
referee's breaches per account (the gateway's must be none), the adversary's outcomes, and the
gateway's risk view at the end. Exit code 1 when the gateway's account has a breach.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402

from tests.integration.test_risk_referee import DIRECT, GW, Scenario, ct_ms  # noqa: E402

START_BALANCE = {"50k": 50_000, "100k": 100_000, "150k": 150_000}


def accounts(program: str, size: str) -> str:
    bal = 0 if program == "xfa" else START_BALANCE[size]
    return ",".join(f"{a}:{size.upper()}-{program}-{a}:{bal}:program={program}+{size}"
                    for a in (GW, DIRECT))


async def drifts(sc: Scenario, until_ms: int, rnd: random.Random, es: str) -> int:
    """Post a slow random drift every 2-6 market hours (at most ~0.02 ticks per market s)."""
    n = 0
    while sc.clock.now_ms() < until_ms:
        secs = rnd.randint(2, 6) * 3600
        ticks = rnd.randint(-240, 240)
        try:
            await asyncio.to_thread(httpx.post, f"{sc.base}/admin/market", timeout=10,
                                    json={"contractId": es, "ticks": ticks,
                                          "over_seconds": secs})
            n += 1
        except httpx.HTTPError as exc:
            print(f"drift not posted: {exc!r}", flush=True)
        await sc.clock.sleep(secs)
    return n


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--program", default="combine", choices=("combine", "xfa", "live"))
    ap.add_argument("--size", default="50k", choices=tuple(START_BALANCE))
    ap.add_argument("--speed", type=float, default=120.0)
    ap.add_argument("--days", type=int, default=5)
    ap.add_argument("--seed", type=int, default=11)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="risk-week-"))
    monday = (2026, 12, 7)
    start = ct_ms(*monday, 8, 0)
    until = start + (a.days - 1) * 86_400_000 + (ct_ms(*monday, 15, 20) - start)
    sc = Scenario(tmp, start - 45 * 60_000 * int(a.speed / 60), a.speed,
                  accounts=accounts(a.program, a.size), TOPSTEP_PROGRAM=a.program,
                  TOPSTEP_ACCOUNT_SIZE=a.size, RISK_MLL_BUFFER="600",
                  # the fair-use daily count lifted, so that every other rule meets orders
                  # all week long (at 200 the adversary is refused from mid-morning on)
                  RISK_DAILY_CONTRACTS="100000")
    try:
        await sc.start()
        login = httpx.post(f"{sc.base}/api/Auth/loginKey",
                           json={"userName": "b", "apiKey": "k"}).json()["token"]
        found = httpx.post(f"{sc.base}/api/Contract/available", json={"live": False},
                           headers={"Authorization": f"Bearer {login}"}).json()["contracts"]
        es = next(c["id"] for c in found if c["symbolId"] == "F.US.EP" and c["activeContract"])
        begin = max(start, sc.clock.now_ms())
        print(f"market {begin} .. {until} at {a.speed}x: about "
              f"{(until - begin) / 1000 / a.speed:.0f} s real", flush=True)
        drift_task = asyncio.ensure_future(drifts(sc, until, random.Random(a.seed), es))
        runs = await asyncio.to_thread(sc.adversaries, begin, until, 0.6, a.seed)
        drift_task.cancel()
        out = {"program": a.program, "size": a.size, "speed": a.speed, "days": a.days,
               "breaches_gateway": sc.breaches(GW), "breaches_direct": sc.breaches(DIRECT),
               "adversary": runs,
               "referee_gateway": httpx.get(f"{sc.base}/admin/accounts/{GW}/risk").json()}
        print(json.dumps(out, indent=1)[:20000])
        print(f"gateway account: {len(out['breaches_gateway'])} breaches; direct account: "
              f"{len(out['breaches_direct'])} breaches "
              f"({sorted({b['rule'] for b in out['breaches_direct']})})")
        return 1 if out["breaches_gateway"] else 0
    finally:
        sc.procs.cleanup()
        print(f"logs in {tmp}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
