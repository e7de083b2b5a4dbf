"""Paper trading survives a restart: a real sim with SIM_STATE_PATH, stopped by SIGTERM and
killed by SIGKILL right after an acknowledged order; what it said it did is still there."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.sim_client import login, sim_env, wait_ready
from tests.support import Procs

ACCOUNTS = "4001:50KTC-V2-000004-4001:50000"


def start(procs: Procs, base: str) -> tuple[Any, httpx.Client]:
    proc = procs.chillly("sim", name="sim")
    wait_ready(base)
    http = httpx.Client(base_url=base, timeout=10.0,
                        headers={"Authorization": f"Bearer {login(base)}"})
    return proc, http


def state(http: httpx.Client) -> dict[str, Any]:
    def post(path: str, body: dict[str, Any]) -> Any:
        r = http.post(path, json=body)
        assert r.status_code == 200, r.text
        return r.json()
    return {
        "orders": post("/api/Order/search", {"accountId": 4001,
                                             "startTimestamp": "2000-01-01T00:00:00Z"})["orders"],
        "positions": post("/api/Position/searchOpen", {"accountId": 4001})["positions"],
        "trades": post("/api/Trade/search", {"accountId": 4001,
                                             "startTimestamp": "2000-01-01T00:00:00Z"})["trades"],
        "accounts": post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"],
    }


def place(http: httpx.Client, **fields: Any) -> int:
    contracts = http.post("/api/Contract/available", json={"live": False}).json()["contracts"]
    es = next(c["id"] for c in contracts if c["symbolId"] == "F.US.EP" and c["activeContract"])
    r = http.post("/api/Order/place", json={"accountId": 4001, "contractId": es, **fields}).json()
    assert r["success"], r
    return int(r["orderId"])


def test_state_survives_sigterm_and_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "sim-state.json"
    env = sim_env(tmp_path, SIM_ACCOUNTS=ACCOUNTS, SIM_HISTORY_DAYS="1", SIM_ROOTS="EP,MES",
                  SIM_STATE_PATH=str(path), SIM_ENFORCE="none")
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    procs = Procs(tmp_path, env)
    try:
        proc, http = start(procs, base)
        place(http, type=2, side=0, size=2)                                  # a position
        resting = place(http, type=1, side=0, size=1, limitPrice=1000.0, customTag="rest")
        place(http, type=2, side=0, size=5)                                  # 7 lots: a breach
        breaches = httpx.get(f"{base}/admin/breaches").json()["breaches"]
        assert [b["rule"] for b in breaches] == ["max_position"]
        before = state(http)
        assert proc.terminate() == 0
        assert json.loads(path.read_text())["version"] == 1

        proc, http = start(procs, base)
        after = state(http)
        for key in ("orders", "positions", "trades"):
            assert after[key] == before[key], key
        assert after["accounts"][0]["balance"] == before["accounts"][0]["balance"]
        assert httpx.get(f"{base}/admin/breaches").json()["breaches"] == breaches
        # the resting order still works and its tag is still taken
        dup = http.post("/api/Order/place", json={
            "accountId": 4001, "contractId": before["orders"][0]["contractId"], "type": 2,
            "side": 0, "size": 1, "customTag": "rest"}).json()
        assert dup["errorCode"] == 2
        assert http.post("/api/Order/cancel", json={"accountId": 4001, "orderId": resting}
                         ).json()["success"]
        last = place(http, type=2, side=1, size=3)                           # acknowledged ...
        proc.kill()                                                          # ... then SIGKILL

        proc, http = start(procs, base)
        final = state(http)
        statuses = {o["id"]: o["status"] for o in final["orders"]}
        assert statuses[resting] == 3 and statuses[last] == 2
        assert final["positions"][0]["size"] == 4
        new = place(http, type=2, side=1, size=1)
        assert new not in statuses
        assert proc.terminate() == 0
    finally:
        procs.cleanup()


def test_the_enforcement_switch_survives_a_restart(tmp_path: Path) -> None:
    """Rules switched at run time (POST /admin/rules) come back after SIGTERM and SIGKILL,
    over what SIM_ENFORCE says; a state file written before the switch was saved still loads,
    with the environment's rules."""
    path = tmp_path / "sim-state.json"
    env = sim_env(tmp_path, SIM_ACCOUNTS=ACCOUNTS, SIM_HISTORY_DAYS="1", SIM_ROOTS="EP",
                  SIM_STATE_PATH=str(path), SIM_ENFORCE="all")
    base = f"http://127.0.0.1:{env['SIM_PORT']}"
    every = ["daily_loss", "flat_by", "max_position", "mll"]

    def rules() -> list[str]:
        return list(httpx.get(f"{base}/admin/rules").json()["enforce"])

    def switch(value: Any) -> None:
        r = httpx.post(f"{base}/admin/rules", json={"enforce": value})
        assert r.status_code == 200, r.text

    procs = Procs(tmp_path, env)
    try:
        proc, http = start(procs, base)
        assert rules() == every
        switch("none")
        assert proc.terminate() == 0

        proc, http = start(procs, base)
        assert rules() == []
        place(http, type=2, side=0, size=6)          # over the cap: a lax sim lets it through
        switch(["mll"])                              # acknowledged ...
        proc.kill()                                  # ... then SIGKILL

        proc, http = start(procs, base)
        assert rules() == ["mll"]
        r = http.post("/api/Order/place", json={
            "accountId": 4001, "contractId": state(http)["positions"][0]["contractId"],
            "type": 2, "side": 0, "size": 1}).json()
        assert r["success"], r                       # max_position is still not enforced
        assert proc.terminate() == 0

        old = json.loads(path.read_text())           # as a sim before this change wrote it
        assert old.pop("enforce") == ["mll"]
        path.write_text(json.dumps(old))
        proc, http = start(procs, base)
        assert rules() == every
        assert state(http)["positions"][0]["size"] == 7
        assert proc.terminate() == 0
    finally:
        procs.cleanup()
