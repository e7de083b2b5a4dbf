"""`chillly status`: is everything well? One look at the bus, one table, one exit code.

It listens to heartbeats (`hb.`) and alarms (`alarm.`) for a few heartbeat intervals, compares
what it heard with the programs supervisord.conf starts, and prints per program its state,
heartbeat age, active alarms and key counters, marking what is stale, missing, doubled (two
pids under one name), faulted or alarmed. Exit 0 only when every program is healthy, 1
otherwise (no broker, nothing heard, any problem), so a script or cron job can act on it.

The listening window is long enough (2.5 intervals) for every live process to beat twice, which
is what tells two processes under one name from one process and its restarted successor.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
import time
from pathlib import Path

from chillly import topics
from chillly.bus import Bus
from chillly.codec import Envelope
from chillly.messages import Alarm, Heartbeat
from chillly.health import KEY_COUNTERS, STALE_AFTER, HealthView, Row, expected_programs
from chillly.settings import Settings, load_settings
from chillly.timeframes import TimeframeSettings


class StatusSettings(TimeframeSettings):
    """Where the deployment's program list is (relative paths from the working directory)."""

    supervisor_conf: Path = Path("supervisord.conf")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=0.0,
                   help=f"seconds to listen (default: {STALE_AFTER} heartbeat intervals)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: {healthy, programs: [...]}")
    p.add_argument("--conf", type=Path, default=None,
                   help="supervisord.conf naming the expected programs (default: SUPERVISOR_CONF)")
    p.add_argument("--all", action="store_true", help="show every counter, not only non-zero")


async def collect(settings: Settings, view: HealthView, wait: float) -> bool:
    """Listen for `wait` seconds; False if the broker path could not be proven."""
    bus = Bus.from_settings(settings, "status")
    bus.on(topics.HEARTBEATS, lambda env: _heartbeat(view, env))
    bus.on(topics.ALARMS, lambda env: _alarm(view, env))
    try:
        try:
            started = time.monotonic()
            await bus.ready(timeout=min(5.0, max(wait, 1.0)))
        except Exception:
            return False
        await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
        return True
    finally:
        await bus.close()


def _heartbeat(view: HealthView, env: Envelope) -> None:
    if env.cls is Heartbeat:   # any type can be sent on any topic: take only heartbeats
        view.on_heartbeat(env.payload, time.monotonic())


def _alarm(view: HealthView, env: Envelope) -> None:
    if env.cls is Alarm:
        view.on_alarm(env.payload, time.monotonic())


def find_conf(conf: Path) -> Path:
    """`conf` as given; a relative one that is not here falls back to the project's own
    (beside the package), so `chillly status` run from elsewhere still knows the programs."""
    if conf.is_file() or conf.is_absolute():
        return conf
    beside = Path(__file__).resolve().parents[1] / conf
    return beside if beside.is_file() else conf


def cli(args: argparse.Namespace) -> int:
    settings = load_settings(StatusSettings)
    conf = find_conf(args.conf or settings.supervisor_conf)
    view = HealthView(settings.heartbeat_interval, expected_programs(conf))
    wait = args.wait or settings.heartbeat_interval * STALE_AFTER
    reached = asyncio.run(collect(settings, view, wait))
    rows = view.rows(time.monotonic())
    healthy = reached and bool(rows) and all(r.healthy for r in rows)
    note = settings.closed_note()   # quiet feeds are no fault while the market is closed
    unguarded = None
    if not any(r.name == "gateway" and r.state == "RUNNING" for r in rows):
        unguarded = stopped_positions_note()
    if args.json:
        print(json.dumps({"healthy": healthy, "broker": reached, "market_closed": note,
                          "unguarded_positions": unguarded,
                          "conf": str(conf), "programs": [r.as_dict() for r in rows]},
                         default=str))
        return 0 if healthy else 1
    if unguarded:
        print(unguarded, file=sys.stderr)
    if not reached:
        print("no broker: is `chillly broker` running?", file=sys.stderr)
        return 1
    if not rows:
        print(f"no heartbeats, and no programs in {conf}", file=sys.stderr)
        return 1
    print(render(rows, show_all=args.all))
    if not conf.is_file():
        print(f"\n(no {conf}: programs that never heartbeat cannot be shown as missing)")
    bad = [r.name for r in rows if not r.healthy]
    print(f"\n{'UNHEALTHY: ' + ', '.join(bad) if bad else 'all healthy'} "
          f"({len(rows)} programs, {conf})")
    if note:
        print(note)
    return 0 if healthy else 1


#: Who knows the positions left open when the gateway stopped (its journal): looked up by name
#: only when needed, as chillly/cli.py finds commands, so the kernel imports no process package.
STOPPED_POSITIONS = "gateway.trades:open_positions_note"


def stopped_positions_note() -> str | None:
    """The warning for positions the journal shows open while no gateway runs, if any."""
    module, func = STOPPED_POSITIONS.split(":")
    try:
        note = getattr(importlib.import_module(module), func)()
    except ImportError:
        return None
    return note if isinstance(note, str) else None


def render(rows: list[Row], show_all: bool = False) -> str:
    lines = [f"  {'PROGRAM':<22} {'STATE':<9} {'PID':>7} {'UPTIME':>8} {'HB AGE':>7}  "
             "PROBLEMS / ALARMS / COUNTERS"]
    for r in rows:
        inst = r.instance
        mark = "  " if r.healthy else "! "
        pid = str(inst.pid) if inst else "-"
        uptime = f"{inst.uptime_ms / 1000:.0f}s" if inst else "-"
        age = f"{r.age:.1f}s" if r.age is not None else "-"
        tail: list[str] = []
        tail.extend(p for p in r.problems if not p.startswith("alarm:"))
        tail.extend(f"[{code}] {text}" for code, text in sorted(r.alarms.items()))
        if inst:
            counters = sorted(inst.counters.items(),
                              key=lambda kv: (kv[0] not in KEY_COUNTERS, kv[0]))
            tail.append(" ".join(f"{k}={v}" for k, v in counters if show_all or v))
        lines.append(f"{mark}{r.name:<22} {r.state:<9} {pid:>7} {uptime:>8} {age:>7}  "
                     + " | ".join(t for t in tail if t))
    return "\n".join(lines)
