"""Defect 13: the broker stops within 2 s under load, with a subscriber that stopped reading
(its queues full) and a publisher still sending, and its statistics keep coming meanwhile."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from tests.integration.test_bus import start_pub, start_sub
from tests.integration.test_store_support import Heartbeats
from tests.support import Procs, aeventually, eventually

STOP_BOUND = 2.5  # the 2 s plus scheduling on a loaded 2-core machine


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
