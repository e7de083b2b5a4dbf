"""Bus security: remote endpoints need CURVE; with CURVE only the configured client gets in."""

from __future__ import annotations


import pytest
import zmq

from chillly.bus import Bus, BusNotReady
from chillly.security import CurveKeys
from chillly import topics
from chillly.messages import Bar
from tests.support import START_TIMEOUT, Procs, aeventually, free_port

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
    assert broker.wait(60) == 2
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
        await good.ready(timeout=START_TIMEOUT)
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


async def test_cli_tools_use_the_curve_keys(procs: Procs, bus_env) -> None:  # type: ignore[no-untyped-def]
    """Defect 14: a tool on a CURVE bus gets through with the configured keys."""
    procs.spawn(["-m", "broker"], name="broker", env=KEYS_ENV)
    server = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "subscriptions",
                 curve=CurveKeys(SERVER_PUB, None, CLIENT_PUB, CLIENT_SEC))

    async def listing(args: dict) -> dict:  # type: ignore[type-arg]
        return {"contracts": ["CON.F.US.EP.Z26"], "entries": []}

    server.serve("subscriptions", {"list": listing})
    try:
        await server.ready(timeout=START_TIMEOUT)
        tool = procs.chillly("subscriptions", "--json", env=KEYS_ENV, stdout_pipe=True)
        await aeventually(lambda: tool.popen.poll() is not None, 30, what="the tool done")
        out = tool.popen.stdout.read().decode()  # type: ignore[union-attr]
        assert tool.popen.returncode == 0, tool.log()
        assert "CON.F.US.EP.Z26" in out
    finally:
        await server.close()


@pytest.mark.parametrize("tool", [["subscriptions"], ["subscribe", "ES"], ["status"],
                                  ["backfill", "ES", "--days", "1"], ["tap", "bar."]])
def test_a_tool_on_a_remote_bus_without_keys_says_so_in_one_line(procs: Procs, tool) -> None:  # type: ignore[no-untyped-def]
    remote = {"BUS_PUBLISH_ADDR": "tcp://10.255.255.1:7101",
              "BUS_SUBSCRIBE_ADDR": "tcp://10.255.255.1:7102"}
    p = procs.chillly(*tool, env=remote)
    assert p.wait(60) == 2, p.log()
    text = p.log().strip()
    assert "Traceback" not in text and text.count("\n") == 0, text
    assert "refusing remote endpoint" in text and "CURVE" in text
