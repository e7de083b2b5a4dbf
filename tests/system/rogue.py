"""A rogue publisher: every kind of malformed frame, impossible message and bogus command, a
flood, and 10 MB payloads, sent straight into the broker from a raw ZeroMQ socket (no codec,
so nothing of ours filters it first).

Everything sent here is *impossible* (bad framing, wrong types, prices that are not prices,
times that are not minutes, counts that are not counts) rather than merely false: the bus has no
per-publisher authorization inside its CURVE boundary, so a plausible but false final bar is
indistinguishable from a real one; that is a key-management question, not an input check.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterator
from typing import Any

import msgpack
import zmq

ROGUE = "CON.F.US.ROGUE.Z26"
BIG = 10 * 1024 * 1024


def _env(type_: str, seq: int = 1, **fields: Any) -> dict[str, Any]:
    return {"type": type_, "v": 1, "src": "rogue", "seq": seq, "ts": int(time.time() * 1000),
            **fields}


def _bar(contract: str, **over: Any) -> dict[str, Any]:
    base = {"contract": contract, "tf": "1m", "t": 60_000 * 29_000_000, "o": 100.0, "h": 101.0,
            "l": 99.0, "c": 100.5, "volume": 10, "final": True, "rev": 0, "origin": "poll"}
    return {**base, **over}


def impossible_bars(contract: str) -> Iterator[dict[str, Any]]:
    """Schema-valid final bars no venue can produce."""
    for over in ({"l": 102.0}, {"o": 200.0}, {"c": 1.0}, {"l": -5.0, "o": -1.0, "c": -1.0},
                 {"h": math.nan}, {"o": math.inf, "h": math.inf}, {"volume": -1},
                 {"volume": 2 ** 62}, {"t": 60_000 * 29_000_000 + 1}, {"t": -60_000},
                 {"t": 60_000 * 10 ** 9}, {"tf": "7x"}, {"tf": ""}, {"tf": "0m"},
                 {"rev": -3}, {"tf": "5m", "origin": "agg", "l": 500.0}):
        yield _bar(contract, **over)


def malformed_payloads() -> Iterator[bytes]:
    """Frames that fail decoding or the schema."""
    yield b""
    yield b"\xc1"                                   # never-used msgpack byte
    yield os.urandom(64)
    yield msgpack.packb(_bar("X"))[:-3]             # truncated
    yield b"\x91" * 100_000 + b"\xc0"               # nesting far beyond any stack
    for v in ([1, 2, 3], 7, "bar", None, True, 1.5):
        yield msgpack.packb(v)
    yield msgpack.packb({"o": 1})                   # no envelope
    yield msgpack.packb({**_env("bar"), "v": 2, **_bar("X")})
    yield msgpack.packb({**_env("nosuchtype")})
    yield msgpack.packb({**_env("bar"), "seq": "1", **_bar("X")})
    yield msgpack.packb({**_env("bar"), "ts": 1.5, **_bar("X")})
    yield msgpack.packb({**_env("bar"), "src": 5, **_bar("X")})
    for over in ({"o": "x"}, {"volume": 1.5}, {"final": "yes"}, {"t": None}, {"contract": 5},
                 {"volume": True}, {"h": [1]}):
        yield msgpack.packb({**_env("bar"), **_bar("X"), **over})
    bar = _bar("X")
    del bar["c"]
    yield msgpack.packb({**_env("bar"), **bar})
    yield msgpack.packb({**_env("bar"), **_bar("X")}, use_bin_type=False)  # raw strings
    yield msgpack.packb({**_env("bar"), **_bar("X"), "t": msgpack.ExtType(5, b"xx")})


def frames(contracts: list[str], seq0: int = 1) -> Iterator[list[bytes]]:
    """One pass of every bad frame on every topic a process listens to."""
    seq = seq0
    every = [*contracts, ROGUE]

    def pack(d: dict[str, Any]) -> bytes:
        return msgpack.packb(d)

    # Framing: wrong frame counts, bad topics.
    yield [b"bar.1m.X."]
    yield [b"bar.1m.X.", pack(_env("bar", **_bar("X"))), b"extra"]
    yield [b"\xff\xfe.", pack(_env("bar", **_bar("X")))]
    yield [b"", b""]
    topics = [*(f"bar.1m.{c}." for c in every), *(f"hist.1m.{c}." for c in every),
              "bar.5m.X.", "clock.1m.", "clock.5m.", "subs.set.", "contract.X.", "quote.X.",
              "trade.X.", "depth.X.", "hb.store.", "alarm.store.", "cmd.subscriptions.subscribe.",
              "cmd.series.window.", "cmd.feeds.backfill.", "cmd.aggregator.reconcile.",
              "cmd.gateway.submit.", "reply.x."]
    for topic in topics:
        for data in malformed_payloads():
            yield [topic.encode(), data]
    # Impossible values in schema-valid messages.
    for c in every:
        for b in impossible_bars(c):
            seq += 1
            for t in (f"bar.{b['tf'] or '1m'}.{c}.", f"hist.1m.{c}."):
                yield [t.encode(), pack(_env("bar", seq, **b))]
        rows = [[1, 2, 3], "row", [60_000, 1.0, 2.0, 3.0, 1.5, 1], [60_001, 1.0, 2.0, 0.5, 1.5, 1],
                [60_000, math.nan, 2.0, 0.5, 1.5, 1], [60_000, 1.0, 2.0, 0.5, 1.5, -1],
                [None] * 6, [60_000, "1", 2.0, 0.5, 1.5, 1]]
        yield [f"hist.1m.{c}.".encode(),
               pack(_env("bars", seq, contract=c, tf="1m", rows=rows, origin="poll"))]
        yield [f"hist.1m.{c}.".encode(),
               pack(_env("bars", seq, contract=c, tf="1m", rows="not a list", origin="poll"))]
        for tick_size, tick_value in ((0.0, 12.5), (-0.25, 12.5), (math.nan, 12.5),
                                      (0.25, math.inf), (0.25, -1.0)):
            yield [f"contract.{c}.".encode(), pack(_env(
                "contract", seq, contract=c, symbol="", symbol_id="", name="", description="",
                tick_size=tick_size, tick_value=tick_value, active=True))]
        yield [f"quote.{c}.".encode(), pack(_env("quote", seq, contract=c, bid=math.nan,
                                                 ask=-1.0, volume=-5))]
        yield [f"trade.{c}.".encode(), pack(_env("trade", seq, contract=c, price=math.nan,
                                                 size=-1, aggressor=9, t=-1))]
        yield [f"depth.{c}.".encode(), pack(_env("depth", seq, contract=c, snapshot=True,
                                                 levels=[[1], "x", [99, 1.0, -1, -1, -1]]))]
    for tf, t in (("7x", 0), ("1m", -60_000), ("1m", 61_234), ("5m", 60_000 * 10 ** 9),
                  ("", 0)):
        seq += 1
        yield [f"clock.{tf or '1m'}.".encode(), pack(_env("clock", seq, tf=tf, t=t))]
    for contracts_value in ([1, None, {}], ["", " ", "x" * 100_000], [["CON.F.US.EP.Z26"]]):
        seq += 1
        yield [b"subs.set.", pack(_env("subs", seq, contracts=contracts_value))]
    # Heartbeats and alarms that are not: bad state, bad counters, absurd names.
    yield [b"hb.x.", pack(_env("hb", seq, name="", pid=-1, state="LOL", uptime_ms=-1,
                                counters={"a": "b", "c": [1], "d": {"e": None}}))]
    yield [b"hb.x.", pack(_env("hb", seq, name="x" * 10_000, pid=2 ** 62, state="RUNNING",
                                uptime_ms=0, counters={}, alarms={"a": 1, "b": None}))]
    yield [b"alarm.x.", pack(_env("alarm", seq, name="x", code="", active=True, text="x"))]
    yield [b"alarm.x.", pack(_env("alarm", seq, name="x", code="y", active=False))]


def commands(reply_to: str) -> Iterator[tuple[str, str, dict[str, Any]]]:
    """(service, command, args): well-formed commands with bogus arguments."""
    for args in ({}, {"contract": 5}, {"contract": None}, {"contract": ""},
                 {"contract": "x" * 100_000}, {"contract": ["ES"]}, {"contract": "CON.F.US.NOPE.Z26"}):
        yield "subscriptions", "subscribe", args
        yield "subscriptions", "unsubscribe", args
    yield "subscriptions", "list", {"junk": [1] * 1000}
    for args in ({}, {"contract": ROGUE, "tf": "7x", "last": 10}, {"contract": 1, "tf": None},
                 {"contract": ROGUE, "tf": "1m", "last": -5},
                 {"contract": ROGUE, "tf": "1m", "last": 10 ** 12},
                 {"contract": ROGUE, "tf": "1m", "last": "many"}):
        yield "series", "window", args
    for args in ({}, {"contract": ROGUE, "tf": "1m", "days": 10 ** 9},
                 {"contract": "ES", "tf": "1m", "days": -1},
                 {"contract": "ES", "tf": "7x", "days": 1},
                 {"contract": "ES", "tf": "1m", "start": "a", "end": None},
                 {"contract": "ES", "tf": "1m", "start": 10, "end": 5},
                 {"contract": "ES", "tf": "1m", "start": -(2 ** 62), "end": 2 ** 62}):
        yield "feeds", "backfill", args
    for args in ({}, {"contract": ROGUE, "start": 5, "end": 1}, {"contract": 3, "start": "x"},
                 {"contract": ROGUE, "start": -(2 ** 62), "end": 2 ** 62},
                 {"contract": "CON.F.US.EP.Z26", "start": 0, "end": 60_000 * 10 ** 9}):
        yield "aggregator", "reconcile", args
    for args in ({}, {"client_id": 5, "contract": "ES", "side": "buy", "size": 1, "type": "market"},
                 {"client_id": "r-1", "contract": "ES", "side": "up", "size": 1, "type": "market"},
                 {"client_id": "r-2", "contract": "ES", "side": "buy", "size": -3, "type": "market"},
                 {"client_id": "r-3", "contract": "ES", "side": "buy", "size": 10 ** 9,
                  "type": "market"},
                 {"client_id": "r-4", "contract": "ES", "side": "buy", "size": 1, "type": "limit",
                  "limit_price": math.nan},
                 {"client_id": "r-5", "contract": "ES", "side": "buy", "size": 1.5,
                  "type": "market"},
                 {"client_id": "r-6", "contract": "ES", "side": "buy", "size": True,
                  "type": "market"},
                 {"client_id": "r-7", "contract": ROGUE, "side": "buy", "size": 1,
                  "type": "market"},
                 {"client_id": "r-8", "contract": "ES", "side": "buy", "size": 1,
                  "type": "bogus", "sl_ticks": -4}):
        yield "gateway", "submit", args
    for name in ("cancel_all", "flatten", "halt", "modify", "cancel"):
        yield "gateway", name, {"owner": 5, "contract": [], "order_id": "x"}
    yield "store", "nosuchcommand", {}
    yield "aggregator", "nosuchcommand", {"x": 1}


class Rogue:
    """A raw PUB socket connected to the broker's XSUB side."""

    def __init__(self, publish_addr: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUB)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.setsockopt(zmq.SNDHWM, 0)   # never drop on our side: the broker must cope
        self.sock.connect(publish_addr)
        self.sent = 0
        self.seq = 1

    def send(self, parts: list[bytes]) -> None:
        self.sock.send_multipart(parts)
        self.sent += 1

    def command(self, service: str, name: str, args: dict[str, Any], reply_to: str) -> None:
        self.seq += 1
        self.send([f"cmd.{service}.{name}.".encode(), msgpack.packb(_env(
            "cmd", self.seq, rid=f"rogue-{self.seq}", service=service, name=name,
            reply_to=reply_to, args=args))])

    def assault(self, contracts: list[str], reply_to: str, flood: int = 20_000) -> None:
        """Every bad frame and command once, then a flood of them, then 10 MB payloads."""
        batch = list(frames(contracts))
        for parts in batch:
            self.send(parts)
        for service, name, args in commands(reply_to):
            self.command(service, name, args, reply_to)
        for i in range(flood):
            self.send(batch[i % len(batch)])
        big = b"x" * BIG
        for topic in (f"bar.1m.{contracts[0]}.", "cmd.subscriptions.subscribe.", "hb.store.",
                      "subs.set."):
            self.send([topic.encode(), big])
            self.send([topic.encode(), msgpack.packb(_env("bar", contract=contracts[0],
                                                          tf="1m", blob=big))])
        self.command("subscriptions", "subscribe", {"contract": "x" * BIG}, reply_to)

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()
