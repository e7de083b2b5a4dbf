"""The zmq backend reads frame by frame (cheaper than recv_multipart): a message of one frame or
of three still arrives whole and alone, so the codec refuses it and the next message is read
from its own first frame (a real socket, no broker: a PUB bound where the backend subscribes).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import zmq

from chillly.bus_backends.zeromq import ZmqBackend
from tests.support import aeventually, free_port


async def test_odd_frame_counts_arrive_whole_and_keep_the_next_message_aligned() -> None:
    sub_addr = f"tcp://127.0.0.1:{free_port()}"
    pub = zmq.Context.instance().socket(zmq.PUB)
    pub.setsockopt(zmq.LINGER, 0)
    pub.bind(sub_addr)
    backend = ZmqBackend(f"tcp://127.0.0.1:{free_port()}", sub_addr)
    got: list[tuple[bytes, ...]] = []

    def deliver(frames: Sequence[bytes], sender: str | None) -> None:
        got.append(tuple(frames))

    backend.subscribe("t.")
    receiving = asyncio.ensure_future(backend.receive(deliver))
    try:
        async def warm() -> bool:   # the subscription has reached the PUB
            pub.send_multipart([b"t.warm", b"w"])
            return bool(got)

        await aeventually(warm, 10, interval=0.05, what="the subscription through")
        got.clear()
        pub.send_multipart([b"t.one"])
        pub.send_multipart([b"t.three", b"b", b"c"])
        pub.send_multipart([b"t.two", b"p"])
        pub.send_multipart([b"t.four", b"b", b"c", b"d"])
        pub.send_multipart([b"t.two", b"q"])
        await aeventually(lambda: len([g for g in got if g != (b"t.warm", b"w")]) >= 5, 10,
                          what="five messages")
        assert [g for g in got if g != (b"t.warm", b"w")] == [
            (b"t.one",), (b"t.three", b"b", b"c"), (b"t.two", b"p"),
            (b"t.four", b"b", b"c", b"d"), (b"t.two", b"q")]
    finally:
        await backend.close()
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
        pub.close(0)
