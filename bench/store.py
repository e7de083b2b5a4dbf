"""Store and aggregator benchmark.

    .venv/bin/python bench/store.py [--rows 200000] [--bars 100000]

Measured in the same run, on the same machine, with the same rows (final 1m bars of 20
contracts):
- store ingest: a real broker and a real `store` process; this process publishes N final bars
  on the bus; rows/s = N / (first publish -> all N rows committed in the database, polled
  read-only);
- baseline: a bare `sqlite3` `executemany` of the same N rows with the same upsert statement,
  into a fresh WAL database with the same pragmas, in ONE transaction (the best bare case);
- the same rows as history, `BarBatch` messages of 500 bars (the bulk path a backfill uses);
- ratio store/bare for both (target: at least 0.5);
- aggregator: 1m bars/s through the pure core (6 timeframes: 5m 15m 30m 1h 4h 1d), beside the
  plain batch `aggregate()` of the same bars per timeframe (best of 3 each; target: the core at
  least 0.8 of the batch). `--aggregator-only` prints just these.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import zmq  # noqa: E402

from chillly.bus import Bus  # noqa: E402
from chillly.codec import encode  # noqa: E402
from chillly import topics  # noqa: E402
from chillly.calendar import is_market_open  # noqa: E402
from chillly.clock import ManualClock  # noqa: E402
from chillly.messages import Bar, BarBatch, Probe  # noqa: E402
from chillly.timeframes import DEFAULT_TFS, BucketSpec  # noqa: E402
from trading.aggregator import Aggregators, aggregate  # noqa: E402
from store.db import open_writer  # noqa: E402
from store.writer import UPSERT_BAR  # noqa: E402
from tests.sim_client import free_port  # noqa: E402

CONTRACTS = [f"CON.F.US.B{i:02d}.Z26" for i in range(20)]
T0 = 1_768_406_400_000  # 2026-01-14 16:00 UTC
HWM = 2_000_000


def make_bars(n: int) -> list[Bar]:
    per = n // len(CONTRACTS) + 1
    out = []
    for i in range(per):
        for c in CONTRACTS:
            if len(out) == n:
                return out
            p = 5000 + (i % 40) * 0.25
            out.append(Bar(contract=c, tf="1m", t=T0 + i * 60_000, o=p, h=p + 1, l=p - 1,
                           c=p + 0.5, volume=10 + i % 50, final=True, rev=0))
    return out


def row(b: Bar) -> tuple:
    return (b.contract, b.tf, b.t, b.o, b.h, b.l, b.c, b.volume, 1, b.rev, b.origin, 0)


def bare(bars: list[Bar], tmp: Path) -> float:
    conn = open_writer(tmp / "bare.db")
    rows = [row(b) for b in bars]
    t = time.perf_counter()
    conn.execute("BEGIN IMMEDIATE")
    conn.executemany(UPSERT_BAR, rows)
    conn.execute("COMMIT")
    elapsed = time.perf_counter() - t
    conn.close()
    return len(rows) / elapsed


def count(path: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return conn.execute("SELECT COUNT(*) FROM bars").fetchone()[0]
        finally:
            conn.close()
    except sqlite3.OperationalError:
        return 0


def encoded(bars: list[Bar], batched: bool = False) -> list[list[bytes]]:
    """Frames through the codec, with per-topic seq, encoded before any clock starts: the
    figures are the receivers' ingest, not this publisher's encoding speed. `batched`: the
    history path, `BarBatch` messages of 500 bars on `hist.1m.<contract>.`."""
    seqs: dict[str, int] = {}
    frames = []
    if batched:
        by_contract: dict[str, list[Bar]] = {}
        for b in bars:
            by_contract.setdefault(b.contract, []).append(b)
        for contract, group in by_contract.items():
            topic = topics.history_bar("1m", contract)
            for i in range(0, len(group), 500):
                rows = [[b.t, b.o, b.h, b.l, b.c, b.volume] for b in group[i:i + 500]]
                seqs[topic] = seqs.get(topic, 0) + 1
                frames.append(encode(topic, BarBatch(contract=contract, tf="1m", rows=rows),
                                     "bench", seqs[topic], 0))
        return frames
    for b in bars:
        topic = topics.bar("1m", b.contract)
        seqs[topic] = seqs.get(topic, 0) + 1
        frames.append(encode(topic, b, "bench", seqs[topic], 0))
    return frames


async def raw_publisher(pub: str, bus: Bus) -> zmq.Socket:
    """A plain PUB socket proven connected: it sends probes until our bus sees one."""
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.SNDHWM, HWM)
    raw.setsockopt(zmq.LINGER, 0)
    raw.connect(pub)
    seen = asyncio.Event()
    bus.on("bench.probe.", lambda env: seen.set())
    await bus.ready(timeout=15)
    for i in range(1, 1000):
        raw.send_multipart(encode("bench.probe.", Probe(nonce=i), "bench-raw", i, 0))
        try:
            await asyncio.wait_for(seen.wait(), 0.02)
            return raw
        except asyncio.TimeoutError:
            continue
    raise SystemExit("raw publisher never reached the broker")


async def ingest(bars: list[Bar], tmp: Path, store: bool, batched: bool = False) -> float:
    """Rows/s into the store process (store=True), or messages/s into a no-op Bus subscriber
    in this process (the bus client's own ceiling)."""
    pub, sub = f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}"
    db = tmp / f"store-{time.monotonic_ns()}.db"
    env = {**os.environ, "BUS_PUBLISH_ADDR": pub, "BUS_SUBSCRIBE_ADDR": sub,
           "DATABASE_PATH": str(db), "BUS_HWM": str(HWM), "STORE_RECOVER": "false",
           "HEARTBEAT_INTERVAL": "0.5", "LOG_LEVEL": "WARNING"}
    log = open(tmp / "procs.log", "ab")
    procs = [subprocess.Popen([sys.executable, "-m", "broker"], cwd=ROOT, env=env, stdout=log,
                              stderr=subprocess.STDOUT)]
    bus = Bus(pub, sub, "bench", hwm=HWM)
    raw = None
    received = 0

    def noop(env: object) -> None:
        nonlocal received
        received += 1

    try:
        frames = encoded(bars, batched)
        if store:
            await bus.ready(timeout=15)
            procs.append(subprocess.Popen([sys.executable, "-m", "chillly.cli", "store"],
                                          cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT))
            running = asyncio.Event()
            bus.on(topics.heartbeat("store"),
                   lambda e: running.set() if e.payload["state"] == "RUNNING" else None)
            await asyncio.wait_for(running.wait(), 20)
            done = lambda: count(db) >= len(bars)  # noqa: E731
        else:
            bus.on(topics.bars("1m"), noop)
            done = lambda: received >= len(bars)  # noqa: E731
        raw = await raw_publisher(pub, bus)
        t = time.perf_counter()
        for i in range(0, len(frames), 5000):
            for f in frames[i:i + 5000]:
                raw.send_multipart(f, copy=False)
            await asyncio.sleep(0)
        while not done():
            if time.perf_counter() - t > 120:
                raise SystemExit("the receiver did not get every row within 120 s")
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t
    finally:
        if raw is not None:
            raw.close()
        await bus.close()
        for p in reversed(procs):
            p.terminate()
            p.wait(10)
        log.close()
    return len(bars) / elapsed


