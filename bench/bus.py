"""Bus benchmark: each backend beside its bare baseline, measured in the same run.

    .venv/bin/python bench/bus.py [--messages 200000] [--rounds 3000] [--backends zmq,redis,memory]

Same payload everywhere (a 1m Bar):
- zmq: our broker + bus client against raw pyzmq + msgpack through a bare zmq.proxy:
  throughput publisher -> broker -> decoding subscriber with 1 and 4 subscribers (messages/s
  each subscriber received, first to last), and the round trip ping -> broker -> echo process
  -> broker -> pong, p50 and p99 (targets: throughput at least 0.9 of raw, round trip at most
  1.3x raw);
- redis: our redis backend against a bare redis-py publisher (pipelined PUBLISH) and
  subscriber (PSUBSCRIBE, get_message, msgpack) on the same redis-server, with streams off
  (the like-for-like figure, target at least 0.8) and on (what catch-up costs); the same
  round trip; and beside our zmq figures (what a trader chooses by);
- memory: messages/s through a bus on the memory backend (publish, codec, queue, dispatch) in
  one process, and the cost of one dispatch beside a plain list of callbacks;
- aggregator: bench/store.py's aggregator core beside the plain batch aggregate() (target at
  least 0.8), so every speed figure of the bus issue comes out of one run.
Every zmq and redis role runs in its own process.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

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
#: CPU seconds per round trip the pinger (this process) spent, one entry per latency() run.
PINGER_CPU: list[float] = []


def bar(i: int) -> Bar:
    return Bar(contract=CONTRACT, tf="1m", t=i * 60_000, o=6000.25, h=6001.5, l=5999.75,
               c=6000.5, volume=i, final=True, rev=0)


#: The raw clients send the same map ours does: the Bar's fields and the whole envelope.
RAW_INST = "raw-12345-abcdef"


def raw_body(i: int) -> dict[str, Any]:
    body = bar(i).body()
    body.update(src="raw", seq=i + 1, ts=int(time.time() * 1000), inst=RAW_INST)
    return body


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


def drain_on_fd(sock: Any, on_frames: Any) -> Any:
    """The strongest plain-asyncio way to read a zmq socket (what a careful author writes
    without our bus, and what our zmq backend does): the event loop calls back on ZMQ_FD and
    the callback takes everything queued with non-blocking per-frame receives, no future or
    task per message and no recv_multipart (its Python overhead is as large as a decode)."""
    loop = asyncio.get_running_loop()
    recv, more = sock.recv, sock.get
    noblock, again, rcvmore = zmq.NOBLOCK, zmq.Again, zmq.RCVMORE

    def drain() -> None:
        while True:
            try:
                frames = [recv(noblock)]
            except again:
                return
            while more(rcvmore):   # recv_multipart's own loop, minus its Python overhead
                frames.append(recv(noblock))
            on_frames(frames)

    loop.add_reader(sock.fileno(), drain)
    loop.call_soon(drain)
    return lambda: loop.remove_reader(sock.fileno())


def raw_async_sub(sub_addr: str, q: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg, valid-type]
    """The raw subscriber as an asyncio process (uvloop), like ours: same decode, same clock
    reads per message."""
    from chillly.process import install_uvloop

    install_uvloop()
    end = END.encode()

    async def run() -> None:
        s = zmq.Context().socket(zmq.SUB)
        s.setsockopt(zmq.RCVHWM, HWM)
        s.connect(sub_addr)
        for t in (b"bar.", end, b"warm."):
            s.setsockopt(zmq.SUBSCRIBE, t)
        state = {"n": 0, "first": 0.0, "last": 0.0}
        done = asyncio.get_running_loop().create_future()
        unpackb, perf = msgpack.unpackb, time.perf_counter

        def on_frames(frames: list[bytes]) -> None:
            topic, payload = frames
            if topic.startswith(b"warm."):
                return
            if topic == end:
                if not done.done():
                    done.set_result(None)
                return
            unpackb(payload)
            if state["n"] == 0:
                state["first"], state["cpu"] = perf(), time.process_time()
            state["n"] += 1
            state["last"] = perf()

        drain_on_fd(s, on_frames)
        ready.set()
        await done
        q.put((state["n"], state["last"] - state["first"], time.process_time() - state["cpu"]))

    asyncio.run(run())


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
            first, cpu = time.perf_counter(), time.process_time()
        n += 1
        last = time.perf_counter()
    q.put((n, last - first, time.process_time() - cpu))


def raw_pub(pub_addr: str, count: int, go: mp.Event, per_frame: bool = False) -> None:  # type: ignore[valid-type]
    """The raw publisher: the same Bar built and its body packed per message; `per_frame`
    sends the two frames with two sends, as our zmq backend does (send_multipart costs 2 us
    more in Python), for the asyncio baseline."""
    ctx = zmq.Context()
    s = ctx.socket(zmq.PUB)
    s.setsockopt(zmq.SNDHWM, HWM)
    s.connect(pub_addr)
    go.wait()
    topic = TOPIC.encode()
    send, more = s.send, zmq.SNDMORE
    for i in range(count):
        body = bar(i).body()
        body.update(src="raw", seq=i + 1, ts=int(time.time() * 1000), inst=RAW_INST)
        if per_frame:
            send(topic, more)
            send(msgpack.packb(body))
        else:
            s.send_multipart((topic, msgpack.packb(body)))
    for _ in range(50):
        s.send_multipart((END.encode(), b"\x80"))
        time.sleep(0.01)
    s.close(linger=2000)


def raw_async_echo(pub_addr: str, sub_addr: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    """The raw echo as an asyncio process: decode the ping, encode it again, publish."""
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        ctx = zmq.Context()
        sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
        sub.connect(sub_addr)
        pub.connect(pub_addr)
        sub.setsockopt(zmq.SUBSCRIBE, b"ping.")
        stop = asyncio.get_running_loop().create_future()
        more = zmq.SNDMORE | zmq.NOBLOCK

        def on_frames(frames: list[bytes]) -> None:
            if frames[1] == b"stop":
                if not stop.done():
                    stop.set_result(None)
                return
            pub.send(b"pong.", more)
            pub.send(msgpack.packb(msgpack.unpackb(frames[1])), zmq.NOBLOCK)

        drain_on_fd(sub, on_frames)
        ready.set()
        await stop

    asyncio.run(run())


def raw_async_rtt(pub_addr: str, sub_addr: str, rounds: int) -> list[float]:
    """The raw pinger as an asyncio process, waiting on an asyncio.Queue as ours does."""
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> list[float]:
        ctx = zmq.Context()
        sub, pub = ctx.socket(zmq.SUB), ctx.socket(zmq.PUB)
        sub.connect(sub_addr)
        pub.connect(pub_addr)
        sub.setsockopt(zmq.SUBSCRIBE, b"pong.")
        got: asyncio.Queue[object] = asyncio.Queue()
        unpackb = msgpack.unpackb
        stop = drain_on_fd(sub, lambda frames: got.put_nowait(unpackb(frames[1])))
        while True:   # the path works both ways (no blind sleep)
            pub.send_multipart((b"ping.", msgpack.packb(bar(0).body())))
            try:
                await asyncio.wait_for(got.get(), 0.05)
                break
            except asyncio.TimeoutError:
                continue
        await asyncio.sleep(0.1)
        while not got.empty():
            got.get_nowait()
        out = []
        cpu0 = time.process_time()
        for i in range(rounds):
            t0 = time.perf_counter()
            pub.send(b"ping.", zmq.SNDMORE | zmq.NOBLOCK)
            pub.send(msgpack.packb(raw_body(i)), zmq.NOBLOCK)
            await got.get()
            out.append(time.perf_counter() - t0)
        pub.send_multipart((b"ping.", b"stop"))
        await asyncio.sleep(0.1)
        stop()
        sub.close(0)
        pub.close(0)
        PINGER_CPU.append((time.process_time() - cpu0) / rounds)
        return out

    return asyncio.run(run())


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
    cpu0 = time.process_time()
    for i in range(rounds):
        t0 = time.perf_counter()
        pub.send_multipart((b"ping.", msgpack.packb(raw_body(i))))
        sub.recv_multipart()
        out.append(time.perf_counter() - t0)
    pub.send_multipart((b"ping.", b"stop"))
    time.sleep(0.1)
    sub.close(0)
    pub.close(0)
    PINGER_CPU.append((time.process_time() - cpu0) / rounds)
    return out


# ------------------------------------------------------------------ our roles

def _env(pub_addr: str, sub_addr: str) -> None:
    os.environ["BUS_PUBLISH_ADDR"] = pub_addr
    os.environ["BUS_SUBSCRIBE_ADDR"] = sub_addr
    os.environ["BUS_HWM"] = str(HWM)
    os.environ["HEARTBEAT_INTERVAL"] = "1"
    os.environ["LOG_LEVEL"] = "WARNING"


def make_bus(pub_addr: str, sub_addr: str, name: str) -> Any:
    """Our bus on the backend the addresses name: two zmq addresses, or ("redis", URL with
    `?streams=N` for REDIS_STREAM_MAXLEN) packed as pub_addr="redis", sub_addr=URL."""
    from chillly.bus import Bus

    if pub_addr == "redis":
        from chillly.bus_backends.redis_pubsub import RedisBackend

        url, _, streams = sub_addr.partition("?streams=")
        return Bus.over(RedisBackend(url, name, hwm=HWM, stream_maxlen=int(streams or 0)), name)
    return Bus(pub_addr, sub_addr, name, hwm=HWM)


def our_broker(pub_addr: str, sub_addr: str) -> None:
    _env(pub_addr, sub_addr)
    import argparse

    from broker.relay import cli

    cli(argparse.Namespace())


def our_sub(pub_addr: str, sub_addr: str, q: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg, valid-type]
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = make_bus(pub_addr, sub_addr, "bench-sub")
        state = {"n": 0, "first": 0.0, "last": 0.0}
        done = asyncio.Event()

        def on_bar(env) -> None:  # type: ignore[no-untyped-def]
            if state["n"] == 0:
                state["first"], state["cpu"] = time.perf_counter(), time.process_time()
            state["n"] += 1
            state["last"] = time.perf_counter()

        bus.on("bar.", on_bar)
        bus.on(END, lambda env: done.set())
        await bus.ready()
        ready.set()
        await done.wait()
        q.put((state["n"], state["last"] - state["first"], time.process_time() - state["cpu"]))
        await bus.close()

    asyncio.run(run())


def our_pub(pub_addr: str, sub_addr: str, count: int, go: mp.Event) -> None:  # type: ignore[valid-type]
    from chillly.messages import Probe
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = make_bus(pub_addr, sub_addr, "bench-pub")
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
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> None:
        bus = make_bus(pub_addr, sub_addr, "bench-echo")
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
    from chillly.process import install_uvloop

    install_uvloop()

    async def run() -> list[float]:
        bus = make_bus(pub_addr, sub_addr, "bench-rtt")
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
        cpu0 = time.process_time()
        for i in range(rounds):
            t0 = time.perf_counter()
            bus.publish("ping.", bar(i))
            await got.get()
            out.append(time.perf_counter() - t0)
        bus.publish("ping.", bar(-1))
        await asyncio.sleep(0.1)
        await bus.close()
        PINGER_CPU.append((time.process_time() - cpu0) / rounds)
        return out

    return asyncio.run(run())


# ------------------------------------------------------------------ bare redis-py roles

def redis_raw_sub(url: str, q: mp.Queue, ready: mp.Event) -> None:  # type: ignore[type-arg, valid-type]
    import redis.asyncio as aioredis

    async def run() -> None:
        r = aioredis.Redis.from_url(url)
        ps = r.pubsub()
        await ps.psubscribe("bar.*", END + "*")
        await ps.get_message(timeout=5)
        await ps.get_message(timeout=5)   # the two psubscribe confirmations
        ready.set()
        n, first, last = 0, 0.0, 0.0
        while True:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is None:
                continue
            if msg["channel"].startswith(END.encode()):
                break
            msgpack.unpackb(msg["data"])
            if n == 0:
                first, cpu = time.perf_counter(), time.process_time()
            n += 1
            last = time.perf_counter()
        q.put((n, last - first, time.process_time() - cpu))
        await r.aclose()

    asyncio.run(run())


def redis_raw_pub(url: str, count: int, go: mp.Event) -> None:  # type: ignore[valid-type]
    import redis.asyncio as aioredis

    async def run() -> None:
        r = aioredis.Redis.from_url(url)
        go.wait()
        channel = TOPIC + "@raw"
        pipe = r.pipeline(transaction=False)
        for i in range(count):
            body = bar(i).body()
            body.update(src="raw", seq=i + 1, ts=int(time.time() * 1000), inst=RAW_INST)
            pipe.publish(channel, msgpack.packb(body))
            if len(pipe) >= 1000:
                await pipe.execute()
        await pipe.execute()
        for _ in range(50):
            await r.publish(END + "@raw", b"\x80")
            await asyncio.sleep(0.01)
        await r.aclose()

    asyncio.run(run())


def redis_raw_echo(url: str, ready: mp.Event) -> None:  # type: ignore[valid-type]
    import redis.asyncio as aioredis

    async def run() -> None:
        r = aioredis.Redis.from_url(url)
        ps = r.pubsub()
        await ps.psubscribe("ping.*")
        await ps.get_message(timeout=5)
        ready.set()
        while True:
            msg = await ps.get_message(ignore_subscribe_messages=True, timeout=None)
            if msg is None:
                continue
            if msg["data"] == b"stop":
                break
            await r.publish("pong.@raw", msgpack.packb(msgpack.unpackb(msg["data"])))
        await r.aclose()

    asyncio.run(run())


def redis_raw_rtt(url: str, rounds: int) -> list[float]:
    import redis.asyncio as aioredis

    async def run() -> list[float]:
        r = aioredis.Redis.from_url(url)
        ps = r.pubsub()
        await ps.psubscribe("pong.*")
        await ps.get_message(timeout=5)
        while True:   # the echo is subscribed once a ping comes back
            await r.publish("ping.@raw", msgpack.packb({"i": -1}))
            if await ps.get_message(ignore_subscribe_messages=True, timeout=0.05):
                break
        while await ps.get_message(ignore_subscribe_messages=True, timeout=0.1):
            pass
        out = []
        cpu0 = time.process_time()
        for i in range(rounds):
            t0 = time.perf_counter()
            await r.publish("ping.@raw", msgpack.packb(raw_body(i)))
            while await ps.get_message(ignore_subscribe_messages=True, timeout=None) is None:
                pass
            out.append(time.perf_counter() - t0)
        await r.publish("ping.@raw", b"stop")
        await r.aclose()
        PINGER_CPU.append((time.process_time() - cpu0) / rounds)
        return out

    return asyncio.run(run())


class RedisServer:
    """A throwaway redis-server on a free loopback port (no persistence)."""

    def __enter__(self) -> str:
        exe = shutil.which("redis-server")
        if exe is None:
            raise SystemExit("redis-server is not installed (apt-get install redis-server)")
        self.dir = tempfile.TemporaryDirectory()
        port = free_port()
        self.proc = subprocess.Popen(
            [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", self.dir.name, "--client-output-buffer-limit", "pubsub 256mb 128mb 60"],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        import redis

        client = redis.Redis(port=port)
        for _ in range(200):
            try:
                client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.02)
        client.close()
        return f"redis://127.0.0.1:{port}/0"

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


# ------------------------------------------------------------------ orchestration

def start_broker(ctx, kind: str, pub_addr: str, sub_addr: str):  # type: ignore[no-untyped-def]
    """A bare zmq.proxy (the raw kinds) or our broker process, bound before this returns (raw)
    or reached through each client's own readiness probe (ours)."""
    if kind.startswith("raw"):
        bready = ctx.Event()
        p = ctx.Process(target=raw_broker, args=(pub_addr, sub_addr, bready), daemon=True)
        p.start()
        bready.wait(10)
    else:
        p = ctx.Process(target=our_broker, args=(pub_addr, sub_addr), daemon=True)
        p.start()
    return p


