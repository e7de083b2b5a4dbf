"""`chillly status`: the last heartbeat of every process on the bus, as a table."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from chillly.bus import Bus
from chillly.codec import Envelope
from chillly import topics
from chillly.settings import Settings, load_settings


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--wait", type=float, default=0.0,
                   help="seconds to listen (default: 1.5 heartbeat intervals)")
    p.add_argument("--json", action="store_true", help="print one JSON object per process")


async def collect(wait: float) -> dict[str, dict]:
    settings = load_settings(Settings)
    bus = Bus.from_settings(settings, "status")
    seen: dict[str, dict] = {}

    def on_hb(env: Envelope) -> None:
        seen[env.payload["name"]] = env.payload

    bus.on(topics.HEARTBEATS, on_hb)
    bus.start()
    try:
        await asyncio.sleep(wait or settings.heartbeat_interval * 1.5)
    finally:
        await bus.close()
    return seen


def cli(args: argparse.Namespace) -> int:
    seen = asyncio.run(collect(args.wait))
    if args.json:
        for name in sorted(seen):
            print(json.dumps(seen[name], default=str))
        return 0 if seen else 1
    if not seen:
        print("no heartbeats: is the broker running?", file=sys.stderr)
        return 1
    print(f"{'PROCESS':<22} {'STATE':<9} {'PID':>7} {'UPTIME':>9}  COUNTERS")
    for name in sorted(seen):
        hb = seen[name]
        counters = " ".join(f"{k}={v}" for k, v in sorted(hb.get("counters", {}).items()) if v)
        print(f"{name:<22} {hb['state']:<9} {hb['pid']:>7} {hb['uptime_ms'] / 1000:>8.0f}s  "
              f"{counters}")
    return 0
