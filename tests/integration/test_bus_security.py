"""Bus security: remote endpoints need CURVE; with CURVE only the configured client gets in."""

from __future__ import annotations


import pytest
import zmq

from chillly.bus import Bus, BusNotReady
from chillly.security import CurveKeys
from chillly import topics
from chillly.messages import Bar
from tests.support import Procs, aeventually, free_port

SERVER_PUB, SERVER_SEC = zmq.curve_keypair()
CLIENT_PUB, CLIENT_SEC = zmq.curve_keypair()
KEYS_ENV = {
    "BUS_CURVE_SERVER_KEY": SERVER_PUB.decode(),
    "BUS_CURVE_SERVER_SECRET": SERVER_SEC.decode(),
    "BUS_CURVE_CLIENT_KEY": CLIENT_PUB.decode(),
    "BUS_CURVE_CLIENT_SECRET": CLIENT_SEC.decode(),
}


def test_broker_refuses_a_network_interface_without_curve(procs: Procs) -> None:
    broker = procs.spawn(["-m", "broker"], name="broker",
                         env={"BUS_PUBLISH_ADDR": f"tcp://0.0.0.0:{free_port()}"})
    assert broker.wait(20) == 2
    assert "refusing remote endpoint" in broker.log()


async def test_curve_bus_admits_the_configured_client_only(procs: Procs, bus_env) -> None:  # type: ignore[no-untyped-def]
    procs.spawn(["-m", "broker"], name="broker", env=KEYS_ENV)
    good_keys = CurveKeys(SERVER_PUB, None, CLIENT_PUB, CLIENT_SEC)
    pub, sub = bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"]
    good = Bus(pub, sub, "good", curve=good_keys)
    other_pub, other_sec = zmq.curve_keypair()
    intruder = Bus(pub, sub, "intruder", curve=CurveKeys(SERVER_PUB, None, other_pub, other_sec))
    plain = Bus(pub, sub, "plain")
    got: dict[str, int] = {"intruder": 0, "plain": 0}
    intruder.on("bar.", lambda env: got.__setitem__("intruder", got["intruder"] + 1))
    plain.on("bar.", lambda env: got.__setitem__("plain", got["plain"] + 1))
    intruder.start()
    plain.start()
    try:
        await good.ready(timeout=20)
        seen = []
        good.on("bar.", lambda env: seen.append(env))
        bar = Bar(contract="X.Y", tf="1m", t=0, o=1, h=1, l=1, c=1, volume=1, final=True)

        def sent() -> bool:
            good.publish(topics.bar("1m", "X.Y"), bar)
            intruder.publish(topics.bar("1m", "X.Y"), bar)
            plain.publish(topics.bar("1m", "X.Y"), bar)
            return len(seen) >= 20

        await aeventually(sent, 20, interval=0.05, what="CURVE client receives")
        assert {e.src for e in seen} == {"good"}  # nothing from the unauthorised publishers
        assert got == {"intruder": 0, "plain": 0}  # and nothing reached them
        with pytest.raises(BusNotReady):
            await plain.ready(timeout=0.5)
    finally:
        for b in (good, intruder, plain):
            await b.close()
