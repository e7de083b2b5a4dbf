"""Shared rig for the gateway's integration tests: a real broker and sim per module, a real
gateway process per test (each on its own sim account and journal), a bus client in the test,
and plain httpx to the sim as the judge (its order list, positions and trades)."""

from __future__ import annotations

import asyncio
import itertools
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly.bus import Bus
from chillly.codec import Envelope
from tests.sim_client import login, set_faults, clear_faults, wait_ready
from chillly.tools_socket import ask as ask_tools
from tests.support import START_TIMEOUT, Proc, Procs, aeventually, eventually, free_port, tools_path

# Accounts 1001..1060 of each stack's sim (ids above are left to tests that add their own),
# handed out in turn by that stack (Stack.new_account):
# a counter per worker process ran past the sim's accounts once enough gateway modules landed
# on one xdist worker ("TOPSTEP_ACCOUNT_ID=1016 is not an active account").
ACCOUNTS = ",".join(f"{1000 + i}:PRAC-V2-T-{1000 + i}:50000" for i in range(1, 61)) + \
    ",1099:PRAC-V2-T-1099:50000:position"


class Venue:
    """The sim seen over plain HTTP: what the tests judge the gateway by."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.http = httpx.Client(base_url=base, timeout=10.0)
        self.token = login(base)

    def post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.token}"})
        r.raise_for_status()
        return dict(r.json())

    def orders(self, account: int) -> list[dict[str, Any]]:
        return list(self.post("/api/Order/search", {"accountId": account,
                                                     "startTimestamp": "2000-01-01T00:00:00Z"}
                              )["orders"])

    def tagged(self, account: int, tag: str) -> list[dict[str, Any]]:
        return [o for o in self.orders(account) if o.get("customTag") == tag]

    def positions(self, account: int) -> list[dict[str, Any]]:
        return list(self.post("/api/Position/searchOpen", {"accountId": account})["positions"])

    def trades(self, account: int) -> list[dict[str, Any]]:
        return list(self.post("/api/Trade/search", {"accountId": account})["trades"])

    def balance(self, account: int) -> float:
        accs = self.post("/api/Account/search", {"onlyActiveAccounts": True})["accounts"]
        return float(next(a["balance"] for a in accs if a["id"] == account))

    def place(self, account: int, **fields: Any) -> dict[str, Any]:
        return self.post("/api/Order/place", {"accountId": account, **fields})

    def contract(self, symbol_root: str = "EP") -> dict[str, Any]:
        cs = self.post("/api/Contract/available", {"live": False})["contracts"]
        return next(c for c in cs if c["id"].startswith(f"CON.F.US.{symbol_root}.")
                    and c["activeContract"])

    def quote(self, contract: str) -> tuple[float, float]:
        """A (bid, ask) read from the sim's last bar close: enough to price a resting order."""
        bars = self.post("/api/History/retrieveBars", {
            "contractId": contract, "live": False, "startTime": "2000-01-01T00:00:00Z",
            "endTime": "2100-01-01T00:00:00Z", "unit": 2, "unitNumber": 1, "limit": 1,
            "includePartialBar": True})["bars"]
        c = float(bars[0]["c"])
        return c, c

    def faults(self, **changes: Any) -> None:
        set_faults(self.base, **changes)

    def clear_faults(self) -> None:
        clear_faults(self.base)


class Stack:
    def __init__(self, procs: Procs, env: dict[str, str], tmp: Path) -> None:
        self.procs = procs
        self.env = env
        self.tmp = tmp
        self.base = f"http://127.0.0.1:{env['SIM_PORT']}"
        self.venue = Venue(self.base)
        self.gateways: list[Proc] = []
        self._accounts = itertools.count(1001)

    def new_account(self) -> int:
        acc = next(self._accounts)
        assert acc <= 1060, "the stack's sim has no fresh account left (ACCOUNTS)"
        return acc

    def gateway_env(self, account: int, db: Path | None = None, **extra: str) -> dict[str, str]:
        return {"TOPSTEP_ACCOUNT_ID": str(account),
                "GATEWAY_DATABASE_PATH": str(db or self.tmp / f"orders-{account}.db"),
                "GATEWAY_UNKNOWN_WAIT": "4", "GATEWAY_RECONCILE_INTERVAL": "2",
                "GATEWAY_REST_BUDGET": "2000/60", **extra}

    def gateway(self, account: int, db: Path | None = None, **extra: str) -> Proc:
        """A gateway for `account`; any gateway an earlier test left running is stopped first
        (every gateway answers the service name `gateway` on this one bus)."""
        for p in self.gateways:
            if p.alive():
                p.terminate()
        proc = self.procs.chillly("gateway", name=f"gateway-{account}",
                                  env=self.gateway_env(account, db, **extra))
        self.gateways.append(proc)
        return proc

    def journal(self, account: int, db: Path | None = None) -> sqlite3.Connection:
        conn = sqlite3.connect(f"file:{db or self.tmp / f'orders-{account}.db'}?mode=ro",
                               uri=True)
        conn.row_factory = sqlite3.Row
        return conn

    def cli(self, *args: str) -> tuple[int, str, str]:
        import subprocess
        import os
        import sys
        from tests.support import ROOT
        p = subprocess.run([sys.executable, "-m", "chillly.cli", *args], cwd=str(ROOT),
                           env={**os.environ, **self.env}, capture_output=True, text=True,
                           timeout=30)
        return p.returncode, p.stdout, p.stderr


