"""An adversarial trader, run as its own process by the risk gate's referee tests.

    python -m tests.integration.risk_adversary --via gateway|rest --account ID [--start MS] --until MS
        [--seed N] [--long-bias P] [--out FILE]

It trades ES and MES as badly as it can: random sizes and sides, bursts of orders, oversized
orders, entries held into the flat window and sent at 15:09 CT, and (with --long-bias) buys
while the test drifts the market down. `--via gateway` sends everything to the gateway as the
strategy `adv` over the bus; `--via rest` sends the same stream straight to the venue's
Order/place. It never protects itself: every safety must come from what is in between.
A summary line (JSON: sent, accepted, by outcome) is written to --out at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
from collections import Counter
from datetime import datetime
from typing import Any

import httpx

from chillly.bus import Bus
from chillly.calendar import CHICAGO
from chillly.clock import clock_from_settings
from chillly.process import die_with_parent
from chillly.settings import load_settings


class Venue:
    def __init__(self, base: str, account: int) -> None:
        self.account = account
        self.http = httpx.AsyncClient(base_url=base, timeout=5.0)
        self.token = ""
        self.ids: dict[str, str] = {}

    async def start(self) -> None:
        r = await self.http.post("/api/Auth/loginKey", json={"userName": "trader", "apiKey": "k"})
        self.token = r.json()["token"]
        self.http.headers["Authorization"] = f"Bearer {self.token}"
        found = (await self.http.post("/api/Contract/available", json={"live": False})).json()
        self.ids = {"ES": _by(found, "F.US.EP"), "MES": _by(found, "F.US.MES")}

    async def submit(self, symbol: str, side: str, size: int, sl: int | None) -> str:
        body: dict[str, Any] = {"accountId": self.account, "contractId": self.ids[symbol],
                                "type": 2, "side": 0 if side == "buy" else 1, "size": size}
        if sl:
            body["stopLossBracket"] = {"ticks": -sl if side == "buy" else sl, "type": 4}
        try:
            resp = await self.http.post("/api/Order/place", json=body)
            if resp.status_code == 401:          # the token expired (long accelerated runs)
                await self.start()
                return "error_401"
            r = resp.json()
        except (httpx.HTTPError, ValueError) as exc:
            return f"error_{type(exc).__name__}"
        return "accepted" if r.get("success") else f"venue_{r.get('errorCode')}"


def _by(found: dict[str, Any], symbol_id: str) -> str:
    return next(c["id"] for c in found["contracts"]
                if c["symbolId"] == symbol_id and c["activeContract"])


class Gateway:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.n = 0

    async def start(self) -> None:
        await self.bus.ready(timeout=30)

    async def submit(self, symbol: str, side: str, size: int, sl: int | None) -> str:
        self.n += 1
        args: dict[str, Any] = {"client_id": f"adv-{self.n}", "contract": symbol, "side": side,
                                "size": size, "type": "market"}
        if sl:
            args["sl_ticks"] = sl
        try:
            reply = await self.bus.request("gateway", "submit", args, timeout=3.0, attempts=2)
        except Exception as exc:
            return f"error_{type(exc).__name__}"
        r = reply.result or {}
        return r.get("status", "?") if r.get("status") != "rejected" else \
            f"rejected_{r.get('rule')}"


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--via", choices=("gateway", "rest"), required=True)
    ap.add_argument("--account", type=int, required=True)
    ap.add_argument("--start", type=int, default=0, help="market epoch ms to begin at")
    ap.add_argument("--until", type=int, required=True, help="market epoch ms to stop at")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--long-bias", type=float, default=0.5)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    die_with_parent()          # a test or bench that dies takes its adversary with it
    settings = load_settings()
    clock = clock_from_settings(settings)
    rnd = random.Random(a.seed)
    if a.via == "rest":
        trader: Any = Venue(settings.topstep_api_url, a.account)
    else:
        trader = Gateway(Bus.from_settings(settings, "strategy-adv"))
    await trader.start()
    await clock.sleep_until(a.start)
    outcomes: Counter[str] = Counter()
    late_burst = False
    while clock.now_ms() < a.until:
        ct = datetime.fromtimestamp(clock.now_ms() / 1000, tz=CHICAGO)
        at_1509 = (ct.hour, ct.minute) == (15, 9)
        if at_1509 and not late_burst:
            late_burst = True
            orders = [("ES", "buy", 2, None)] * 3          # entries one minute before flat-by
        else:
            kind = rnd.random()
            side = "buy" if rnd.random() < a.long_bias else "sell"
            sym = "ES" if rnd.random() < 0.6 else "MES"
            if kind < 0.15:                                  # oversized
                orders = [(sym, side, rnd.randint(6, 60 if sym == "MES" else 12), None)]
            elif kind < 0.30:                                # a burst
                orders = [(sym, side, rnd.randint(1, 3), None) for _ in range(rnd.randint(4, 8))]
            else:
                orders = [(sym, side, rnd.randint(1, 4 if sym == "ES" else 30),
                           rnd.choice([None, None, 8, 40]))]
        results = await asyncio.gather(*(trader.submit(*o) for o in orders))
        outcomes.update(results)
        await clock.sleep(rnd.uniform(5, 40))               # market seconds
    with open(a.out, "w") as f:
        json.dump({"via": a.via, "account": a.account, "sent": sum(outcomes.values()),
                   "outcomes": dict(outcomes)}, f)
    if a.via == "gateway":
        await trader.bus.close()


if __name__ == "__main__":
    asyncio.run(main())
