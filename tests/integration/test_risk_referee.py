"""The risk gate against the sim's Topstep referee: an adversary through the gateway never
breaches; the same adversary straight to the venue does (so the test can fail).

Each scenario runs one lax sim (SIM_ENFORCE=none: the venue lets everything through and only
its referee records breaches) with two 50K Combine accounts in the same market: the adversary
process trades account GW through the real gateway (as strategy `adv`, over the bus) and account
DIRECT straight over REST. Processes: broker, sim, subscriptions, feed-market (the gateway's
quotes), gateway. The judge is `GET /admin/breaches`, never our own code.

- flat window: at 90x from 14:40 CT to 15:13 CT: random sizes and sides, bursts, oversized
  orders, entries held into the flat window, a burst at 15:09 CT;
- drift: at 60x, the admin market drift takes ES down 300 ticks over 25 market minutes while
  the adversary keeps buying (equity toward the floor); RISK_MLL_BUFFER=600 covers the move
  during the gate's reaction at that speed (about 750 $ per real second on 5 ES lots).
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly.bus import Bus
from chillly.calendar import CHICAGO
from chillly.clock import SystemClock, iso_to_ms
from tests.sim_client import anchor_for, wait_ready
from tests.integration.test_gateway_support import gateway_ready
from tests.support import START_TIMEOUT, Procs, free_port

GW, DIRECT = 1001, 1002
ACCOUNTS = f"{GW}:50KTC-V2-1-{GW}:50000,{DIRECT}:50KTC-V2-1-{DIRECT}:50000"


def ct_ms(y: int, m: int, d: int, hh: int, mm: int) -> int:
    return int(datetime(y, m, d, hh, mm, tzinfo=CHICAGO).timestamp() * 1000)


class Scenario:
    def __init__(self, tmp: Path, start_ms: int, speed: float, accounts: str = ACCOUNTS,
                 **extra: str) -> None:
        self.tmp = tmp
        self.speed = speed
        self.env = {
            "BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "SIM_PORT": str(free_port()), "METRICS_PORT": str(free_port()),
            "RUN_DIR": str(tmp / "run"), "HEARTBEAT_INTERVAL": "0.5", "LOG_LEVEL": "INFO",
            "CLOCK_SPEED": str(speed), "CLOCK_ANCHOR": anchor_for(start_ms, speed),
            "SIM_ACCOUNTS": accounts, "SIM_ENFORCE": "none", "SIM_HISTORY_DAYS": "1",
            "SIM_RATE_OTHER": "100000", "DEFAULT_CONTRACTS": "ES,MES",
            "TOPSTEP_ACCOUNT_ID": str(GW), "GATEWAY_DATABASE_PATH": str(tmp / "orders.db"),
            "GATEWAY_RECONCILE_INTERVAL": "600", "GATEWAY_PUBLISH_INTERVAL": "5",
            "STRATEGIES_FILE": str(tmp / "none.toml"), **extra,
        }
        self.procs = Procs(tmp, self.env)
        self.base = f"http://127.0.0.1:{self.env['SIM_PORT']}"
        self.clock = SystemClock(speed, iso_to_ms(self.env["CLOCK_ANCHOR"]))

    async def start(self) -> None:
        self.procs.spawn(["-m", "broker"], name="broker")
        self.procs.chillly("sim", name="sim")
        wait_ready(self.base)
        self.procs.chillly("subscriptions", "serve", name="subscriptions")
        self.procs.chillly("feed-market", name="feed-market")
        self.procs.chillly("gateway", name="gateway")
        bus = Bus(self.env["BUS_PUBLISH_ADDR"], self.env["BUS_SUBSCRIBE_ADDR"], "test-referee")
        await bus.ready(timeout=START_TIMEOUT)
        try:
            await gateway_ready(bus)
        finally:
            await bus.close()

    def adversaries(self, start_ms: int, until_ms: int, long_bias: float,
                    seed: int = 11) -> dict[int, dict[str, Any]]:
        """Run the same adversary (same seed) through the gateway and straight to the venue."""
        runs = {}
        for account, via in ((GW, "gateway"), (DIRECT, "rest")):
            out = self.tmp / f"adv-{via}.json"
            runs[account] = (out, self.procs.spawn(
                ["-m", "tests.integration.risk_adversary", "--via", via, "--account",
                 str(account), "--start", str(start_ms), "--until", str(until_ms),
                 "--seed", str(seed),
                 "--long-bias", str(long_bias), "--out", str(out)], name=f"adv-{via}"))
        return self.collect(runs, until_ms)

    def collect(self, runs: dict[int, tuple[Path, Any]], until_ms: int) -> dict[int, Any]:
        real_s = max(0.0, (until_ms - self.clock.now_ms()) / 1000 / self.speed)
        result = {}
        for account, (out, proc) in runs.items():
            assert proc.wait(timeout=real_s + 60) == 0, proc.log()[-3000:]
            result[account] = json.loads(out.read_text())
        return result

    def breaches(self, account: int) -> list[dict[str, Any]]:
        return httpx.get(f"{self.base}/admin/breaches", params={"account": account},
                         timeout=5).json()["breaches"]

    def admin(self, path: str, body: Any) -> Any:
        r = httpx.post(f"{self.base}{path}", json=body, timeout=5)
        assert r.status_code == 200, r.text
        return r.json()

    def report(self, runs: dict[int, dict[str, Any]]) -> str:
        return json.dumps({"runs": runs, "breaches": {a: self.breaches(a) for a in runs}})[:4000]


@pytest.fixture
def scenario_dir(tmp_path: Path) -> Path:
    return tmp_path


async def _run(tmp: Path, anchor_ms: int, speed: float, start_ms: int | None, minutes: int,
               long_bias: float, drift_ticks: int = 0, drift_s: int = 0,
               **extra: str) -> tuple[Scenario, dict[int, Any]]:
    """Start the system with market time at `anchor_ms`; once the gateway is ready, run the
    adversaries from `start_ms` (or at once) for `minutes` market minutes."""
    sc = Scenario(tmp, anchor_ms, speed, **extra)
    try:
        await sc.start()
        begin = max(start_ms or 0, sc.clock.now_ms() + 5_000 * int(speed))
        assert start_ms is None or begin <= start_ms + 10 * 60_000, \
            "the system took too long to start for this scenario's market times"
        if drift_ticks:
            es = next(c["id"] for c in httpx.post(
                f"{sc.base}/api/Contract/available", json={"live": False},
                headers={"Authorization": "Bearer " + httpx.post(
                    f"{sc.base}/api/Auth/loginKey",
                    json={"userName": "t", "apiKey": "k"}).json()["token"]}).json()["contracts"]
                if c["symbolId"] == "F.US.EP" and c["activeContract"])
            sc.admin("/admin/market", {"contractId": es, "ticks": drift_ticks,
                                       "over_seconds": drift_s})
        runs = sc.adversaries(begin, begin + minutes * 60_000, long_bias)
        return sc, runs
    except BaseException:
        sc.procs.cleanup()
        print(sc.procs.dump_logs()[-8000:], file=sys.stderr)
        raise


@pytest.mark.slow
@pytest.mark.serial
async def test_flat_window_and_position_cap_hold_through_the_gateway(scenario_dir: Path) -> None:
    # Market time starts 25 minutes before the adversaries (start-up takes 10-15 s real, 15-23
    # minutes of market at 90x), so they run from 14:40 CT through the 15:10 CT flat window.
    sc, runs = await _run(scenario_dir, ct_ms(2026, 12, 2, 14, 15), 90.0,
                          start_ms=ct_ms(2026, 12, 2, 14, 40), minutes=33, long_bias=0.5)
    try:
        gw, direct = runs[GW]["outcomes"], runs[DIRECT]["outcomes"]
        assert sc.breaches(GW) == [], sc.report(runs)
        rules = {b["rule"] for b in sc.breaches(DIRECT)}
        assert rules, sc.report(runs)                 # the same adversary does breach alone
        assert "max_position" in rules or "flat_by" in rules, sc.report(runs)
        # The gate let orders through, and refused by rule, not wholesale.
        assert gw.get("accepted", 0) > 0 and direct.get("accepted", 0) > 0, sc.report(runs)
        assert gw.get("rejected_max_position", 0) > 0, sc.report(runs)
        assert gw.get("rejected_flat_by", 0) > 0, sc.report(runs)
    finally:
        sc.procs.cleanup()


@pytest.mark.slow
@pytest.mark.serial
async def test_market_drift_toward_the_floor_is_flattened_in_time(scenario_dir: Path) -> None:
    sc, runs = await _run(scenario_dir, ct_ms(2026, 12, 2, 9, 0), 60.0, start_ms=None,
                          minutes=28, long_bias=0.9, drift_ticks=-300, drift_s=1500,
                          # The buffer must cover the move during the gate's reaction: at 60x
                          # the drift moves 5 ES lots ~750 $ per real second.
                          RISK_MLL_BUFFER="600")
    try:
        assert sc.breaches(GW) == [], sc.report(runs)
        assert "mll" in {b["rule"] for b in sc.breaches(DIRECT)}, sc.report(runs)
        gw = runs[GW]["outcomes"]
        assert gw.get("accepted", 0) > 0, sc.report(runs)
        assert any(k in gw for k in ("rejected_mll", "rejected_halt")), sc.report(runs)
    finally:
        sc.procs.cleanup()
