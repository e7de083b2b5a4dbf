"""`chillly tap`: watch the bus. Prints every message matching the given topic prefixes.

A debugging tool must show what is really on the wire, so the tap decodes without trusting:
a payload that is not msgpack is printed as `UNDECODABLE` with its bytes, one that decodes but
breaks its schema is printed with `INVALID` and the reason. It proves its own path through the
broker (a loopback probe) before it says "listening" on stderr, so scripts know when it is live.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import signal
import sys
import time
from collections import Counter
from typing import Any, TextIO

import zmq
import zmq.asyncio

from chillly.bus import DEFAULT_MAX_MESSAGE_BYTES
from chillly.codec import DecodeError, encode, unpack
from chillly.security import CurveKeys, curve_from_settings, require_safe, secure_client
from chillly.errors import StartupError
from chillly import topics
from chillly.messages import Probe, SchemaError, validate
from chillly.process import die_with_parent
from chillly.settings import Settings, load_settings

_ENVELOPE = ("type", "v", "src", "seq", "ts")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefixes", nargs="*", default=[""],
                   help="topic prefixes to watch (default: everything)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--count", type=int, default=0, help="stop after N messages")
    p.add_argument("--stats", action="store_true", help="print message rates per topic each second")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="exit (code 1) if nothing arrives for this many seconds (0: wait forever)")


def _fmt_time(ms: Any) -> str:
    if not isinstance(ms, int):
        return "--:--:--.---"
    t = time.gmtime(ms / 1000)
    return time.strftime("%H:%M:%S", t) + f".{ms % 1000:03d}"


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.10g}"
    if isinstance(v, (dict, list)):
        return json.dumps(v, separators=(",", ":"), default=str)
    return str(v)


def format_line(topic: str, payload: Any, problem: str | None) -> str:
    """One readable line: time, topic, source, seq, type and the other fields."""
    if not isinstance(payload, dict):
        return f"INVALID {topic} {problem}: {payload!r}"
    head = (f"{_fmt_time(payload.get('ts'))} {topic} {payload.get('src', '?')} "
            f"#{payload.get('seq', '?')} {payload.get('type', '?')}")
    fields = " ".join(f"{k}={_fmt_value(v)}" for k, v in payload.items() if k not in _ENVELOPE)
    line = f"{head} {fields}".rstrip()
    return f"INVALID({problem}) {line}" if problem else line


def format_json(topic: str, payload: Any, problem: str | None) -> str:
    out: dict[str, Any] = {"topic": topic, "payload": payload}
    if problem:
        out["invalid"] = problem
    return json.dumps(out, default=lambda o: o.hex() if isinstance(o, bytes) else str(o))


class Tap:
    def __init__(self, sub_addr: str, pub_addr: str, prefixes: list[str], out: TextIO,
                 curve: CurveKeys | None = None,
                 max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        for addr in (sub_addr, pub_addr):
            require_safe(addr, curve)
        self.ctx = zmq.asyncio.Context()
        self.sub = self.ctx.socket(zmq.SUB)
        self.pub = self.ctx.socket(zmq.PUB)
        for s in (self.sub, self.pub):
            s.setsockopt(zmq.LINGER, 0)
            s.setsockopt(zmq.MAXMSGSIZE, max_message_bytes)
            secure_client(s, curve)
        self.sub.setsockopt(zmq.RCVHWM, 1_000_000)
        self.sub.connect(sub_addr)
        self.pub.connect(pub_addr)
        self.instance = f"tap-{os.getpid()}-{secrets.token_hex(2)}"
        self.probe_topic = topics.probe(self.instance)
        self.prefixes = prefixes
        for p in prefixes:
            self.sub.setsockopt(zmq.SUBSCRIBE, p.encode())
        self.sub.setsockopt(zmq.SUBSCRIBE, self.probe_topic.encode())
        self.out = out
        self.rates: Counter[str] = Counter()

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        nonce = secrets.randbits(40)
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            await self.pub.send_multipart(
                encode(self.probe_topic, Probe(nonce=nonce), self.instance, seq,
                       int(time.time() * 1000)))
            if await self.sub.poll(50):
                frames = await self.sub.recv_multipart()
                if frames[0].decode(errors="replace") == self.probe_topic:
                    return True
                self.pending = frames  # a real message arrived first: keep it
                return True
        return False

    def render(self, frames: list[bytes], as_json: bool) -> str | None:
        topic = frames[0].decode("utf-8", errors="replace") if frames else ""
        if topic.startswith(self.probe_topic):
            return None
        if len(frames) != 2:
            payload: Any = [f.hex() for f in frames]
            problem: str | None = f"UNDECODABLE {len(frames)} frames"
        else:
            try:
                payload = unpack(frames[1])
                try:
                    validate(payload)
                    problem = None
                except SchemaError as exc:
                    problem = str(exc)
            except DecodeError as exc:
                payload, problem = frames[1][:64].hex(), f"UNDECODABLE {exc}"
        if problem and problem.startswith("UNDECODABLE") and not as_json:
            return f"UNDECODABLE {topic} {problem[12:]}: {payload}"
        return format_json(topic, payload, problem) if as_json else format_line(topic, payload, problem)

    async def run(self, as_json: bool, count: int, stats: bool, timeout: float) -> int:
        shown = 0
        pending = getattr(self, "pending", None)
        last_stats = time.monotonic()
        last_msg = time.monotonic()
        while True:
            if pending is not None:
                frames, pending = pending, None
            else:
                wait_ms = 200 if (stats or timeout) else None
                if not await self.sub.poll(wait_ms):
                    frames = None
                else:
                    frames = await self.sub.recv_multipart()
            now = time.monotonic()
            if frames is not None:
                if stats:
                    topic = frames[0].decode("utf-8", errors="replace")
                    if not topic.startswith(self.probe_topic):
                        self.rates[topic] += 1
                        shown += 1
                else:
                    line = self.render(frames, as_json)
                    if line is not None:
                        self.out.write(line + "\n")
                        self.out.flush()
                        shown += 1
                        last_msg = now
                if count and shown >= count:
                    return 0
            elif timeout and now - last_msg > timeout:
                return 1
            if stats and now - last_stats >= 1.0:
                span = now - last_stats
                last_stats = now
                total = sum(self.rates.values())
                parts = [f"{t} {n / span:.0f}/s" for t, n in self.rates.most_common()]
                self.out.write(f"{time.strftime('%H:%M:%S')} total {total / span:.0f}/s  "
                               + "  ".join(parts) + "\n")
                self.out.flush()
                if self.rates:
                    last_msg = now
                self.rates.clear()

    def close(self) -> None:
        self.sub.close(linger=0)
        self.pub.close(linger=0)
        self.ctx.term()


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings(Settings)
    try:
        tap = Tap(settings.bus_subscribe_addr, settings.bus_publish_addr, args.prefixes,
                  sys.stdout, curve_from_settings(settings), settings.bus_max_message_bytes)
    except StartupError as exc:
        print(f"chillly tap: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)  # type: ignore[union-attr]
    try:
        if not await tap.wait_ready():
            print("chillly tap: no answer from the broker at "
                  f"{settings.bus_subscribe_addr}; still waiting", file=sys.stderr, flush=True)
        else:
            print(f"chillly tap: listening on {settings.bus_subscribe_addr} for "
                  f"{' '.join(repr(p) for p in args.prefixes)}", file=sys.stderr, flush=True)
        return await tap.run(args.json, args.count, args.stats, args.timeout)
    except asyncio.CancelledError:
        return 0
    finally:
        tap.close()


def cli(args: argparse.Namespace) -> int:
    die_with_parent()   # a tap left behind by a dead parent would print to nobody forever
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
