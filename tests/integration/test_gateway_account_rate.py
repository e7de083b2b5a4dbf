"""The account message at CLOCK_SPEED=60 (issue 21 item 10): it went out every market second,
57 a second real, flooding `tap`; now on change, at most 4 a real second, and every 5 real
seconds unchanged. Counted as `chillly tap` sees it, through the real broker."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest

from tests.integration.test_gateway_support import Stack, Tap, stack_fixture
from tests.support import aeventually

stack = stack_fixture(CLOCK_SPEED="60",
                      CLOCK_ANCHOR=datetime.now(timezone.utc).isoformat(timespec="seconds"))

pytestmark = pytest.mark.timeout(180)


SPEED = 60
CONTENT = ("balance", "equity", "realized_pnl", "open_pnl", "can_trade")


async def test_the_account_goes_out_on_change_a_few_times_a_second_at_most(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        seen: list[dict] = []
        tap.bus.on(f"account.{acc}.", lambda env: seen.append(env.payload))
        start = time.monotonic()                    # flat for 3 s real, then held
        await aeventually(lambda: time.monotonic() - start > 3, timeout=10, interval=0.1)
        res = await tap.submit(contract="ES", side="buy", size=1)
        assert res["status"] == "accepted"
        await aeventually(lambda: len({p["equity"] for p in seen if p["open_pnl"]}) >= 3,
                          timeout=30, what="the held position's equity moving, three times")
        out = await tap.ask("flatten", {"all": True})
        assert out["status"] == "done"
        await aeventually(lambda: seen[-1]["realized_pnl"] != 0 and seen[-1]["open_pnl"] == 0,
                          timeout=20, what="the flat account published on change")
    # Judged by the publisher's own timestamps (market ms, 60 to the real second), so a
    # receiver slowed by the load cannot bunch them: never closer than 0.25 s real, and an
    # unchanged account no more often than every 5 s real. The old gateway sent one every
    # market second (1/60 s real).
    for a, b in zip(seen, seen[1:]):
        gap_real_s = (b["ts"] - a["ts"]) / 1000 / SPEED
        assert gap_real_s >= 0.24, (a, b)
        if all(a[k] == b[k] for k in CONTENT):
            assert gap_real_s >= 4.9, (a, b)
