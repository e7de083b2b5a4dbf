"""The sim as a process: heartbeats on the bus like every process, stops cleanly on SIGTERM
with hub clients connected, refuses a port in use with exit code 2."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
from websockets.asyncio.client import connect

from chillly import topics
from tests.sim_client import login, wait_ready
from tests.support import Procs, aeventually, free_port


async def test_sim_heartbeats_and_stops_cleanly_with_clients_connected(
        procs: Procs, bus: Any, bus_env: dict[str, str]) -> None:
    beats: list[Any] = []
    bus.on(topics.heartbeat("sim"), lambda env: beats.append(env.message()))
    sim = procs.chillly("sim", name="sim", env={"SIM_ALWAYS_OPEN": "1",
                                                 "SIM_HISTORY_DAYS": "2"})
    base = f"http://127.0.0.1:{bus_env['SIM_PORT']}"
    await asyncio.to_thread(wait_ready, base)
    await aeventually(lambda: any(b.state == "RUNNING" and b.counters.get("ticks", 0) > 0
                                  for b in beats), timeout=10, what="a RUNNING heartbeat")
    token = await asyncio.to_thread(login, base)
    url = base.replace("http", "ws") + f"/hubs/market?access_token={token}"
    async with connect(url) as ws:
        await ws.send('{"protocol":"json","version":1}\x1e')
        assert await asyncio.wait_for(ws.recv(), 5) == "{}\x1e"
        rc = await asyncio.to_thread(sim.terminate, 3.0)
    assert rc == 0
    assert beats[-1].state == "STOPPED"


def test_port_in_use_is_an_operator_error(procs: Procs, bus_env: dict[str, str]) -> None:
    env = {"SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1"}
    procs.chillly("sim", name="first", env=env)
    wait_ready(f"http://127.0.0.1:{bus_env['SIM_PORT']}")
    second = procs.chillly("sim", name="second", env=env)
    assert second.wait(60) == 2


def test_bad_setting_is_refused_with_exit_code_2(procs: Procs) -> None:
    assert procs.chillly("sim", name="bad", env={"SIM_RATE_SCOPE": "planet"}).wait(60) == 2
    assert procs.chillly("sim", "--port", "0", name="badport").wait(60) == 2
    assert procs.chillly("sim", "--accounts", "x", name="badaccounts").wait(60) == 2


def test_cli_options_override_the_environment(procs: Procs) -> None:
    port = free_port()
    procs.chillly("sim", "--port", str(port), "--always-open", "--history-days", "1",
                  name="cli", env={"SIM_ALWAYS_OPEN": "0"})
    base = f"http://127.0.0.1:{port}"
    wait_ready(base)
    state = httpx.get(f"{base}/admin/state").json()
    assert state["open"] is True and state["engine"] is True
