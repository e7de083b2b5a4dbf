"""The subscriptions process and its tools against the real sim: DEFAULT_CONTRACTS at first
start, subscribe/unsubscribe/list over the bus with exit codes, the set saved atomically and
restored on restart, the feeds following it live, contract metadata on the bus."""

from __future__ import annotations

import json

from chillly.messages import Bar, ContractInfo, Quote, SubscriptionSet
from tests.integration.test_feeds_helpers import Collect, Stack, stack_env
from tests.support import aeventually


STRATEGIES = """
[strategies.es_trend]
class = "mine.py:Trend"
contracts = ["ES"]
[strategies.es_off]
class = "mine.py:Trend"
contracts = ["ES"]
enabled = false
[strategies.es_live]
class = "mine.py:Trend"
contracts = ["ES"]
run_on = ["12345"]
"""


def tool(procs, *args: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    p = procs.chillly(*args, stdout_pipe=True)
    out, _ = p.popen.communicate(timeout=30)
    return p.popen.returncode, out.decode()


async def test_subscriptions_persist_and_the_feeds_follow_them(procs, bus) -> None:  # type: ignore[no-untyped-def]
    procs.env.update(stack_env(speed=60, DEFAULT_CONTRACTS="ES", FEED_CONTRACT_INFO_INTERVAL="1"))
    (procs.tmp / "strategies.toml").write_text(STRATEGIES)
    procs.env["STRATEGIES_FILE"] = str(procs.tmp / "strategies.toml")
    stack = Stack(procs)
    sets = Collect(bus, "subs.set.")
    infos = Collect(bus, "contract.")
    data = Collect(bus, "bar.1m.")
    bus.on("quote.", lambda env: data.items.append(env.message()))

    # No broker-side service yet: the tool says so and fails.
    rc, _ = tool(procs, "subscriptions", "--timeout", "1.5")
    assert rc == 1

    await stack.start_sim()
    stack.start("subscriptions")
    stack.start("feed-bars")
    stack.start("feed-market")
    await aeventually(lambda: any(isinstance(s, SubscriptionSet) and len(s.contracts) == 1
                                  for s in sets.items), timeout=15, what="the default set")
    es = sets.items[-1].contracts[0]
    assert es.startswith("CON.F.US.EP.")
    info = await aeventually(lambda: next((i for i in infos.items if isinstance(i, ContractInfo)
                                           and i.contract == es), None), timeout=10,
                             what="ES contract info")
    assert (info.symbol, info.tick_size, info.tick_value, info.active) == ("ES", 0.25, 12.5, True)

    rc, out = tool(procs, "subscribe", "MNQ")
    assert rc == 0 and "subscribed CON.F.US.MNQ." in out
    mnq = out.split()[1]
    rc, out = tool(procs, "subscribe", mnq)  # by id, already there: fine, nothing changes
    assert rc == 0 and "(already)" in out
    rc, out = tool(procs, "subscribe", "NOSUCH")
    assert rc == 1
    rc, out = tool(procs, "subscriptions")
    assert rc == 0 and es in out and mnq in out

    # The feeds follow the set live: MNQ bars and quotes appear.
    await aeventually(lambda: any(isinstance(b, Bar) and b.contract == mnq for b in data.items),
                      timeout=15, what="MNQ bars")
    await aeventually(lambda: any(isinstance(q, Quote) and q.contract == mnq
                                  for q in data.items), timeout=15, what="MNQ quotes")

    saved = json.loads((procs.tmp / "run" / "sim" / "subscriptions.json").read_text())
    assert [e["contract"] for e in saved["contracts"]] == [es, mnq]

    # A strategy trades ES (issue 21 item 8): refused, naming it, by symbol or by id; a
    # disabled instance, or one for a live account only, holds nothing on the sim.
    for text in ("ES", "es", es):
        rc, out = tool(procs, "unsubscribe", text)
        assert rc == 1 and out == "", out
        refusal = procs.children[-1].log()
        assert f"chillly unsubscribe: {text} is traded by strategy es_trend (STRATEGIES_FILE); " \
            "stop or disable it first, or --force" in refusal, refusal
    assert tool(procs, "subscriptions")[1].count("CON.F.US.EP.") == 1   # still subscribed
    rc, out = tool(procs, "unsubscribe", "ES", "--force")
    assert rc == 0 and mnq in out and es not in out.splitlines()[1:]
    rc, _ = tool(procs, "unsubscribe", "ES", "--force")
    assert rc == 1  # not subscribed any more

    # Unsubscribed ES stops: once the set without it is out, no new ES bars or quotes.
    await aeventually(lambda: sets.items[-1].contracts == [mnq], timeout=10, what="the new set")
    await aeventually(lambda: len(data.items) > 0, timeout=5)
    mark = len(data.items)
    await aeventually(lambda: sum(getattr(m, "contract", "") == mnq
                                  for m in data.items[mark:]) >= 20, timeout=15,
                      what="more MNQ data")
    # allow messages that were in flight when the set changed, then nothing more for ES
    late = [m for m in data.items[mark + 5:] if getattr(m, "contract", "") == es]
    assert late == []

    # Restart: the saved set wins over DEFAULT_CONTRACTS.
    assert stack.children["subscriptions"].terminate() == 0
    stack.start("subscriptions")
    rc, out = tool(procs, "subscriptions", "--json")
    assert rc == 0 and json.loads(out)["contracts"] == [mnq]