def aggregator_rates(n: int) -> tuple[float, float, int]:
    minutes = []
    t = T0
    while len(minutes) < n:
        if is_market_open(t):
            p = 5000 + (len(minutes) % 40) * 0.25
            minutes.append(Bar(contract=CONTRACTS[0], tf="1m", t=t, o=p, h=p + 1, l=p - 1,
                               c=p + 0.5, volume=7, final=True))
        t += 60_000
    specs = [BucketSpec.of(tf) for tf in DEFAULT_TFS]
    emitted = 0

    def sink(b: Bar, resend: bool) -> None:
        nonlocal emitted
        emitted += 1

    aggs = Aggregators(specs, sink, ManualClock(0))
    t0 = time.perf_counter()
    for b in minutes:
        aggs.handle_bar(b)
    core = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    for spec in specs:
        aggregate(minutes, spec)
    batch = n / (time.perf_counter() - t0)
    return core, batch, emitted


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--bars", type=int, default=100_000)
    ap.add_argument("--aggregator-only", action="store_true",
                    help="only the aggregator figures (no processes, no database)")
    args = ap.parse_args()
    if args.aggregator_only:
        print_aggregator(args.bars)
        return
    bars = make_bars(args.rows)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        base = bare(bars, tmp)
        ours = asyncio.run(ingest(bars, tmp, store=True))
        bulk = asyncio.run(ingest(bars, tmp, store=True, batched=True))
        ceiling = asyncio.run(ingest(bars, tmp, store=False))
    print(f"bare sqlite3 executemany upsert:       {base:>12,.0f} rows/s")
    print(f"store ingest, history (BarBatch x500): {bulk:>12,.0f} rows/s  "
          f"ratio store/bare {bulk / base:.2f}  (target >= 0.5)")
    print(f"store ingest, live (one msg per bar):  {ours:>12,.0f} rows/s  "
          f"ratio store/bare {ours / base:.2f}  (bounded by the bus's per-message cost)")
    print(f"bus client ceiling (no-op subscriber): {ceiling:>12,.0f} msgs/s  "
          f"(store/ceiling {ours / ceiling:.2f})")
    print_aggregator(args.bars)


def print_aggregator(n: int) -> None:
    runs = [aggregator_rates(n) for _ in range(3)]   # interleaved core/batch pairs: best of 3
    core = max(r[0] for r in runs)
    batch = max(r[1] for r in runs)
    emitted = runs[0][2]
    print(f"aggregator core, 6 timeframes:         {core:>12,.0f} 1m bars/s in "
          f"({emitted:,} bars out)  ratio core/batch {core / batch:.2f}  (target >= 0.8)")
    print(f"plain batch aggregate(), 6 timeframes: {batch:>12,.0f} 1m bars/s  "
          f"(load average {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