def _stack(tmp_path_factory: pytest.TempPathFactory, **extra: str) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("gw")
    env = {"BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
           "SIM_PORT": str(free_port()), "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "1",
           "SIM_ACCOUNTS": ACCOUNTS, "SIM_RATE_OTHER": "100000", "RUN_DIR": str(tmp / "run"),
           "HEARTBEAT_INTERVAL": "0.2", "LOG_LEVEL": "INFO", **extra}
    procs = Procs(tmp, env)
    procs.spawn(["-m", "broker"], name="broker")
    procs.chillly("sim", name="sim")
    try:
        wait_ready(f"http://127.0.0.1:{env['SIM_PORT']}")
        yield Stack(procs, env, tmp)
    finally:
        procs.cleanup()
        print(procs.dump_logs()[-6000:])


def stack_fixture(**extra: str) -> Any:
    """A module-scoped `stack` fixture: `stack = stack_fixture()` in a test module; `extra`
    adds to every process's environment (e.g. CLOCK_SPEED with CLOCK_ANCHOR)."""
    if not extra:
        return pytest.fixture(scope="module", name="stack")(_stack)

    def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
        yield from _stack(tmp_path_factory, **extra)
    return pytest.fixture(scope="module", name="stack")(stack)


class Tap:
    """A test-side bus client: commands to the gateway, and every trading event it publishes."""

    def __init__(self, env: dict[str, str], name: str = "test") -> None:
        self.bus = Bus(env["BUS_PUBLISH_ADDR"], env["BUS_SUBSCRIBE_ADDR"], name)
        self.tools_path = tools_path(env)
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.heartbeats: list[dict[str, Any]] = []
        for prefix in ("order.", "fill.", "position.", "account."):
            self.bus.on(prefix, self._event)
        self.bus.on("hb.gateway.", lambda env: self.heartbeats.append(env.payload))
        self._n = itertools.count(1)

    def _event(self, env: Envelope) -> None:
        self.events.append((env.topic, env.payload))

    async def __aenter__(self) -> "Tap":
        await self.bus.ready(timeout=START_TIMEOUT)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.bus.close()

    def cid(self) -> str:
        return f"manual-t{id(self) % 100000}-{next(self._n)}"

    async def ask(self, name: str, args: dict[str, Any] | None = None, *,
                  timeout: float = 15.0, rid: str | None = None) -> Any:
        """A command as the trader's tools send it: over the gateway's tools socket."""
        ok, result, error = await ask_tools(self.tools_path, name, args, timeout=timeout,
                                            rid=rid)
        assert ok, error
        return result

    async def ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the gateway answers `account` with ready true (a gateway's start: imports, login,
        the start-up reconcile, up to 10 s for the user hub; slow on a loaded machine)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            try:
                res = await self.ask("account", timeout=1.0)
                if res.get("ready"):
                    return
            except Exception:
                pass
            if loop.time() > deadline:
                raise AssertionError("gateway not ready")
            await asyncio.sleep(0.1)

    async def submit(self, **args: Any) -> dict[str, Any]:
        args.setdefault("client_id", self.cid())
        args.setdefault("type", "market")
        res = await self.ask("submit", args)
        assert isinstance(res, dict)
        return res

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [p for t, p in self.events if p["type"] == kind]

    def counter(self, name: str) -> int:
        return int(self.heartbeats[-1]["counters"].get(name, 0)) if self.heartbeats else 0


def dump(obj: Any) -> str:
    return json.dumps(obj, indent=1, default=str)


__all__ = ["Stack", "Tap", "Venue", "stack_fixture", "eventually", "dump"]


async def gateway_ready(bus: Any, timeout: float = START_TIMEOUT) -> None:
    """Wait until the gateway answers `account` with ready (its start-up reconcile done)."""
    async def ready() -> bool:
        try:
            r = await bus.request("gateway", "account", {}, timeout=1.0, attempts=1)
        except Exception:
            return False
        return bool(r.ok and isinstance(r.result, dict) and r.result.get("ready"))
    await aeventually(ready, timeout=timeout, interval=0.2, what="gateway ready")
