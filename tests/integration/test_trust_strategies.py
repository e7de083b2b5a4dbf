"""A hostile strategy, run in a real sandboxed host beside a healthy one, tries every route it
can find to act as someone else (issue 20 §1); nothing changes.

The system runs on the sim (broker, sim, feeds, store, series, gateway). `healthy` holds a long
1 ES protected by a resting sell stop. The routes (ROUTES below, one file for both runs):
- the trader's tools' own helper: `ask_sync("gateway", "resume")` and `risk --set-high-water`
  with a low number;
- a new bus client named `strategy-healthy` that cancels healthy's stop;
- a raw TCP socket to the broker;
- a raw ZeroMQ publisher, as `feed-market`, of forged quotes (bid 1,000,000) and a forged bar;
- and from inside the host, the host's own bus client (found with `gc`): forged quote and bar,
  a cancel of healthy's stop under its own name, `resume`, a subscription to healthy's orders.

First without the protection: the same routes, run by a plain process of the trader's user
(what a strategy was before: code beside a bus client, on loopback, as the trader). The halt is
lifted, the floor lowered, healthy's stop cancelled at the venue, and the gate and healthy both
see the forged prices. Then the same class runs as strategy `hostile` in its sandboxed host:
the sim's order list, the gateway's risk report and account events, and healthy's own log are
the judges; nothing changes, and every attempt is counted (the host's `refused_*`,
`socket_attempts` counters, the gateway's `refused_not_owner`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest

from chillly.tools_socket import ask as ask_tools
from tests.sim_client import login
from tests.integration.strategy_rig import Watcher, start_system, system_env
from tests.support import ROOT, Procs, aeventually, tools_path

STRATS = textwrap.dedent('''
    import asyncio, gc, json, os, socket, threading, time
    from strategy_host.api import Config, Strategy

    FORGED = 1_000_000.0

    def attempt(fn):
        try:
            return "ok " + repr(fn())[:160]
        except BaseException as exc:
            return f"refused {type(exc).__name__}: {exc}"[:160]

    def tools(name, args):
        from chillly.oneshot import ask_sync
        ok, result, error = ask_sync("gateway", name, args, timeout=4)
        if not ok:
            raise RuntimeError(error)
        return result

    def impersonate(t):
        from chillly.bus import Bus
        async def go():
            bus = Bus(t["pub"], t["sub"], "strategy-healthy")
            try:
                await bus.ready(timeout=4)
                r = await bus.request("gateway", "cancel", {"order_id": t["victim"]},
                                      timeout=3, attempts=1)
                if not (r.ok and r.result.get("status") == "cancelled"):
                    raise RuntimeError(repr(r))
                return r.result
            finally:
                await bus.close()
        return asyncio.run(go())

    def raw_tcp(t):
        with socket.create_connection(("127.0.0.1", t["broker_port"]), timeout=2):
            return "connected"

    def forge_zmq(t, seconds=3.0):
        import zmq
        from chillly.codec import encode_payload
        from chillly.messages import Bar, Quote
        ctx = zmq.Context()
        s = ctx.socket(zmq.PUB)
        s.setsockopt(zmq.LINGER, 500)
        s.connect(t["pub"])
        end, seq = time.time() + seconds, 0
        now_ms = int(t["market_ms"]())
        minute = now_ms - now_ms % 60000
        while time.time() < end:
            seq += 1
            q = Quote(contract=t["es"], bid=FORGED, ask=FORGED + 0.25, last=FORGED)
            s.send_multipart([f"quote.{t['es']}.".encode(),
                              encode_payload(q.body(), "feed-market", seq, int(t["market_ms"]()))])
            b = Bar(contract=t["es"], tf="1m", t=minute, o=FORGED, h=FORGED, l=FORGED,
                    c=FORGED, volume=1, final=True)
            s.send_multipart([f"bar.1m.{t['es']}.".encode(),
                              encode_payload(b.body(), "feed-bars", seq, int(t["market_ms"]()))])
            time.sleep(0.01)
        s.close()
        ctx.term()
        return f"{seq} quotes and bars sent"

    ROUTES = {
        "tools_resume": lambda t: tools("resume", {}),
        "tools_high_water": lambda t: tools("risk", {"set_high_water": t["low_water"]}),
        "bus_as_healthy_cancel": impersonate,
        "raw_tcp_broker": raw_tcp,
        "zmq_forged_quote_bar": forge_zmq,
    }

    def run_routes(t, names):
        return {n: attempt(lambda: ROUTES[n](t)) for n in names}


    class Healthy(Strategy):
        """Long 1 ES with a resting protective sell stop 10% below."""
        def on_bar(self, bar):
            if bar.c > FORGED / 2:
                self.log.info("HEALTHY FORGED BAR %s", bar.c)
                return
            pos = self.position().size
            if self.open_orders() and not pos:
                return
            if pos == 0:
                self.buy(1)
            elif not any(o.order_type == 4 or o.stop_price for o in self.open_orders()):
                self.sell(1, stop=round(bar.c * 0.9 / 0.25) * 0.25)
        def on_quote(self, q):
            if (q.bid or 0) > FORGED / 2:
                self.log.info("HEALTHY FORGED QUOTE %s", q.bid)


    class Params(Config):
        victim: int
        es: str
        pub: str
        sub: str
        broker_port: int
        low_water: float
        account: int


    class Hostile(Strategy):
        Config = Params

        def on_start(self):
            self.rounds = 0
            t = dict(self.config)
            t["market_ms"] = self.now
            def loop():
                n = 0
                while True:
                    n += 1
                    got = run_routes(t, list(ROUTES))
                    self.log.info("ATTACK-T %d %s", n, json.dumps(got))
                    time.sleep(1.0)
            threading.Thread(target=loop, daemon=True).start()

        def host_bus(self):
            from chillly.bus import Bus
            return next(o for o in gc.get_objects() if isinstance(o, Bus))

        def on_bar(self, bar):
            from chillly import topics
            from chillly.messages import Bar, Quote
            self.rounds += 1
            c = self.config
            got = {}
            bus = got_bus = None
            try:
                bus = self.host_bus()
                got_bus = "found"
            except Exception as exc:
                got["host_bus"] = f"refused {exc!r}"
            if bus is not None:
                got["host_bus"] = got_bus
                got["bus_quote"] = attempt(lambda: bus.publish(
                    topics.quote(c.es), Quote(contract=c.es, bid=FORGED, ask=FORGED, last=FORGED)))
                got["bus_bar"] = attempt(lambda: bus.publish(
                    topics.bar("1m", c.es), Bar(contract=c.es, tf="1m", t=bar.t, o=FORGED,
                                                h=FORGED, l=FORGED, c=FORGED, volume=1,
                                                final=True)))
                got["bus_subscribe"] = attempt(lambda: bus.on(
                    topics.order_event(c.account, "healthy"),
                    lambda env: self.log.info("HOSTILE SAW %s", env.payload)))
                loop = asyncio.get_event_loop()
                for name, args in (("cancel", {"order_id": c.victim}),
                                   ("resume", {}), ("risk", {"set_high_water": c.low_water}),
                                   ("refusals", {})):
                    async def ask(name=name, args=args):
                        try:
                            r = await bus.request("gateway", name, args, timeout=3, attempts=1)
                            self.log.info("ATTACK-R %s %s %s", name, r.ok, r.result or r.error)
                        except Exception as exc:
                            self.log.info("ATTACK-R %s False %r", name, exc)
                    loop.create_task(ask())
            self.log.info("ATTACK-L %d %s", self.rounds, json.dumps(got))
''')

RUNNER = textwrap.dedent('''
    import importlib.util, json, sys, time
    from chillly.clock import clock_from_settings
    from chillly.settings import load_settings
    spec = importlib.util.spec_from_file_location("strats", sys.argv[1])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    t = json.loads(sys.argv[2])
    t["market_ms"] = clock_from_settings(load_settings()).now_ms
    print("UNPROTECTED " + json.dumps(mod.run_routes(t, sys.argv[3].split(","))), flush=True)
''')

HEALTHY = '[strategies.healthy]\nclass = "strats.py:Healthy"\ncontracts = ["ES"]\nwarmup = 5\n'


def hostile_toml(t: dict[str, Any]) -> str:
    params = "\n".join(f"{k} = {json.dumps(v)}" for k, v in t.items())
    return (f'{HEALTHY}\n[strategies.hostile]\nclass = "strats.py:Hostile"\ncontracts = ["NQ"]\n'
            f'warmup = 0\n[strategies.hostile.params]\n{params}\n')


class Judge:
    """The venue's order list, the gateway's answers over the tools socket, its account events."""

    def __init__(self, env: dict[str, str], bus_env: dict[str, str], w: Watcher) -> None:
        self.env, self.w = env, w
        self.base = f"http://127.0.0.1:{bus_env['SIM_PORT']}"
        self.token = login(self.base)
        self.equity: list[float] = []
        w.bus.on("account.", lambda e: self.equity.append(e.payload.get("equity") or 0.0))

    async def tools(self, name: str, args: dict[str, Any] | None = None) -> Any:
        ok, result, error = await ask_tools(tools_path(self.env), name, args, timeout=15)
        assert ok, error
        return result

    async def flat(self) -> bool:
        res = await self.tools("positions", {})
        return not [p for p in res["positions"] if p.get("size")]

    def venue_orders(self, account: int) -> list[dict[str, Any]]:
        r = httpx.post(f"{self.base}/api/Order/searchOpen", json={"accountId": account},
                       headers={"Authorization": f"Bearer {self.token}"}, timeout=10)
        return list(r.json()["orders"])

    async def healthy_stop(self, account: int) -> int:
        """Healthy's resting stop at the venue (and the gateway says it is healthy's)."""
        async def stop() -> int | None:
            res = await self.tools("orders", {"owner": "healthy"})
            ours = [o["order_id"] for o in res["orders"]
                    if o["state"] == "working" and o.get("stop_price")]
            at_venue = {o["id"] for o in self.venue_orders(account) if o["type"] == 4}
            both = [o for o in ours if o in at_venue]
            return both[0] if both else None
        return int(await aeventually(stop, 90, interval=0.5, what="healthy's stop resting"))


def unprotected(strats: Path, env: dict[str, str], t: dict[str, Any], routes: str) -> dict:
    out = subprocess.run([sys.executable, "-c", RUNNER, str(strats), json.dumps(t), routes],
                         cwd=str(ROOT), env=env, capture_output=True, text=True, timeout=60)
    line = re.search(r"UNPROTECTED (\{.*\})", out.stdout)
    assert line, (out.stdout, out.stderr)
    return dict(json.loads(line.group(1)))


@pytest.mark.timeout(420)
async def test_a_hostile_strategy_cannot_act_as_anyone_else(
        procs: Procs, bus_env: dict[str, str], tmp_path: Path) -> None:
    strats = tmp_path / "strats.py"
    strats.write_text(STRATS)
    env = system_env(tmp_path, HEALTHY, STRATEGY_HOOK_BUDGET_MS="2000")
    start_system(procs, bus_env, env)
    w = Watcher(bus_env)
    await w.start()
    judge = Judge({**bus_env, **env}, bus_env, w)
    run_env = {**os.environ, **bus_env, **env}
    try:
        healthy = procs.chillly("strategy-host", "healthy", name="strategy-healthy", env=env)
        await w.wait_live("strategy-healthy", timeout=120)
        acct = (await judge.tools("account"))["account_id"]
        # The id ES resolved to, from the service that resolves it (the series cache knows the
        # symbol only once the store holds the metadata broadcast after it resolved).
        es = (await w.ask("subscriptions", "subscribe", {"contract": "ES"}))["contract"]
        stop = await judge.healthy_stop(acct)
        # The trader records a high-water mark 500 above the start (the floor rises by as much).
        hw0 = (await judge.tools("risk"))["starting_balance"] + 500.0
        risk0 = await judge.tools("risk", {"set_high_water": hw0})
        floor0 = risk0["floor"]
        t: dict[str, Any] = {
            "victim": stop, "es": es, "pub": bus_env["BUS_PUBLISH_ADDR"],
            "sub": bus_env["BUS_SUBSCRIBE_ADDR"],
            "broker_port": int(bus_env["BUS_PUBLISH_ADDR"].rsplit(":", 1)[1]),
            "low_water": hw0 - 500.0, "account": acct}

        # 1. Without the protection: the same code as a plain process of the trader's user.
        got = unprotected(strats, run_env, t, "bus_as_healthy_cancel,raw_tcp_broker,"
                                              "tools_high_water,zmq_forged_quote_bar")
        assert all(v.startswith("ok") for v in got.values()), got
        assert stop not in {o["id"] for o in judge.venue_orders(acct)}    # its stop: gone
        assert (await judge.tools("risk"))["floor"] < floor0               # the floor: lower
        await aeventually(lambda: "HEALTHY FORGED QUOTE" in healthy.log()
                          and "HEALTHY FORGED BAR" in healthy.log(), 20,
                          what="healthy fed the forged quote and bar")
        assert max(judge.equity) > 1e6, "the gate valued the position at the forged quote"
        assert (await judge.tools("halt", {"reason": "trader"}))["state"] == "HALTED"
        await aeventually(judge.flat, 30, interval=0.5, what="flat after the halt")
        got = unprotected(strats, run_env, t, "tools_resume")
        assert got["tools_resume"].startswith("ok"), got
        assert (await judge.tools("risk"))["state"] == "ACTIVE"             # the halt: lifted
        # Put it back: the floor, healthy's position and stop.
        await judge.tools("risk", {"set_high_water": hw0})
        assert (await judge.tools("risk"))["floor"] == floor0
        log_before = len(healthy.log())
        stop = await judge.healthy_stop(acct)
        t["victim"] = stop

        # 2. The same routes from the hostile class in its sandboxed host, beside healthy.
        (tmp_path / "strategies.toml").write_text(hostile_toml(t))
        judge.equity.clear()
        hostile = procs.chillly("strategy-host", "hostile", name="strategy-hostile", env=env)
        await w.wait_live("strategy-hostile", timeout=120)

        def rounds(kind: str) -> list[dict]:
            return [json.loads(m) for m in re.findall(rf"ATTACK-{kind} \d+ (\{{.*\}})",
                                                      hostile.log())]
        await aeventually(lambda: len(rounds("T")) >= 2 and len(rounds("L")) >= 2, 90,
                          interval=0.5, what="two rounds of every route")
        for r in rounds("T"):
            # A ZeroMQ publisher never says whether anyone got it: its judges are below
            # (neither the gate nor healthy saw a forged price).
            assert all(v.startswith("refused") for k, v in r.items()
                       if k != "zmq_forged_quote_bar"), r
        for r in rounds("L"):
            assert r["host_bus"] == "found", r        # it does reach its host's bus client
        host_log = hostile.log()
        assert "HOSTILE SAW" not in host_log
        replies = re.findall(r"ATTACK-R (\w+) (True|False) (.*)", host_log)
        assert replies and all(ok == "False" or "not_owner" in res
                               for _, ok, res in replies), replies
        # Nothing changed: healthy's stop rests at the venue, the floor and the state hold,
        # neither the gate nor healthy saw a forged price.
        assert stop in {o["id"] for o in judge.venue_orders(acct)}
        r = await judge.tools("risk")
        assert (r["floor"], r["state"]) == (floor0, "ACTIVE"), r
        assert "FORGED" not in healthy.log()[log_before:]
        assert judge.equity and max(judge.equity) < 1e6, max(judge.equity)
        # ... and every attempt was counted.
        c = w.beats["strategy-hostile"]["counters"]
        assert c["refused_publish"] >= 4 and c["refused_subscribe"] >= 1, c
        assert c["refused_command"] >= 4 and c["socket_attempts"] >= 2, c
        assert w.beats["strategy-hostile"]["alarms"].get("refused"), w.beats["strategy-hostile"]
        assert w.counter("gateway", "refused_not_owner") >= 2

        # The trader's halt holds while the hostile goes on trying to lift it.
        assert (await judge.tools("halt", {"reason": "trader"}))["state"] == "HALTED"
        seen = len(rounds("T"))
        await aeventually(lambda: len(rounds("T")) >= seen + 2, 60, interval=0.5,
                          what="two more rounds after the halt")
        r = await judge.tools("risk")
        assert (r["state"], r["floor"]) == ("HALTED", floor0), r
        assert w.live("strategy-healthy") and w.live("strategy-hostile")
    finally:
        await w.close()
