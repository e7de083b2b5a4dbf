"""Defect 9: a subscription by symbol follows the venue's active contract across the roll.

The sim rolls ES 8 days before the third Friday of the contract month (sim/market/contracts.py); the
clock is set a few market minutes before that (2026-12-10 00:00 UTC: Z26 -> H27) and runs 30x.
The subscriptions were saved before (ES by symbol on Z26, NQ by id on Z26), so the service holds
Z26 from its start however slowly the processes start. Across the roll it sees the venue call Z26
inactive, moves ES to H27, says so once on `roll.ES.`, the feeds follow (H27 bars arrive) and
`chillly subscriptions` shows ES on H27. The subscription by contract id (NQ Z26) stays."""

from __future__ import annotations

import json
from datetime import datetime, timezone

from chillly.messages import Bar, ContractRoll, SubscriptionSet
from tests.integration.test_feeds_helpers import Collect, Stack, stack_env
from tests.integration.test_store_sim import anchor_for
from tests.support import aeventually

SPEED = 30
ROLL = int(datetime(2026, 12, 10, tzinfo=timezone.utc).timestamp() * 1000)
OLD, NEW, NQ = "CON.F.US.EP.Z26", "CON.F.US.EP.H27", "CON.F.US.ENQ.Z26"


def tool(procs, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    p = procs.chillly(*args, stdout_pipe=True)
    out, _ = p.popen.communicate(timeout=30)
    return p.popen.returncode, out.decode()


async def test_a_symbol_follows_the_active_contract_across_the_roll(procs, bus) -> None:  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=SPEED, DEFAULT_CONTRACTS=f"ES,{NQ}",
                               FEED_ROLL_CHECK_INTERVAL="0.3", FEED_CONTRACT_INFO_INTERVAL="1"))
    procs.env["CLOCK_ANCHOR"] = anchor_for(ROLL - 4 * 60_000, SPEED)   # 8 real seconds before
    saved = procs.tmp / "run" / "sim" / "subscriptions.json"
    saved.parent.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps({"contracts": [
        {"contract": OLD, "symbol": "ES", "follow": True, "info": {}},
        {"contract": NQ, "symbol": "NQ", "follow": False, "info": {}}]}))
    stack = Stack(procs)
    sets = Collect(bus, "subs.set.")
    rolls = Collect(bus, "roll.")
    bars = Collect(bus, "bar.1m.")
    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-bars")
    await aeventually(lambda: any(isinstance(s, SubscriptionSet) and s.contracts == [OLD, NQ]
                                  for s in sets.items), timeout=15, what="ES on Z26 before")
    roll = await aeventually(lambda: next((r for r in rolls.items
                                           if isinstance(r, ContractRoll)), None),
                             timeout=20, what="the ES roll")
    assert (roll.symbol, roll.old, roll.new) == ("ES", OLD, NEW)
    assert "not active" in roll.reason
    assert stack.market_now() >= ROLL
    assert len([r for r in rolls.items if isinstance(r, ContractRoll)]) == 1
    await aeventually(lambda: isinstance(sets.items[-1], SubscriptionSet)
                      and sets.items[-1].contracts == [NEW, NQ], timeout=5, what="the new set")
    await aeventually(lambda: any(isinstance(b, Bar) and b.contract == NEW for b in bars.items),
                      timeout=15, what="bars of the new front month")
    rc, out = tool(procs, "subscriptions")
    lines = {ln.split()[0]: ln for ln in out.splitlines() if ln.strip()}
    assert rc == 0 and NEW in lines["ES"] and "follows" in lines["ES"], out
    assert NQ in lines["NQ"] and "this contract only" in lines["NQ"], out
    assert OLD not in out