def roles(kind: str, url: str) -> tuple[list[Any], str, str]:
    """(processes started, publish side, subscribe side) for a kind of run."""
    ctx = mp.get_context("spawn")
    if kind.startswith("redis"):
        streams = "?streams=10000" if kind == "redis-streams" else "?streams=0"
        return [], "redis", url + streams
    pub_addr = f"tcp://127.0.0.1:{free_port()}"
    sub_addr = f"tcp://127.0.0.1:{free_port()}"
    return [start_broker(ctx, kind, pub_addr, sub_addr)], pub_addr, sub_addr


def throughput_cpu(kind: str, subs: int, count: int, url: str = "") -> tuple[float, int, float]:
    """(messages/s each subscriber received, fewest any received, CPU seconds a subscriber
    process spent per message: the per-message work itself, which the machine's load does not
    stretch the way it stretches the wall clock)."""
    ctx = mp.get_context("spawn")
    procs, pub_addr, sub_addr = roles(kind, url)
    q = ctx.Queue()
    readies = []
    for _ in range(subs):
        ready = ctx.Event()
        readies.append(ready)
        if kind == "raw":
            target, args = raw_sub, (sub_addr, q, ready)
        elif kind == "raw-async":
            target, args = raw_async_sub, (sub_addr, q, ready)
        elif kind == "redis-raw":
            target, args = redis_raw_sub, (url, q, ready)
        else:
            target, args = our_sub, (pub_addr, sub_addr, q, ready)
        procs.append(ctx.Process(target=target, args=args, daemon=True))
        procs[-1].start()
    for r in readies:
        if not r.wait(30):
            raise SystemExit(f"{kind} subscriber did not become ready")
    go = ctx.Event()
    if kind.startswith("raw"):
        target, args = raw_pub, (pub_addr, count, go, kind == "raw-async")
    elif kind == "redis-raw":
        target, args = redis_raw_pub, (url, count, go)
    else:
        target, args = our_pub, (pub_addr, sub_addr, count, go)
    pub = ctx.Process(target=target, args=args, daemon=True)
    pub.start()
    if kind.startswith("raw"):
        # Raw sockets have no readiness probe: warm the path until a subscriber would see it.
        warm = zmq.Context.instance().socket(zmq.PUB)
        warm.connect(pub_addr)
        time.sleep(0.5)
        warm.close(0)
    time.sleep(0.3)
    go.set()
    results = [q.get(timeout=300) for _ in range(subs)]
    pub.join(10)
    for p in procs + [pub]:
        p.terminate()
        p.join(5)
    rates = [n / dt if dt > 0 else 0.0 for n, dt, _ in results]
    received = min(n for n, _, _ in results)
    cpu_each = statistics.mean(cpu / n for n, _, cpu in results if n)
    return statistics.mean(rates), received, cpu_each


