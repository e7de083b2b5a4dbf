"""Market time never runs backwards over saved state (issue 20, 2.12).

`scripts/run` takes the accelerated clock's anchor from `python -m chillly.anchor`, which keeps it
in RUN_DIR/<venue>/clock-anchor.json. Here a real sim trades at CLOCK_SPEED=3600 with its state
file, is stopped, and started again: with the anchor the old script chose ("now") market time
would go back hours behind the saved positions, and the sim refuses in one line (exit 2); with the
helper's anchor (same speed, or another speed) market time goes on forward and the positions come
back. The gateway's risk memory and feed-bars' marks refuse an earlier market time the same way.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chillly.clock import SystemClock, iso_to_ms, ms_to_iso
from gateway.journal import Journal
from tests.sim_client import free_port, login, sim_env, wait_ready
from tests.support import ROOT, Procs

ACCOUNTS = "4101:50KTC-V2-000004-4101:50000"
REFUSAL = "refusing to run time backwards over saved state"


def helper_anchor(env: dict[str, str]) -> str:
    """What scripts/run exports as CLOCK_ANCHOR (the helper it calls, with its environment)."""
    run_env = {k: v for k, v in {**os.environ, **env}.items() if k != "CLOCK_ANCHOR"}
    out = subprocess.run([sys.executable, "-m", "chillly.anchor"], cwd=str(ROOT), env=run_env,
                         capture_output=True, text=True, timeout=30, check=True)
    return out.stdout.strip()


def market_now(anchor: str, speed: float) -> int:
    return SystemClock(speed, iso_to_ms(anchor)).now_ms()


def refused(proc_log: str) -> list[str]:
    return [line for line in proc_log.splitlines() if REFUSAL in line and line.startswith("chillly ")]


def test_scripts_run_calls_the_anchor_helper() -> None:
    script = (ROOT / "scripts" / "run").read_text()
    assert "-m chillly.anchor" in script and "date -u" not in script


def test_sim_restart_keeps_market_time_moving_forward(tmp_path: Path) -> None:
    env = sim_env(tmp_path, SIM_ACCOUNTS=ACCOUNTS, SIM_HISTORY_DAYS="1", SIM_ROOTS="EP",
                  SIM_STATE_PATH="auto", SIM_ENFORCE="none", CLOCK_SPEED="3600")
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    state = tmp_path / "run" / "sim" / "sim-state.json"
    procs = Procs(tmp_path, env)
    try:
        anchor = helper_anchor(env)
        assert (tmp_path / "run" / "sim" / "clock-anchor.json").exists()
        sim = procs.chillly("sim", name="sim", env={"CLOCK_ANCHOR": anchor})
        wait_ready(base)
        http = httpx.Client(base_url=base, timeout=10.0,
                            headers={"Authorization": f"Bearer {login(base)}"})
        es = next(c["id"] for c in http.post("/api/Contract/available",
                                              json={"live": False}).json()["contracts"]
                  if c["activeContract"])
        assert http.post("/api/Order/place", json={"accountId": 4101, "contractId": es,
                                                    "type": 2, "side": 0, "size": 2}
                         ).json()["success"]
        time.sleep(1.0)                       # an hour of market time
        stopped_after = market_now(anchor, 3600)
        assert sim.terminate() == 0
        saved_ms = json.loads(state.read_text())["market_ms"]
        # The state says when the sim stopped, not when it last changed (the fill, an hour
        # earlier: a loaded-or-not start decided how far that was from the anchor).
        assert saved_ms >= stopped_after

        # The old scripts/run pinned the anchor to now: restarted at 60x, market time is back
        # hours behind the state. (At 3600x the same anchor would overtake the saved hour in
        # the second a loaded machine may take to start the sim, so the test could not fail
        # the way it should.)
        old = ms_to_iso(int(time.time() * 1000))
        assert market_now(old, 60) + 1_800_000 < saved_ms
        sim = procs.chillly("sim", name="sim-old-anchor", env={"CLOCK_ANCHOR": old,
                                                               "CLOCK_SPEED": "60"})
        assert sim.wait(60) == 2
        lines = refused(sim.log())
        assert len(lines) == 1 and "sim-state.json" in lines[0], sim.log()[-2000:]

        # The helper's anchor: the same as saved at the same speed; market time goes on.
        again = helper_anchor(env)
        assert again == anchor and market_now(again, 3600) > saved_ms
        # Another speed: an anchor that continues from the saved clock's market time now.
        slower = helper_anchor({**env, "CLOCK_SPEED": "60"})
        assert market_now(slower, 60) > saved_ms
        sim = procs.chillly("sim", name="sim-slower", env={"CLOCK_ANCHOR": slower,
                                                           "CLOCK_SPEED": "60"})
        wait_ready(base)
        http = httpx.Client(base_url=base, timeout=10.0,
                            headers={"Authorization": f"Bearer {login(base)}"})
        positions = http.post("/api/Position/searchOpen", json={"accountId": 4101}
                              ).json()["positions"]
        assert [(p["contractId"], p["size"]) for p in positions] == [(es, 2)]
        assert sim.terminate() == 0
        assert json.loads(state.read_text())["market_ms"] >= saved_ms
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-3000:])


def _process_env(tmp_path: Path) -> dict[str, str]:
    """A stateful process on its own bus ports, at wall-clock market time (CLOCK_SPEED=1)."""
    return {"RUN_DIR": str(tmp_path / "run"), "SIM_PORT": str(free_port()),
            "BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}", "HEARTBEAT_INTERVAL": "1"}


def test_gateway_refuses_market_time_before_its_risk_memory(tmp_path: Path) -> None:
    db = tmp_path / "orders.db"
    tomorrow = int(time.time() * 1000) + 86_400_000

    async def remember() -> None:          # the risk memory as a run a day ahead left it
        journal = Journal(db)
        await journal.open()
        await journal.save_risk(json.dumps({}), tomorrow)
        await journal.close()
    asyncio.run(remember())

    procs = Procs(tmp_path, {**_process_env(tmp_path), "GATEWAY_DATABASE_PATH": str(db),
                             "TOPSTEP_ACCOUNT_ID": "4101"})
    try:
        gw = procs.chillly("gateway", name="gateway")
        assert gw.wait(60) == 2
        lines = refused(gw.log())
        assert len(lines) == 1 and "risk memory" in lines[0], gw.log()[-2000:]
    finally:
        procs.cleanup()


def test_feed_bars_refuses_market_time_before_its_marks(tmp_path: Path) -> None:
    marks = tmp_path / "run" / "sim" / "feed-bars-hwm.json"
    marks.parent.mkdir(parents=True)
    tomorrow = (int(time.time() * 1000) // 60_000) * 60_000 + 86_400_000
    marks.write_text(json.dumps({"CON.F.US.EP.Z26": tomorrow}))
    procs = Procs(tmp_path, _process_env(tmp_path))
    try:
        bars = procs.chillly("feed-bars", name="feed-bars")
        assert bars.wait(60) == 2
        lines = refused(bars.log())
        assert len(lines) == 1 and "feed marks" in lines[0], bars.log()[-2000:]
    finally:
        procs.cleanup()
