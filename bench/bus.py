"""Bus benchmark: our broker + bus client against raw pyzmq + msgpack through a bare zmq.proxy.

    .venv/bin/python bench/bus.py [--messages 200000] [--rounds 3000]

Measured in the same run, on the same machine, with the same payload (a 1m Bar):
- throughput, publisher -> broker -> decoding subscriber, with 1 and 4 subscribers
  (messages/s each subscriber received, first to last message);
- round-trip latency (ping -> broker -> echo process -> broker -> pong), p50 and p99.
Every role runs in its own process. Prints each figure and the ratio ours/raw (target: our
throughput at least 0.8 of raw).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import msgpack  # noqa: E402
import zmq  # noqa: E402

from chillly import topics  # noqa: E402
from chillly.messages import Bar  # noqa: E402
from tests.sim_client import free_port  # noqa: E402

CONTRACT = "CON.F.US.EP.Z26"
TOPIC = topics.bar("1m", CONTRACT)
END = "bench.end."
HWM = 2_000_000


def bar(i: int) -> Bar:
    return Bar(contract=CONTRACT, tf="1m", t=i * 60_000, o=6000.25, h=6001.5, l=5999.75,
               c=6000.5, volume=i, final=True, rev=0)


# ------------------------------------------------------------------ raw baseline roles

def raw_broker(pub_addr: str, sub_addr: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    ctx = zmq.Context()
    xsub, xpub = ctx.socket(zmq.XSUB), ctx.socket(zmq.XPUB)
    xsub.setsockopt(zmq.RCVHWM, HWM)
    xpub.setsockopt(zmq.SNDHWM, HWM)
    xsub.bind(pub_addr)
    xpub.bind(sub_addr)
    ready.set()
    zmq.proxy(xsub, xpub)


def raw_sub(sub_addr: str, q: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg, valid-type]
    ctx = zmq.Context()
    s = ctx.socket(zmq.SUB)
    s.setsockopt(zmq.RCVHWM, HWM)
    s.connect(sub_addr)
    s.setsockopt(zmq.SUBSCRIBE, b"bar.")
    s.setsockopt(zmq.SUBSCRIBE, END.encode())
    s.setsockopt(zmq.SUBSCRIBE, b"warm.")
    ready.set()
    n, first, last = 0, 0.0, 0.0
    while True:
        topic, payload = s.recv_multipart()
        if topic.startswith(b"warm."):
            continue
        if topic == END.encode():
            break
        msgpack.unpackb(payload)
        if n == 0:
            first = time.perf_counter()
        n += 1
        last = time.perf_counter()
    q.put((n, last - first))


def raw_pub(pub_addr: str, count: int, go: mp.Event) -> None:  # type: ignore[valid-type]
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.SNDHWM, HWM)
    s.connect(pub_addr)
    go.wait()
    topic = TOPIC.encode()
    for i in range(count):
        body = bar(i).body()
        body.update(src="raw", seq=i + 1, ts=int(time.time() * 1000))
        s.send_multipart((topic, msgpack.packb(body)))
    for _ in range(50):
        s.send_multipart((END.encode(), b"\x80"))
        time.sleep(0.01)
    s.close(linger=2000)


def raw_echo(pub_addr: str, sub_addr: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    sub.connect(sub_addr)
    pub.connect(pub_addr)
    sub.setsockopt(zmq.SUBSCRIBE, b"ping.")
    ready.set()
    while True:
        topic, payload = sub.recv_multipart()
        if payload == b"stop":
            return
        msg = msgpack.unpackb(payload)
        pub.send_multipart((b"pong.", msgpack.packb(msg)))


def raw_rtt(pub_addr: str, sub_addr: str, rounds: int) -> list[float]:
    ctx = zmq.Context()
    sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
    sub.connect(sub_addr)
    pub.connect(pub_addr)
    sub.setsockopt(zmq.SUBSCRIBE, b"pong.")
    # Wait until the path works both ways (no blind sleep).
    while True:
        pub.send_multipart((b"ping.", msgpack.packb({"i": -1})))
        if sub.poll(50):
            sub.recv_multipart()
            break
    while sub.poll(100):
        sub.recv_multipart()
    out = []
    for i in range(rounds):
        t0 = time.perf_counter()
        pub.send_multipart((b"ping.", msgpack.packb(bar(i).body())))
        sub.recv_multipart()
        out.append(time.perf_counter() - t0)
    pub.send_multipart((b"ping.", b"stop"))
    time.sleep(0.1)
    sub.close(0)
    pub.close(0)
    return out


# ------------------------------------------------------------------ our roles

def _env(pub_addr: str, sub_addr: str) -> None:
    os.environ["BUS_PUBLISH_ADDR"] = pub_addr
    os.environ["BUS_SUBSCRIBE_ADDR"] = sub_addr
    os.environ["BUS_HWM"] = str(HWM)
    os.environ["HEARTBEAT_INTERVAL"] = "1"
    os.environ["LOG_LEVEL"] = "WARNING"


def our_broker(pub_addr: str, sub_addr: str) -> None:
    _env(pub_addr, sub_addr)
    import argparse

    from broker.relay import cli

    cli(argparse.Namespace())


def our_sub(pub_addr: str, sub_addr: str, q: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg, valid-type]
    from chillly.bus import Bus
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = Bus(pub_addr, sub_addr, "bench-sub", hwm=HWM)
        state = {"n": 0, "first": 0.0, "last": 0.0}
        done = asyncio.Event()

        def on_bar(env) -> None:  # type: ignore[no-untyped-def]
            if state["n"] == 0:
                state["first"] = time.perf_counter()
            state["n"] += 1
            state["last"] = time.perf_counter()

        bus.on("bar.", on_bar)
        bus.on(END, lambda env: done.set())
        await bus.ready()
        ready.set()
        await done.wait()
        q.put((state["n"], state["last"] - state["first"]))
        await bus.close()

    asyncio.run(run())


def our_pub(pub_addr: str, sub_addr: str, count: int, go: mp.Event) -> None:  # type: ignore[valid-type]
    from chillly.bus import Bus
    from chillly.messages import Probe
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = Bus(pub_addr, sub_addr, "bench-pub", hwm=HWM)
        await bus.ready()
        go.wait()
        for i in range(count):
            bus.publish(TOPIC, bar(i))
        for _ in range(50):
            bus.publish(END, Probe(nonce=0))
            await asyncio.sleep(0.01)
        await asyncio.sleep(1)
        await bus.close()

    asyncio.run(run())


def our_echo(pub_addr: str, sub_addr: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    from chillly.bus import Bus
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = Bus(pub_addr, sub_addr, "bench-echo", hwm=HWM)
        stop = asyncio.Event()

        def on_ping(env) -> None:  # type: ignore[no-untyped-def]
            msg = env.message()
            if isinstance(msg, Bar) and msg.t < 0:
                stop.set()
                return
            bus.publish("pong.", msg)

        bus.on("ping.", on_ping)
        await bus.ready()
        ready.set()
        await stop.wait()
        await bus.close()

    asyncio.run(run())


def our_rtt(pub_addr: str, sub_addr: str, rounds: int) -> list[float]:
    from chillly.bus import Bus
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> list[float]:
        bus = Bus(pub_addr, sub_addr, "bench-rtt", hwm=HWM)
        got: asyncio.Queue[object] = asyncio.Queue()
        bus.on("pong.", lambda env: got.put_nowait(env))
        await bus.ready()
        # prove the echo path before timing
        while True:
            bus.publish("ping.", bar(0))
            try:
                await asyncio.wait_for(got.get(), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        await asyncio.sleep(0.1)
        while not got.empty():
            got.get_nowait()
        out = []
        for i in range(rounds):
            t0 = time.perf_counter()
            bus.publish("ping.", bar(i))
            await got.get()
            out.append(time.perf_counter() - t0)
        bus.publish("ping.", bar(-1))
        await asyncio.sleep(0.1)
        await bus.close()
        return out

    return asyncio.run(run())


# ------------------------------------------------------------------ orchestration

def start_broker(ctx, kind: str, pub_addr: str, sub_addr: str):  # type: ignore[no-untyped-def]
    """A bare zmq.proxy ("raw") or our broker process, bound before this returns (raw) or
    reached through each client's own readiness probe (ours)."""
    if kind == "raw":
        bready = ctx.Event()
        p = ctx.Process(target=raw_broker, args=(pub_addr, sub_addr, bready), daemon=True)
        p.start()
        bready.wait(10)
    else:
        p = ctx.Process(target=our_broker, args=(pub_addr, sub_addr), daemon=True)
        p.start()
    return p