def throughput(kind: str, subs: int, count: int, url: str = "") -> tuple[float, int]:
    """(messages/s each subscriber received, fewest any of them received)."""
    rate, received, _ = throughput_cpu(kind, subs, count, url)
    return rate, received


def latency(kind: str, rounds: int, url: str = "") -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    procs, pub_addr, sub_addr = roles(kind, url)
    ready = ctx.Event()
    if kind == "raw":
        target, args = raw_echo, (pub_addr, sub_addr, ready)
    elif kind == "raw-async":
        target, args = raw_async_echo, (pub_addr, sub_addr, ready)
    elif kind == "redis-raw":
        target, args = redis_raw_echo, (url, ready)
    else:
        target, args = our_echo, (pub_addr, sub_addr, ready)
    procs.append(ctx.Process(target=target, args=args, daemon=True))
    procs[-1].start()
    ready.wait(30)
    if kind == "raw":
        samples = raw_rtt(pub_addr, sub_addr, rounds)
    elif kind == "raw-async":
        samples = raw_async_rtt(pub_addr, sub_addr, rounds)
    elif kind == "redis-raw":
        samples = redis_raw_rtt(url, rounds)
    else:
        samples = our_rtt(pub_addr, sub_addr, rounds)
    for p in procs:
        p.terminate()
        p.join(5)
    samples.sort()
    return samples[len(samples) // 2] * 1e6, samples[int(len(samples) * 0.99)] * 1e6


# ------------------------------------------------------------------ memory

def memory_figures(count: int) -> tuple[float, float, float]:
    """(messages/s through a memory-backend bus, us per dispatch, us per plain callback):
    one publisher, one subscriber, in this process; the plain case calls a list of one
    callback with the message object (no codec, no queue, no seq)."""
    from chillly.bus import Bus
    from chillly.bus_backends import MemoryBackend, MemoryHub

    async def through_bus() -> float:
        hub = MemoryHub()
        pub = Bus.over(MemoryBackend(hub, "pub", hwm=HWM), "pub")
        sub = Bus.over(MemoryBackend(hub, "sub", hwm=HWM), "sub")
        got = [0]
        done = asyncio.Event()

        def on_bar(env: Any) -> None:
            got[0] += 1
            if got[0] == count:
                done.set()

        sub.on("bar.", on_bar)
        await sub.ready()
        await pub.ready()
        msgs = [bar(i) for i in range(count)]
        t0 = time.perf_counter()
        for i, m in enumerate(msgs):
            pub.publish(TOPIC, m)
            if i % 1000 == 999:
                await asyncio.sleep(0)    # the subscriber drains in step
        await done.wait()
        dt = time.perf_counter() - t0
        await pub.close()
        await sub.close()
        return count / dt

    rate = asyncio.run(through_bus())
    msgs = [bar(i) for i in range(count)]
    got = [0]

    def cb(m: Any) -> None:
        got[0] += 1

    callbacks = [cb]
    t0 = time.perf_counter()
    for m in msgs:
        for c in callbacks:
            c(m)
    plain = (time.perf_counter() - t0) / count
    return rate, 1e6 / rate, plain * 1e6


def ratio_line(what: str, base_name: str, base: float, ours_name: str, ours: float,
               unit: str, extra: str = "") -> str:
    return (f"{what}: {base_name} {base:>10,.0f} {unit}   {ours_name} {ours:>10,.0f} {unit}   "
            f"ratio {ours / base:.2f}{extra}")


def run_zmq(args: argparse.Namespace) -> dict[str, float]:
    """Ours beside raw pyzmq + msgpack in asyncio processes draining on ZMQ_FD (the like-for-like
    baseline: our processes are asyncio; the targets are judged against it) and beside a
    blocking, loop-free raw client (the floor of the transport, for information)."""
    out: dict[str, float] = {}
    kinds = ("raw", "raw-async", "ours")
    for subs in (1, 4):
        runs: dict[str, list[tuple[float, int, float]]] = {k: [] for k in kinds}
        for _ in range(args.repeat):  # interleaved so all see the same machine load
            for kind in kinds:
                runs[kind].append(throughput_cpu(kind, subs, args.messages))
        rate = {k: statistics.median(r for r, _, _ in runs[k]) for k in kinds}
        cpu = {k: statistics.median(c for _, _, c in runs[k]) * 1e6 for k in kinds}
        got = {k: min(n for _, n, _ in runs[k]) for k in kinds}
        out[f"zmq{subs}"] = rate["ours"]
        spread = "/".join(f"{r / a:.2f}" for (r, _, _), (a, _, _)
                          in zip(runs["ours"], runs["raw-async"]))
        print(f"zmq throughput {subs} sub: raw asyncio {rate['raw-async']:>9,.0f} msg/s   ours "
              f"{rate['ours']:>9,.0f} msg/s   ratio {rate['ours'] / rate['raw-async']:.2f} "
              f"(runs {spread}; target >= 0.9)   raw blocking {rate['raw']:>9,.0f} msg/s "
              f"(ours/it {rate['ours'] / rate['raw']:.2f})   received min "
              f"{min(got.values())}/{args.messages}")
        print(f"    subscriber CPU a message: raw asyncio {cpu['raw-async']:.1f} us   ours "
              f"{cpu['ours']:.1f} us   raw/ours {cpu['raw-async'] / cpu['ours']:.2f}   raw "
              f"blocking {cpu['raw']:.1f} us")
    lat, cpu = {}, {}
    for k in kinds:
        lat[k] = latency(k, args.rounds)
        cpu[k] = PINGER_CPU[-1] * 1e6
    out["zmq_p50"], out["zmq_p99"] = lat["ours"]
    for i, q in enumerate(("p50", "p99")):
        raw_a, ours, raw = lat["raw-async"][i], lat["ours"][i], lat["raw"][i]
        print(f"zmq round trip {q}: raw asyncio {raw_a:,.0f} us   ours {ours:,.0f} us   ratio "
              f"{ours / raw_a:.2f} (target <= 1.3)   raw blocking {raw:,.0f} us "
              f"(ours/it {ours / raw:.2f})")
    print(f"    pinger CPU a round trip: raw asyncio {cpu['raw-async']:.1f} us   ours "
          f"{cpu['ours']:.1f} us   ours/raw {cpu['ours'] / cpu['raw-async']:.2f}   raw blocking "
          f"{cpu['raw']:.1f} us")
    return out


def run_redis(args: argparse.Namespace, zmq_figures: dict[str, float]) -> None:
    with RedisServer() as url:
        for subs in (1, 4):
            runs: dict[str, list[float]] = {"redis-raw": [], "redis-ours": [], "redis-streams": []}
            for _ in range(args.repeat):
                for kind in runs:
                    runs[kind].append(throughput(kind, subs, args.redis_messages, url)[0])
            raw, ours, streams = (statistics.median(runs[k]) for k in runs)
            versus = (f"   ours/our zmq {ours / zmq_figures[f'zmq{subs}']:.2f}"
                      if f"zmq{subs}" in zmq_figures else "")
            print(f"redis throughput {subs} sub: bare redis-py {raw:>10,.0f} msg/s   ours "
                  f"{ours:>10,.0f} msg/s   ratio {ours / raw:.2f} (target >= 0.8)   with streams "
                  f"{streams:>10,.0f} msg/s ({streams / raw:.2f}){versus}")
        raw_p50, raw_p99 = latency("redis-raw", args.rounds, url)
        our_p50, our_p99 = latency("redis-ours", args.rounds, url)
        for q, raw_v, ours_v in (("p50", raw_p50, our_p50), ("p99", raw_p99, our_p99)):
            versus = (f"   ours/our zmq {ours_v / zmq_figures[f'zmq_{q}']:.2f}"
                      if f"zmq_{q}" in zmq_figures else "")
            print(f"redis round trip {q}: bare redis-py {raw_v:,.0f} us   ours {ours_v:,.0f} us   "
                  f"ratio {ours_v / raw_v:.2f}{versus}")


def run_memory(args: argparse.Namespace) -> None:
    rate, per_msg, plain = memory_figures(args.messages)

    print(f"memory: {rate:>10,.0f} msg/s through the bus ({per_msg:.2f} us a message: publish, "
          f"codec, queue, dispatch)   plain list of callbacks {plain:.3f} us a call "
          f"({per_msg / plain:.0f}x)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=200_000)
    ap.add_argument("--redis-messages", type=int, default=30_000,
                    help="bars per redis run (a bare redis-py subscriber takes a few thousand a "
                         "second)")
    ap.add_argument("--rounds", type=int, default=3_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per figure; the median is printed (2 cores are noisy)")
    ap.add_argument("--backends", default="zmq,redis,memory,aggregator",
                    help="comma list of zmq, redis, memory, aggregator (bench/store.py's "
                         "aggregator core against batch aggregate())")
    ap.add_argument("--aggregator-bars", type=int, default=100_000)
    args = ap.parse_args()
    backends = args.backends.split(",")
    print(f"bus benchmark: {args.messages} bars per zmq run, {args.redis_messages} per redis "
          f"run, {args.rounds} round trips, "
          f"{os.cpu_count()} cores, python {sys.version.split()[0]}, libzmq {zmq.zmq_version()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    zmq_figures = run_zmq(args) if "zmq" in backends else {}
    if "redis" in backends:
        run_redis(args, zmq_figures)
    if "memory" in backends:
        run_memory(args)
    if "aggregator" in backends:
        # The last figure, in the same run: the aggregator core beside the plain batch
        # aggregate() (bench/store.py --aggregator-only prints the same line).
        from bench.store import print_aggregator

        print_aggregator(args.aggregator_bars)
    print(f"load average at the end {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
