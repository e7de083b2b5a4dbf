"""Defect 19: one store per database. A second store on the same DATABASE_PATH exits 2 at
once naming the first one's pid, and the first keeps running; once the first is gone (even
SIGKILLed) a new store starts."""

from __future__ import annotations

from tests.integration.test_store_support import Heartbeats
from tests.support import START_TIMEOUT, aeventually


async def test_second_store_on_one_database_exits_2_naming_the_holder(procs, bus) -> None:
    hb = Heartbeats(bus)
    first = procs.chillly("store", env={"STORE_RECOVER": "false"}, name="store-1")
    await aeventually(lambda: hb.running("store"), timeout=START_TIMEOUT, what="store running")
    second = procs.chillly("store", env={"STORE_RECOVER": "false"}, name="store-2")
    assert second.wait(60) == 2
    assert f"pid {first.pid}" in second.log()
    assert first.alive()
    first.kill()
    third = procs.chillly("store", env={"STORE_RECOVER": "false"}, name="store-3")
    await aeventually(lambda: hb.pid("store") == third.pid and hb.running("store"),
                      timeout=START_TIMEOUT, what="a new store running after the first was killed")
    assert third.terminate() == 0