def throughput(kind: str, subs: int, count: int) -> tuple[float, int]:
    ctx = mp.get_context("spawn")
    pub_addr = f"tcp://127.0.0.1:{free_port()}"
    sub_addr = f"tcp://127.0.0.1:{free_port()}"
    procs = [start_broker(ctx, kind, pub_addr, sub_addr)]
    q = ctx.Queue()
    readies = []
    for _ in range(subs):
        ready = ctx.Event()
        readies.append(ready)
        target = raw_sub if kind == "raw" else our_sub
        args = (sub_addr, q, ready) if kind == "raw" else (pub_addr, sub_addr, q, ready)
        procs.append(ctx.Process(target=target, args=args, daemon=True))
        procs[-1].start()
    for r in readies:
        if not r.wait(30):
            raise SystemExit(f"{kind} subscriber did not become ready")
    go = ctx.Event()
    target = raw_pub if kind == "raw" else our_pub
    args = (pub_addr, count, go) if kind == "raw" else (pub_addr, sub_addr, count, go)
    pub = ctx.Process(target=target, args=args, daemon=True)
    pub.start()
    if kind == "raw":
        # Raw sockets have no readiness probe: warm the path until a subscriber would see it.
        warm = zmq.Context.instance().socket(zmq.PUB)
        warm.connect(pub_addr)
        time.sleep(0.5)
        warm.close(0)
    time.sleep(0.3)
    go.set()
    results = [q.get(timeout=120) for _ in range(subs)]
    pub.join(10)
    for p in procs:
        p.terminate()
        p.join(5)
    rates = [n / dt if dt > 0 else 0.0 for n, dt in results]
    received = min(n for n, _ in results)
    return statistics.mean(rates), received


