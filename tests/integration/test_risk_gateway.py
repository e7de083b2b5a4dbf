"""The risk gate inside a real gateway, against the real sim: rejections name the rule, the
trader's halt flattens at the venue and latches, resume needs a flat account, and a gateway
SIGKILLed mid-day comes back with the same floor, day P&L and latches (from its journal)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from chillly.bus import Bus
from chillly.calendar import trading_date
from tests.sim_client import login, wait_ready
from tests.integration.test_gateway_support import gateway_ready
from chillly.tools_socket import ask as ask_tools
from tests.support import START_TIMEOUT, ROOT, Procs, aeventually, free_port, tools_path

ACCOUNT = 1001


class Rig:
    def __init__(self, procs: Procs, env: dict[str, str], tmp: Path) -> None:
        self.procs, self.env, self.tmp = procs, env, tmp
        self.base = f"http://127.0.0.1:{env['SIM_PORT']}"
        self.token = login(self.base)
        self.gw: Any = None
        self._n = itertools.count(1)

    def gateway(self) -> None:
        self.gw = self.procs.chillly("gateway", name="gateway")

    def cli(self, *args: str) -> tuple[int, str, str]:
        p = subprocess.run([sys.executable, "-m", "chillly.cli", *args], cwd=str(ROOT),
                           env={**os.environ, **self.env}, capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr

    async def ask(self, name: str, args: dict[str, Any] | None = None) -> Any:
        """As the trader's tools ask: over the gateway's tools socket."""
        ok, result, error = await ask_tools(tools_path(self.env), name, args, timeout=15.0)
        assert ok, error
        return result

    def venue(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = httpx.post(f"{self.base}/api/{path}", json=body,
                       headers={"Authorization": f"Bearer {self.token}"}, timeout=5)
        return r.json()

    def open_positions(self) -> list[dict[str, Any]]:
        return self.venue("Position/searchOpen", {"accountId": ACCOUNT})["positions"]

    async def submit(self, **args: Any) -> dict[str, Any]:
        args.setdefault("client_id", f"manual-r{next(self._n)}")
        return await self.ask("submit", args)  # type: ignore[no-any-return]


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "SIM_PORT": str(free_port()), "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1",
           "SIM_RATE_OTHER": "100000", "RUN_DIR": str(tmp_path / "run"),
           "GATEWAY_DATABASE_PATH": str(tmp_path / "orders.db"),
           "STRATEGIES_FILE": str(tmp_path / "none.toml"),
           "HEARTBEAT_INTERVAL": "0.2", "LOG_LEVEL": "INFO"}
    procs = Procs(tmp_path, env)
    procs.spawn(["-m", "broker"], name="broker")
    procs.chillly("sim", name="sim")
    try:
        wait_ready(f"http://127.0.0.1:{env['SIM_PORT']}")
        yield Rig(procs, env, tmp_path)
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-6000:])


async def _ready(rig: Rig, bus: Bus) -> None:
    await gateway_ready(bus, timeout=START_TIMEOUT)


ENVELOPE = ("v", "src", "seq", "inst", "ts")


async def the_days_refusals_outlive_the_gateway(bus: Bus, events: list[dict[str, Any]]) -> None:
    """`refusals` over the bus (as `chillly web` asks it) from a gateway restarted after two of
    the gate's refusals: all three of the day, newest first, each the event heard on the bus
    (the order as asked included), ids unique across the two gateway instances."""
    await aeventually(lambda: len([e for e in events if e["event"] == "reject"]) == 3,
                      timeout=5)
    heard = [{k: v for k, v in e.items() if k not in ENVELOPE}
             for e in events if e["event"] == "reject"]
    reply = await bus.request("gateway", "refusals", {}, timeout=5.0)
    assert reply.ok, reply.error
    got = reply.result["refusals"]
    assert [r["rule"] for r in got] == ["halt", "halt", "max_position"]
    assert [{k: v for k, v in r.items() if k not in ENVELOPE} for r in got] == heard[::-1]
    assert [r["ts"] for r in got] == sorted((r["ts"] for r in got), reverse=True)
    assert reply.result["trading_date"] == trading_date(got[0]["ts"]).isoformat()
    first = got[2]
    assert (first["owner"], first["order"]["kind"], first["order"]["side"],
            first["order"]["size"], first["order"]["sl_ticks"]) == ("manual", "submit", 0, 4, 12)
    assert first["order"]["contract"].startswith("CON.F.US.EP.")
    assert len({r["refusal_id"] for r in got}) == 3
    assert got[0]["refusal_id"].split(":")[0] != got[1]["refusal_id"].split(":")[0]
    one = await bus.request("gateway", "refusals", {"limit": 1}, timeout=5.0)
    assert one.ok and one.result["refusals"] == got[:1]
    bad = await bus.request("gateway", "refusals", {"limit": True}, timeout=5.0)
    assert not bad.ok and "limit must be an integer" in (bad.error or "")


async def test_gate_rejects_halts_flattens_and_survives_a_sigkill(rig: Rig) -> None:
    rig.gateway()
    events: list[dict[str, Any]] = []
    bus = Bus(rig.env["BUS_PUBLISH_ADDR"], rig.env["BUS_SUBSCRIBE_ADDR"], "test-risk")
    bus.on("risk.", lambda e: events.append(e.payload))
    await bus.ready(timeout=START_TIMEOUT)
    await _ready(rig, bus)
    try:
        rc, out, err = rig.cli("risk", "--json")
        assert rc == 0, err
        view = json.loads(out)
        assert (view["program"], view["size"], view["floor"], view["state"]) == (
            "combine", "50k", 48_000.0, "ACTIVE")
        r = await rig.submit(contract="ES", side="buy", size=2, sl_ticks=12, tp_ticks=12)
        assert r["status"] == "accepted", r
        r = await rig.submit(contract="ES", side="buy", size=4, sl_ticks=12)
        assert (r["status"], r.get("rule")) == ("rejected", "max_position"), r
        # the venue saw only the 2 lots
        await aeventually(lambda: [p["size"] for p in rig.open_positions()] == [2], timeout=10)
        await aeventually(lambda: any(e["event"] == "reject" and e["rule"] == "max_position"
                                      and e["floor"] == 48_000.0 for e in events), timeout=5)
        assert (await rig.ask("risk"))["lots_used"] == 2
        rc, out, _ = rig.cli("risk")
        assert rc == 0 and "floor      48,000.00" in out and "lots       2 used of 5" in out, out

        rc, out, err = rig.cli("halt", "news", "at", "10")
        assert rc == 0 and out.startswith("HALTED"), (out, err)
        await aeventually(lambda: rig.open_positions() == [], timeout=15)
        await aeventually(lambda: any(e["event"] == "state" and e["state"] == "HALTED"
                                      for e in events), timeout=5)
        r = await rig.submit(contract="ES", side="buy", size=1, sl_ticks=12)
        assert (r["status"], r["rule"]) == ("rejected", "halt")
        before = await rig.ask("risk")
        assert before["state"] == "HALTED" and before["manual_halt"] == "news at 10"

        # SIGKILL mid-day: the journal brings back the latch, floor, day P&L and counters.
        rig.gw.kill()
        rig.gateway()
        await _ready(rig, bus)
        after = await rig.ask("risk")
        for key in ("floor", "high_water", "sod_balance", "state", "manual_halt",
                    "contracts_today", "trading_date"):
            assert after[key] == before[key], key
        assert after["day_pnl"] == pytest.approx(before["day_pnl"], abs=0.01)
        r = await rig.submit(contract="ES", side="buy", size=1, sl_ticks=12)
        assert r["rule"] == "halt"
        await the_days_refusals_outlive_the_gateway(bus, events)

        out = await rig.ask("resume")
        assert out["state"] == "ACTIVE", out
        r = await rig.submit(contract="ES", side="buy", size=1, sl_ticks=12)
        assert r["status"] == "accepted", r
        await aeventually(lambda: [p["size"] for p in rig.open_positions()] == [1], timeout=10)
        await rig.ask("halt", {"reason": "again"})
        await aeventually(lambda: rig.open_positions() == [], timeout=15)
        # resume refused while a position is open: open one straight at the venue
        contract = rig.venue("Contract/available", {"live": False})["contracts"]
        es = next(c["id"] for c in contract if c["id"].startswith("CON.F.US.EP.")
                  and c["activeContract"])
        placed = rig.venue("Order/place", {"accountId": ACCOUNT, "contractId": es, "type": 2,
                                           "side": 0, "size": 1})
        assert placed["success"], placed
        # the gate flattens it (HALTED), and meanwhile resume is refused unless flat
        rc, out, err = rig.cli("resume")
        if rc != 0:
            assert "not flat" in err, err
        await aeventually(lambda: rig.open_positions() == [], timeout=15)
    finally:
        await bus.close()
