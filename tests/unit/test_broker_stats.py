"""Defect 13: the broker's statistics poll. A reply that comes after its time-out is still the
answer to its own request: the next poll collects it instead of asking again, so no later
count is one reply behind; and a poll never blocks the event loop while it waits."""

from __future__ import annotations

import asyncio
import struct

import zmq
import zmq.asyncio

from broker.relay import StatsClient
from tests.support import free_port


def reply(n: int) -> list[bytes]:
    """A proxy statistics reply whose eight counters all equal n."""
    return [struct.pack("=Q", n) for _ in range(8)]


async def test_a_late_reply_does_not_shift_later_counts() -> None:
    ctx = zmq.asyncio.Context()
    proxy, ours = ctx.socket(zmq.PAIR), ctx.socket(zmq.PAIR)
    proxy.bind("inproc://stats-test")
    ours.connect("inproc://stats-test")
    try:
        client = StatsClient(ours)
        assert await client.poll(timeout=0.05) is None       # the proxy is slow this time
        assert await proxy.recv() == b"STATISTICS"
        await proxy.send_multipart(reply(1))                  # ... and answers late
        first = await client.poll(timeout=1)                  # collected, not asked again
        assert first is not None and first["sub_msgs_out"] == 1
        assert not await proxy.poll(50), "a second request was sent while one was unanswered"
        answer = asyncio.ensure_future(client.poll(timeout=1))
        assert await proxy.recv() == b"STATISTICS"
        ticks = 0
        while not answer.done() and ticks < 3:                # the loop runs while it waits
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 3 and not answer.done()
        await proxy.send_multipart(reply(2))
        second = await answer
        assert second is not None and second["sub_msgs_out"] == 2
        assert client.timeouts == 1
    finally:
        proxy.close(0)
        ours.close(0)
        ctx.term()


async def test_stop_does_not_hang_on_a_relay_thread_that_will_not_end() -> None:
    """A proxy that ignores TERMINATE (stood in for by a thread that holds one of the relay
    context's sockets) must not hold the broker's stop: no join without a limit, and no
    ctx.term(), which would wait for that socket for ever."""
    import threading

    from broker.relay import Relay

    relay = Relay(f"tcp://127.0.0.1:{free_port()}", f"tcp://127.0.0.1:{free_port()}", hwm=1000)
    relay.start()
    stuck = threading.Event()
    held = relay._ctx.socket(zmq.PAIR)          # a socket the "stuck" thread never closes

    def wedged() -> None:
        stuck.wait(10)

    relay._thread = threading.Thread(target=wedged, daemon=True)
    relay._thread.start()
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert await relay.stop(timeout=0.2) is False
    assert loop.time() - started < 1.0
    stuck.set()
    held.close(0)