def latency(kind: str, rounds: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    pub_addr = f"tcp://127.0.0.1:{free_port()}"
    sub_addr = f"tcp://127.0.0.1:{free_port()}"
    procs = [start_broker(ctx, kind, pub_addr, sub_addr)]
    ready = ctx.Event()
    echo = raw_echo if kind == "raw" else our_echo
    procs.append(ctx.Process(target=echo, args=(pub_addr, sub_addr, ready), daemon=True))
    procs[-1].start()
    ready.wait(30)
    samples = (raw_rtt if kind == "raw" else our_rtt)(pub_addr, sub_addr, rounds)
    for p in procs:
        p.terminate()
        p.join(5)
    samples.sort()
    return samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per figure; the median is printed (2 cores are noisy)")
    args = ap.parse_args()
    print(f"bus benchmark: {args.messages} bars per run, {args.rounds} round trips, "
          f"{os.cpu_count()} cores, python {sys.version.split()[0]}, libzmq {zmq.zmq_version()}")
    for subs in (1, 4):
        raw_runs, our_runs = [], []
        for _ in range(args.repeat):  # interleaved so both see the same machine load
            raw_runs.append(throughput("raw", subs, args.messages))
            our_runs.append(throughput("ours", subs, args.messages))
        raw_rate = statistics.median(r for r, _ in raw_runs)
        our_rate = statistics.median(r for r, _ in our_runs)
        raw_n = min(n for _, n in raw_runs)
        our_n = min(n for _, n in our_runs)
        print(f"throughput {subs} sub: raw {raw_rate:>10,.0f} msg/s (got {raw_n})   "
              f"ours {our_rate:>10,.0f} msg/s (got {our_n})   ratio ours/raw {our_rate / raw_rate:.2f}")
    raw_p50, raw_p99 = latency("raw", args.rounds)
    our_p50, our_p99 = latency("ours", args.rounds)
    print(f"round trip p50: raw {raw_p50:,.0f} us   ours {our_p50:,.0f} us   ratio {our_p50 / raw_p50:.2f}")
    print(f"round trip p99: raw {raw_p99:,.0f} us   ours {our_p99:,.0f} us   ratio {our_p99 / raw_p99:.2f}")


if __name__ == "__main__":
    main()
