"""The trading tools a trader uses every day, through the real commands over a real gateway
and sim (issue 21 items 6 and 9): cancel-all over a bracketed entry, its legs before the entry
fills, refused orders in `orders --all` with their reason."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.integration.test_gateway_support import Stack, Tap, stack_fixture
from tests.support import ROOT, aeventually

stack = stack_fixture()

pytestmark = pytest.mark.timeout(180)


def run(stack: Stack, acc: int, *args: str) -> tuple[int, str, str]:
    p = subprocess.run([sys.executable, "-m", "chillly.cli", *args], cwd=str(ROOT),
                       env={**os.environ, **stack.env, **stack.gateway_env(acc)},
                       capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout, p.stderr


async def test_cancel_all_takes_the_legs_with_their_entry_and_shows_them_waiting(
        stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    es = stack.venue.contract("EP")
    tick = float(es["tickSize"])
    async with Tap(stack.env) as tap:
        await tap.ready()
        px, _ = stack.venue.quote(es["id"])
        far = round(round(px / tick) * tick - 200 * tick, 2)
        rc, out, err = run(stack, acc, "buy", "ES", "1", "--limit", str(far), "--sl", "20",
                           "--tp", "30")
        assert rc == 0, (out, err)
        await aeventually(lambda: len(stack.venue.orders(acc)) == 3, what="entry and legs")
        await aeventually(lambda: len(run(stack, acc, "orders", "--json")[1]) > 0 and len(
            json.loads(run(stack, acc, "orders", "--json")[1])["orders"]) == 3,
            what="the gateway knows the legs")
        rc, out, _ = run(stack, acc, "orders", "--json")
        shown = {o["client_id"].rsplit("-", 1)[-1]: o for o in json.loads(out)["orders"]}
        entry, sl, tp = shown["1"], shown["SL"], shown["TP"]
        assert entry["state"] == "working" and entry["limit_price"] == far
        # The venue holds the legs suspended and priceless until the entry fills.
        assert (sl["state"], sl["stop_price"]) == ("waiting", round(far - 20 * tick, 2))
        assert (tp["state"], tp["limit_price"]) == ("waiting", round(far + 30 * tick, 2))
        rc, out, _ = run(stack, acc, "orders")
        assert out.count("waiting") == 2 and str(round(far - 20 * tick, 2)) in out

        rc, out, err = run(stack, acc, "cancel-all", "--owner", "manual")
        assert rc == 0 and "3 cancelled" in out and "failed" not in out + err, (out, err)
        await aeventually(lambda: all(o["status"] == 3 for o in stack.venue.orders(acc)),
                          what="all three cancelled at the venue")


async def test_orders_all_lists_refused_orders_with_their_reason(stack: Stack) -> None:
    acc = stack.new_account()
    stack.gateway(acc)
    async with Tap(stack.env) as tap:
        await tap.ready()
        rc, _, err = run(stack, acc, "buy", "ES", "60")            # past the position cap
        assert rc == 1 and "max_position" in err
        rc, _, err = run(stack, acc, "sell", "NOSUCH", "1")
        assert rc == 1
        rc, out, _ = run(stack, acc, "orders")
        assert rc == 0 and "no working orders" in out              # working only: none
        rc, out, _ = run(stack, acc, "orders", "--all", "--json")
        refused = [o for o in json.loads(out)["orders"] if o["state"] == "rejected"]
        assert [(o["owner"], o["side"], o["size"], o["rule"]) for o in refused] == \
            [("manual", 0, 60, "max_position"), ("manual", 1, 1, "invalid")]
        assert refused[0]["reason"].startswith("max_position: ") and refused[0]["order_id"] \
            is None
        rc, out, _ = run(stack, acc, "orders", "--all")
        assert "REASON" in out and "max_position: " in out and "unknown contract" in out
        rc, out, _ = run(stack, acc, "orders", "--all", "--owner", "ema", "--json")
        assert json.loads(out)["orders"] == []
