"""`chillly tap`: watch the bus. Prints every message matching the given topic prefixes.

A debugging tool must show what is really on the wire, so the tap decodes without trusting:
a payload that is not msgpack is printed as `UNDECODABLE` with its bytes, one that decodes but
breaks its schema is printed with `INVALID` and the reason. It proves its own path through the
bus (a loopback probe) before it says "listening" on stderr, so scripts know when it is live.
It reads through the configured backend (`BUS_BACKEND`), so it works on ZeroMQ and Redis alike.
With `--replay N` it first prints the newest N messages the backend kept of the watched topics
(Redis streams), so a trader sees what happened while nothing was watching; a backend that keeps
no history says so on stderr.
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
from collections import Counter, deque
from collections.abc import Sequence
from typing import Any, TextIO

from chillly.bus_backends import Backend, from_settings as backend_from_settings
from chillly.codec import DecodeError, encode, unpack
from chillly.errors import StartupError
from chillly import topics
from chillly.messages import Probe, SchemaError, validate
from chillly.process import die_with_parent
from chillly.settings import load_settings
from chillly.timeframes import TimeframeSettings

_ENVELOPE = ("type", "v", "src", "seq", "ts")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("prefixes", nargs="*", default=[""],
                   help="topic prefixes to watch (default: everything)")
    p.add_argument("--json", action="store_true", help="print JSON lines")
    p.add_argument("--count", type=int, default=0, help="stop after N messages")
    p.add_argument("--stats", action="store_true", help="print message rates per topic each second")
    p.add_argument("--timeout", type=float, default=0.0,
                   help="exit (code 1) if nothing arrives for this many seconds (0: wait forever)")
    p.add_argument("--replay", type=int, default=0, metavar="N",
                   help="first print the newest N messages the bus kept of the watched topics "
                        "(BUS_BACKEND=redis with streams on), then go live")


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
    """Prints what its backend receives, decoded without trusting it."""

    def __init__(self, backend: Backend, prefixes: list[str], out: TextIO) -> None:
        self.backend = backend
        self.instance = f"tap-{os.getpid()}-{secrets.token_hex(2)}"
        self.probe_topic = topics.probe(self.instance)
        self.prefixes = prefixes
        for p in prefixes:
            backend.subscribe(p)
        backend.subscribe(self.probe_topic)
        self.out = out
        self.rates: Counter[str] = Counter()
        self.frames: asyncio.Queue[Sequence[bytes]] = asyncio.Queue()
        self.receiver: asyncio.Task[None] | None = None
        self.replayed: set[bytes] = set()

    def _received(self, frames: Sequence[bytes], sender: str | None) -> None:
        self.frames.put_nowait(frames)

    async def _next(self, timeout: float | None) -> Sequence[bytes] | None:
        if self.receiver is None:
            self.receiver = asyncio.get_running_loop().create_task(
                self.backend.receive(self._received))
        try:
            return await asyncio.wait_for(self.frames.get(), timeout)
        except asyncio.TimeoutError:
            if self.receiver.done():
                self.receiver.result()   # the receive loop's own error, if it died
            return None

    async def wait_ready(self, timeout: float = 10.0) -> bool:
        nonce = secrets.randbits(40)
        deadline = time.monotonic() + timeout
        seq = 0
        while time.monotonic() < deadline:
            seq += 1
            self.backend.send(self.probe_topic,
                              encode(self.probe_topic, Probe(nonce=nonce), self.instance, seq,
                                     int(time.time() * 1000))[1])
            frames = await self._next(0.05)
            if frames is None:
                continue
            if bytes(frames[0]).decode(errors="replace") != self.probe_topic:
                self.pending = frames  # a real message arrived first: keep it
            return True
        return False

    async def history(self, n: int) -> list[tuple[bytes, bytes]] | None:
        """The newest `n` kept messages of the watched topics, oldest first, as frames; None
        when the backend keeps no history of any family they touch. Remembered, so the same
        message received live meanwhile is not printed twice."""
        kept = self.backend.kept_families()
        families = sorted(kept if "" in self.prefixes else
                          {p.split(".", 1)[0] for p in self.prefixes} & kept)
        if not families:
            return None
        prefixes = tuple(p.encode() for p in self.prefixes)
        picked: list[tuple[tuple[int, int], bytes, bytes]] = []
        for family in families:
            last: deque[tuple[tuple[int, int], bytes, bytes]] = deque(maxlen=n)
            after = "-"
            while entries := await self.backend.replay(family, after, 1000):
                after = entries[-1][0]
                for entry_id, topic, payload, _ in entries:
                    if topic.startswith(prefixes):
                        ms, _, seq = entry_id.partition("-")
                        last.append(((int(ms), int(seq or 0)), topic, payload))
            picked.extend(last)
        newest = sorted(picked)[-n:]   # families interleave by entry id (server time)
        self.replayed = {payload for _, _, payload in newest}
        return [(topic, payload) for _, topic, payload in newest]

    def render(self, frames: Sequence[bytes], as_json: bool) -> str | None:
        topic = bytes(frames[0]).decode("utf-8", errors="replace") if frames else ""
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
                frames = await self._next(0.2 if (stats or timeout) else None)
            now = time.monotonic()
            if frames is not None and self.replayed and len(frames) == 2 \
                    and bytes(frames[1]) in self.replayed:
                self.replayed.discard(bytes(frames[1]))   # printed from the history already
                continue
            if frames is not None:
                if stats:
                    topic = bytes(frames[0]).decode("utf-8", errors="replace")
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

    async def close(self) -> None:
        if self.receiver is not None:
            self.receiver.cancel()
            await asyncio.wait({self.receiver}, timeout=1)
        await self.backend.close()


async def _main(args: argparse.Namespace) -> int:
    settings = load_settings(TimeframeSettings)
    try:
        tap = Tap(backend_from_settings(settings, "tap", hwm=1_000_000), args.prefixes,
                  sys.stdout)
    except StartupError as exc:
        print(f"chillly tap: {exc}", file=sys.stderr)
        return 2
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, main_task.cancel)  # type: ignore[union-attr]
    note = settings.closed_note()
    if note:   # no bars or quotes will come: say why and until when (before "listening")
        print(f"chillly tap: {note}", file=sys.stderr, flush=True)
    try:
        ready = await tap.wait_ready()
        shown = 0
        if args.replay > 0:
            try:
                kept = await tap.history(args.replay)
            except Exception as exc:   # a link down, an ACL without XRANGE: say it, go live
                print(f"chillly tap: --replay: could not read the history ({exc}); going live",
                      file=sys.stderr, flush=True)
                kept = []
            if kept is None:
                print(f"chillly tap: --replay: {tap.backend.describe()} keeps no history of "
                      "these topics (only BUS_BACKEND=redis with REDIS_STREAM_MAXLEN > 0 keeps "
                      "bars, orders, fills, positions, account, risk, alarms, ...)",
                      file=sys.stderr, flush=True)
            for frames in kept or ():
                line = tap.render(frames, args.json)
                if line is not None:
                    sys.stdout.write(line + "\n")
                    shown += 1
            sys.stdout.flush()
            if args.count and shown >= args.count:
                return 0
        # After the history: "listening" means live from here on.
        if not ready:
            print(f"chillly tap: no answer from the bus ({tap.backend.describe()}); "
                  "still waiting", file=sys.stderr, flush=True)
        else:
            print(f"chillly tap: listening on {tap.backend.describe()} for "
                  f"{' '.join(repr(p) for p in args.prefixes)}", file=sys.stderr, flush=True)
        return await tap.run(args.json, args.count - shown if args.count else 0, args.stats,
                             args.timeout)
    except asyncio.CancelledError:
        return 0
    finally:
        await tap.close()


def cli(args: argparse.Namespace) -> int:
    die_with_parent()   # a tap left behind by a dead parent would print to nobody forever
    try:
        return asyncio.run(_main(args))
    except KeyboardInterrupt:
        return 0
    except BrokenPipeError:
        return 0
