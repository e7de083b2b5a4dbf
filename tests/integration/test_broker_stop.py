"""Defect 13: the broker stops within 2 s under load, with a subscriber that stopped reading
(its queues full) and a publisher still sending, and its statistics keep coming meanwhile."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from tests.integration.test_bus import start_pub, start_sub
from tests.integration.test_store_support import Heartbeats
from tests.support import Procs, aeventually, eventually

STOP_BOUND = 2.5  # the 2 s plus scheduling on a loaded 2-core machine


@pytest.mark.serial      # judged by time: stopped within 2 s of SIGTERM
async def test_broker_stops_within_2s_under_load(procs: Procs, bus, tmp_path: Path) -> None:
    broker = procs.children[0]
    hb = Heartbeats(bus)
    stalled, _ = start_sub(procs, tmp_path, "sub-stalled", "bar.")
    os.kill(stalled.pid, signal.SIGSTOP)
    try:
        pub = start_pub(procs, "pub", "CON.F.US.EP.Z26", interval=0.0)
        eventually(lambda: "running" in pub.log(), 20, what="publisher running")
        await aeventually(lambda: hb.last.get("broker", {}).get("counters", {})
                          .get("relayed", 0) > 10_000, timeout=30, what="traffic relayed")
        sent = time.monotonic()
        code = broker.terminate(timeout=STOP_BOUND)
        assert code == 0, f"broker exited {code} after {time.monotonic() - sent:.1f}s\n{broker.log()}"
    finally:
        os.kill(stalled.pid, signal.SIGCONT)


def test_broker_waits_for_an_old_one_to_let_go_of_its_address(procs: Procs, bus_env) -> None:
    """A new broker started while the old one still stops (supervisord dead and started again:
    every old program is still in its 2 s stop) must not exit 2 at once for "address in use",
    which supervisord would never restart; it waits out the old one's stop."""
    import socket

    port = int(bus_env["BUS_PUBLISH_ADDR"].rsplit(":", 1)[1])
    old = socket.socket()
    old.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    old.bind(("127.0.0.1", port))
    old.listen()
    try:
        new = procs.spawn(["-m", "broker"], name="broker-new")
        eventually(lambda: "starting (pid" in new.log(), 20, what="the new broker starting")
        time.sleep(0.5)    # the old broker's stop, in progress
        assert new.alive(), new.log()
    finally:
        old.close()
    eventually(lambda: "relaying" in new.log(), 10, what="the new broker relaying")
    assert new.terminate() == 0
