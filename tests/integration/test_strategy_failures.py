"""What a strategy did wrong is visible (issue 21 item 3), on the whole system at 60x: a
strategy raising in on_bar shows its restarts and the exception line in `chillly strategies`,
and its crash loop is unhealthy in `chillly status`; a strategy whose orders the gateway
refuses has each refusal, with its rule, in its own log and in `chillly strategies`."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.integration.strategy_rig import Watcher, start_system, system_env
from tests.support import Procs, aeventually

STRATS = '''
from strategy_host.api import Strategy

class Raiser(Strategy):
    def on_bar(self, bar):
        raise ValueError("bad bar math 42")

class TooBig(Strategy):
    def on_bar(self, bar):
        if not self.open_orders() and not getattr(self, "sent", False):
            self.sent = True
            self.buy(60)
    def on_order(self, order):
        if order.state == "rejected" and (order.reason or "").startswith("catch-up"):
            self.sent = False          # sent from a catch-up bar: the gate never saw it
'''

TOML = '''
[strategies.raiser]
class = "strats.py:Raiser"
contracts = ["ES"]
timeframes = ["1m"]
warmup = 0

[strategies.toobig]
class = "strats.py:TooBig"
contracts = ["ES"]
timeframes = ["1m"]
warmup = 0
'''


def listing(procs: Procs, env: dict[str, str]) -> dict[str, dict]:  # type: ignore[type-arg]
    p = procs.chillly("strategies", "--json", "--conf", "/nonexistent.conf", env=env,
                      stdout_pipe=True, name="strategies-json")
    out, _ = p.popen.communicate(timeout=90)
    assert p.popen.returncode == 0, p.log()
    return {r["name"]: r for r in json.loads(out.decode())}


@pytest.mark.timeout(420)
async def test_failures_and_refusals_are_visible(procs: Procs, bus_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    (tmp_path / "strats.py").write_text(STRATS)
    env = system_env(tmp_path, TOML, STRATEGY_MAX_ERRORS="2")
    start_system(procs, bus_env, env)
    w = Watcher(bus_env)
    await w.start()
    alarms: list[dict] = []  # type: ignore[type-arg]
    w.bus.on("alarm.strategy-raiser.", lambda e: alarms.append(e.payload))
    try:
        big = procs.chillly("strategy-host", "toobig", name="strategy-toobig", env=env)
        # The raiser exits 1 after two errors in a row; restarted as supervisord would, until
        # its record shows a crash loop (3 restarts after a failure within 30 minutes). The
        # fourth run tolerates more errors, so it is there for `status` to see, and raising.
        for run in range(4):
            host = procs.chillly("strategy-host", "raiser", name=f"strategy-raiser-{run}",
                                 env={**env, "STRATEGY_MAX_ERRORS": "2" if run < 3 else "1000"})
            if run < 3:
                assert host.wait(180) == 1, host.log()[-3000:]
                assert "ValueError: bad bar math 42" in host.log()
        await aeventually(lambda: "crash_loop" in w.beats.get("strategy-raiser", {})
                          .get("alarms", {}), 120, interval=0.2, what="the crash loop alarm")
        assert any(a["code"] == "crash_loop" and a["active"] for a in alarms)

        status = procs.chillly("status", "--wait", "2", "--conf", "/nonexistent.conf", env=env,
                               stdout_pipe=True, name="status")
        out, _ = status.popen.communicate(timeout=60)
        text = out.decode()
        assert status.popen.returncode == 1, text
        line = next(ln for ln in text.splitlines() if "strategy-raiser" in ln)
        assert line.startswith("!") and "[crash_loop] crash loop: restarted 3 times" in line

        # The refused order: in the strategy's own log, with the rule. (An order it made from
        # a catch-up bar of the feed's start-up history is refused first by the host, rule
        # catchup, and tried again on the next bar: the gate's refusal is the one judged.)
        await aeventually(lambda: "refused: max_position: " in big.log(), 120, interval=0.2,
                          what="toobig's refusal in its log")
        refusal = next(ln for ln in big.log().splitlines() if "refused: max_position: " in ln)
        found = re.search(r"order (toobig-\d+) refused: max_position: ", refusal)
        assert found, refusal
        cid = found.group(1)

        rows = listing(procs, env)
        raiser, toobig = rows["raiser"], rows["toobig"]
        assert raiser["restarts"] == 3, raiser
        assert raiser["last_error"] == "on_bar: ValueError: bad bar math 42", raiser
        assert "crash loop: restarted 3 times" in raiser["crash_loop"]
        def gate_refusals() -> list[tuple[str, str]]:
            return [(r["client_id"], r["rule"]) for r in listing(procs, env)["toobig"]["refusals"]
                    if r["rule"] != "catchup"]
        await aeventually(gate_refusals, 30, interval=1.0, what="the refusal recorded")
        toobig = listing(procs, env)["toobig"]
        assert gate_refusals() == [(cid, "max_position")], toobig
        assert toobig["restarts"] == 0 and toobig["last_error"] is None

        p = procs.chillly("strategies", "--conf", "/nonexistent.conf", env=env,
                          stdout_pipe=True, name="strategies-text")
        out, _ = p.popen.communicate(timeout=90)
        text = out.decode()
        assert "! crash loop: restarted 3 times" in text and "bad bar math 42" in text
        assert f"refused {cid}: max_position: " in text
    finally:
        await w.close()
