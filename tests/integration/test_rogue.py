"""Bad input on the running system: the whole deployment under supervisord (the real
supervisord.conf, two strategies trading through the gateway), then a rogue publisher (tests/system/rogue.py) floods the broker with every
kind of malformed frame, impossible message, bogus command and 10 MB payload.

Afterwards: every program is still the same process (no crash, no restart), each counted what
it rejected, the database holds no impossible row (and nothing of the rogue's contract), the
subscription set is unchanged, no strategy saw an impossible bar, the venue has no order but
the strategies' own, bars still flow and equal the venue's,
and `chillly status` says all is well once the rogue's fake heartbeats have gone stale, but for
the gateway's alarm about the trader's commands the rogue sent over the bus.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import pytest

from chillly.clock import MINUTE_MS
from chillly.messages import SubscriptionSet
from tests.integration.test_feeds_helpers import Stack
from tests.support import PYTHON, ROOT, Procs, aeventually
from tests.system.chaos import Chaos
from tests.system.deploy import Deployment, ctl
from tests.system.rogue import ROGUE, Rogue

BAD_BAR = ("NOT (l <= o AND o <= h AND l <= c AND c <= h) OR l < 0 OR volume < 0 "
           "OR t % 60000 != 0 OR t < 0 OR h != h OR l != l OR o != o OR c != c "
           "OR abs(h) > 1e300 OR abs(l) > 1e300 OR tf NOT IN ('1m','5m','15m','30m','1h','4h','1d')")


def db_rows(path: str, sql: str) -> list[Any]:
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def counters(dep: Deployment, name: str) -> dict[str, Any]:
    return dict(dep.beats[name]["counters"])


@pytest.mark.timeout(240)
async def test_rogue_input_rejects_everything_and_breaks_nothing(
        procs: Procs, tmp_path: Path, bus_env: dict[str, str]) -> None:
    chaos = Chaos(procs, tmp_path, bus_env, STORE_RECORD_TICKS="1")   # strategies too
    env, dep = chaos.env, chaos.dep
    subs: list[list[str]] = []
    dep.bus.on("subs.set.", lambda e: subs.append(list(e.payload["contracts"]))
               if e.src == "subscriptions" and e.cls is SubscriptionSet else None)
    stack = Stack(procs)
    db = env["DATABASE_PATH"]
    rogue = Rogue(env["BUS_PUBLISH_ADDR"])
    try:
        await chaos.start()
        await aeventually(lambda: subs, 30, what="the subscription set")
        contracts = subs[-1]
        assert contracts, "no contracts subscribed"
        # Bars are in the database before the assault.
        await aeventually(lambda: os.path.exists(db) and db_rows(
            db, "SELECT count(*) FROM bars WHERE tf='1m'")[0][0] >= 3, 60, interval=0.2,
            what="1m bars in the database")
        pids = {n: b["pid"] for n, b in dep.beats.items()}
        before = {n: counters(dep, n) for n in dep.names}

        await asyncio.to_thread(rogue.assault, contracts, "reply.rogue.")
        rogue.command("subscriptions", "nosuch", {}, f"bar.1m.{contracts[0]}.")  # reply misdirected
        await asyncio.to_thread(rogue.assault, contracts, "reply.rogue.", 5_000)
        sent = rogue.sent

        # Everyone kept going: same pids, RUNNING, fresh heartbeats after the assault.
        seen_after: dict[str, int] = {}

        def beat_again() -> bool:
            for n in dep.names:
                b = dep.beats[n]
                if b["uptime_ms"] > seen_after.setdefault(n, b["uptime_ms"]) and b["state"] == "RUNNING":
                    seen_after[n] = -1
            return all(v == -1 for v in seen_after.values())

        await aeventually(beat_again, 60, interval=0.1, what="every program heartbeating again")
        assert {n: dep.beats[n]["pid"] for n in dep.names} == {n: pids[n] for n in dep.names}
        status = ctl(dep.conf, "status")
        for n in dep.names:
            assert f"pid {pids[n]}," in status, f"{n} restarted:\n{status}"

        # Each counted what it rejected (malformed frames, impossible bars).
        after = {n: counters(dep, n) for n in dep.names}

        def grew(name: str, key: str) -> int:
            return int(after[name].get(key, 0)) - int(before[name].get(key, 0))

        rejected_by = {n: grew(n, "malformed") for n in dep.names}
        for n in ("store", "aggregator", "series", "feed-bars", "subscriptions", "metrics"):
            assert rejected_by[n] > 0, f"{n} counted no malformed input: {after[n]}"
        assert grew("store", "rejected") > 0, after["store"]
        for n in ("strategy-ema", "strategy-orb"):   # impossible bars never reach a strategy
            assert grew(n, "rejected_bars") > 0, after[n]
            assert chaos.live(n[len("strategy-"):]), dep.beats[n]
        for n in ("feed-bars", "feed-market"):   # impossible subscription sets not followed
            assert grew(n, "rejected_sets") > 0, after[n]
        assert not any("following nothing" in line or "following , " in line
                       for n in ("feed-bars", "feed-market")
                       for line in (tmp_path / "run" / "log" / f"{n}.log").read_text().splitlines())

        # Nothing impossible, nothing of the rogue's, in the database.
        assert db_rows(db, f"SELECT * FROM bars WHERE {BAD_BAR} LIMIT 5") == []
        assert db_rows(db, f"SELECT count(*) FROM bars WHERE contract = '{ROGUE}'")[0][0] == 0
        assert db_rows(db, "SELECT * FROM contracts WHERE NOT (tick_size > 0 AND tick_value > 0 "
                           "AND tick_size < 1e300 AND tick_value < 1e300) OR symbol = ''") == []
        assert db_rows(db, "SELECT count(*) FROM contracts WHERE contract NOT IN ("
                           + ",".join(f"'{c}'" for c in contracts) + ")")[0][0] == 0
        assert db_rows(db, "SELECT * FROM trades WHERE NOT (price >= 0 AND size > 0 AND "
                           "aggressor IN (0, 1) AND t >= 0) OR price IS NULL LIMIT 5") == []
        assert db_rows(db, "SELECT * FROM quotes WHERE bid < 0 OR ask < 0 OR last < 0 "
                           "OR volume < 0 LIMIT 5") == []
        # The subscription set is what it was; the venue saw no order.
        assert subs[-1] == contracts
        # No order from the rogue: every order at the venue is a strategy's, journaled.
        # The gateway heard the rogue's order commands and refused them at its bus door (a
        # sender that is not a strategy); the strategies' own submits in this window are not
        # something to count on.
        assert grew("gateway", "refused_bus") > 0, after["gateway"]
        assert chaos.venue is not None
        with chaos.db(env["GATEWAY_DATABASE_PATH"]) as j:
            owners = {r["custom_tag"]: r["owner"] for r in j.execute("SELECT * FROM intents")}
        for o in chaos.venue.orders(chaos.account):
            tag = o.get("customTag")
            if tag:   # bracket legs carry their entry's tag with a suffix
                owner = owners.get(tag) or next((w for t, w in owners.items()
                                                 if tag.startswith(t + "-")), None)
                assert owner in ("ema", "orb"), (o, owners)

        # Bars still flow and equal the venue's: a new final minute lands after the assault.
        newest = db_rows(db, "SELECT max(t) FROM bars WHERE tf='1m'")[0][0]
        await aeventually(lambda: db_rows(db, "SELECT max(t) FROM bars WHERE tf='1m'")[0][0]
                          >= newest + 3 * MINUTE_MS, 60, interval=0.2,
                          what="new 1m bars after the assault")
        for c in contracts:
            rows = db_rows(db, f"SELECT t,o,h,l,c,volume FROM bars WHERE tf='1m' AND "
                               f"contract='{c}' ORDER BY t")
            ours = [list(r) for r in rows]
            venue = stack.venue_bars(c, ours[0][0], ours[-1][0] + MINUTE_MS)
            assert ours == venue, f"{c}: database differs from the venue"

        # And the health view agrees once the rogue's fake heartbeats are stale, but for the
        # gateway's alarm `refused_command` naming the rogue: it sent the trader's commands
        # over the bus (cleared after a quiet minute; docs/architecture.md, "Trust").
        def healthy() -> bool:
            out = subprocess.run([PYTHON, "-m", "chillly.cli", "status", "--json", "--conf",
                                  str(dep.conf)], cwd=str(ROOT), env={**os.environ, **env},
                                 capture_output=True, text=True, timeout=60)
            healthy.last = out.stdout + out.stderr  # type: ignore[attr-defined]
            try:
                view = json.loads(out.stdout)
            except ValueError:
                return False
            problems = {r["name"]: r["problems"] for r in view["programs"] if r["problems"]}
            gateway = next((r for r in view["programs"] if r["name"] == "gateway"), {})
            return bool(view["broker"]) and (not problems or (
                list(problems) == ["gateway"] and problems["gateway"] == ["alarm: refused_command"]
                and "'rogue'" in gateway["alarms"]["refused_command"]))
        try:
            await aeventually(healthy, 30, interval=0.5, what="chillly status exit 0")
        except AssertionError:
            raise AssertionError(healthy.last) from None  # type: ignore[attr-defined]
        print(f"rogue sent {sent} frames; malformed counted per program: {rejected_by}; "
              f"store rejected {grew('store', 'rejected')}")
    finally:
        rogue.close()
        await chaos.close()
