"""A bus peer process for integration tests: publishes bars, or records what it receives.

It is a real CHILLLY process (same lifecycle, settings, bus client) so the tests exercise the
code every process uses. Configured by environment: PEER_MODE=pub|sub, PEER_NAME, and
    pub: PEER_CONTRACTS (comma list), PEER_COUNT (0 = until stopped), PEER_INTERVAL (seconds),
         PEER_BURST_PAUSE (seconds slept after every 500 of a burst)
    sub: PEER_PREFIXES (comma list), PEER_OUT (JSON-lines file, one line per message)
    serve: PEER_SERVICE; command "add" increments a counter after PEER_DELAY seconds.
"""

from __future__ import annotations

import asyncio
import json
import sys

from chillly.bus import CommandError
from chillly.codec import Envelope
from chillly import topics
from chillly.messages import Bar
from chillly.process import Service, run_service
from chillly.settings import Settings


class PeerSettings(Settings):
    peer_mode: str = "pub"
    peer_name: str = "peer"
    peer_contracts: str = "CON.F.US.EP.Z26"
    peer_count: int = 0
    peer_interval: float = 0.0
    peer_prefixes: str = "bar."
    peer_out: str = ""
    peer_service: str = "peer"
    peer_delay: float = 0.0
    peer_then_interval: float = 0.0  # after PEER_COUNT, keep publishing at this pace (0: stop)
    peer_burst_pause: float = 0.0  # with PEER_INTERVAL 0: seconds slept after every 500 messages
    peer_alarm: str = ""  # raise this alarm code once started (Service.alarm)

    @property
    def process_name(self) -> str:
        return self.peer_name


class Peer(Service):
    name = "peer"
    settings_cls = PeerSettings

    @property
    def process_name(self) -> str:
        return self.settings.peer_name  # type: ignore[attr-defined]

    async def on_start(self) -> None:
        s = self.settings
        self.counters = {"sent": 0, "got": 0, "served": 0}
        if s.peer_mode == "sub":  # type: ignore[attr-defined]
            self.out = open(s.peer_out, "a", buffering=1)  # type: ignore[attr-defined]
            for prefix in s.peer_prefixes.split(","):  # type: ignore[attr-defined]
                self.bus.on(prefix, self.record)
        if s.peer_mode == "serve":  # type: ignore[attr-defined]
            self.bus.serve(s.peer_service, {"add": self.add, "fail": self.fail})  # type: ignore[attr-defined]
        await self.bus.ready(timeout=20)
        if s.peer_alarm:  # type: ignore[attr-defined]
            self.alarm(s.peer_alarm, True, "raised by the test peer")  # type: ignore[attr-defined]
        print("READY", flush=True)

    def record(self, env: Envelope) -> None:
        self.counters["got"] += 1
        p = env.payload
        self.out.write(json.dumps({"topic": env.topic, "src": p["src"], "seq": p["seq"],
                                   "t": p.get("t"), "lost": self.bus.counters["lost"],
                                   "malformed": self.bus.counters["malformed"]}) + "\n")

    async def add(self, args: dict) -> dict:  # type: ignore[type-arg]
        await asyncio.sleep(self.settings.peer_delay)  # type: ignore[attr-defined]
        self.counters["served"] += 1
        return {"served": self.counters["served"], "echo": args.get("x")}

    async def fail(self, args: dict) -> None:  # type: ignore[type-arg]
        raise CommandError("refused on purpose")

    async def run(self) -> None:
        s = self.settings
        if s.peer_mode != "pub":  # type: ignore[attr-defined]
            await self.stopping.wait()
            return
        contracts = s.peer_contracts.split(",")  # type: ignore[attr-defined]
        count, interval = s.peer_count, s.peer_interval  # type: ignore[attr-defined]
        i = 0
        while not self.stopping.is_set() and (count == 0 or i < count):
            for c in contracts:
                self.bus.publish(topics.bar("1m", c), Bar(
                    contract=c, tf="1m", t=i * 60_000, o=1.0, h=2.0, l=0.5, c=1.5, volume=i,
                    final=True))
                self.counters["sent"] += 1
            i += 1
            if interval:
                await asyncio.sleep(interval)
            elif i % 500 == 0:
                # let heartbeats and signals in during a burst (and, paced, a reader keep up)
                await asyncio.sleep(s.peer_burst_pause)  # type: ignore[attr-defined]
        print(f"SENT {self.counters['sent']}", flush=True)
        while s.peer_then_interval and not self.stopping.is_set():  # type: ignore[attr-defined]
            for c in contracts:
                self.bus.publish(topics.bar("1m", c), Bar(
                    contract=c, tf="1m", t=i * 60_000, o=1.0, h=2.0, l=0.5, c=1.5, volume=i,
                    final=True))
            i += 1
            await asyncio.sleep(s.peer_then_interval)  # type: ignore[attr-defined]
        if count:
            await asyncio.sleep(0.5)  # let the last frames leave before linger-0 close
            self.stopping.set()


if __name__ == "__main__":
    sys.exit(run_service(Peer))
