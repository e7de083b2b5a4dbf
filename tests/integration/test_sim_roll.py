"""Contract/search across the ES roll date with a real sim process at an accelerated clock.

ESZ6's roll date is 2026-12-10 (8 days before its expiry, the third Friday, Dec 18): before it
the search lists ESZ6 active alone; from it ESH7 is active and ESZ6 is listed inactive until it
expires; searchById resolves both, and trading the outgoing month is refused (code 9).
"""

from __future__ import annotations

from pathlib import Path

import httpx

from chillly.clock import iso_to_ms
from tests.sim_client import anchor_for, login, sim_env
from tests.support import eventually, running_sim

SPEED = 1800   # half an hour of market time a real second


def test_a_run_across_the_roll_date(tmp_path: Path) -> None:
    env = sim_env(tmp_path, SIM_ROOTS="EP", SIM_HISTORY_DAYS="1", CLOCK_SPEED=str(SPEED),
                  CLOCK_ANCHOR=anchor_for(iso_to_ms("2026-12-09T19:00:00Z"), SPEED))
    with running_sim(tmp_path, env) as base:
        http = httpx.Client(base_url=base, timeout=10.0,
                            headers={"Authorization": f"Bearer {login(base)}"})

        def listed() -> list[tuple[str, bool]]:
            r = http.post("/api/Contract/search", json={"live": False, "searchText": "ES"})
            return [(c["id"], c["activeContract"]) for c in r.json()["contracts"]]

        # The clock read after the listing: a listing read before it is from before that time
        # (read first, the clock said 23:58 and the listing came after the roll, a market
        # minute being 33 real ms). A very slow start may miss the time before the roll.
        before = listed()
        now = httpx.get(f"{base}/admin/state").json()["now"]
        if now < iso_to_ms("2026-12-09T23:59:00Z"):
            assert before == [("CON.F.US.EP.Z26", True)]
        eventually(lambda: listed() == [("CON.F.US.EP.H27", True), ("CON.F.US.EP.Z26", False)],
                   timeout=30, what="ESH7 active and ESZ6 listed inactive after the roll")
        for cid, active in (("CON.F.US.EP.Z26", False), ("CON.F.US.EP.H27", True)):
            one = http.post("/api/Contract/searchById", json={"contractId": cid}).json()
            assert one["contract"]["activeContract"] is active
        r = http.post("/api/Order/place", json={"accountId": 1001, "contractId":
                                                "CON.F.US.EP.Z26", "type": 2, "side": 0,
                                                "size": 1}).json()
        assert (r["success"], r["errorCode"]) == (False, 9)
        assert http.post("/api/Order/place", json={"accountId": 1001, "contractId":
                                                   "CON.F.US.EP.H27", "type": 2, "side": 0,
                                                   "size": 1}).json()["success"]
