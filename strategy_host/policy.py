"""What a strategy's sandboxed child may ask its trusted parent to do on the bus (pure).

The parent (strategy_host/parent.py) puts on the bus, under the instance's own name, only:
- commands to the gateway about the instance's own orders (`submit`, `cancel`, `modify`,
  `cancel_all`, `flatten`; the gateway refuses another owner's order by that name) and the reads
  the host needs (`orders` and `positions` of its own owner: the owner is rewritten, `account`).
  Not the day's `fills` or the gate's `refusals`: every owner's, the trader's to read (a
  strategy hears its own fills as they come, and a refused order in its command's reply);
- the series cache's `window` and the subscriptions service's `subscribe` for its contracts;
- its alarms and its readiness probe.
It subscribes, for the child, only to the instance's topics: its contracts' bars of its
timeframes, quotes, trades and contract metadata, its own order/fill/position events, and the
replies and probes addressed to the child. Anything else is refused with a reason.

Contracts are learned as the host resolves them: the configured texts (symbols or ids), and the
id the subscriptions service or the series cache answers for one of them.
"""

from __future__ import annotations

import re
from typing import Any

from chillly import topics

GATEWAY_OWN = frozenset({"submit", "cancel", "modify", "cancel_all", "flatten", "account"})
GATEWAY_OWNER_READS = frozenset({"orders", "positions"})
_OWN_EVENT = re.compile(r"^(order|fill|position)\.(\d+)\.(.+)\.$")
_MARKET = re.compile(r"^(quote|trade|contract)\.([^.]+(?:\.[^.]+)*)\.$")


class Policy:
    def __init__(self, name: str, process_name: str, contracts: list[str],
                 timeframes: list[str]) -> None:
        self.name = name
        self.process_name = process_name
        self.texts = set(contracts)
        self.contracts = set(contracts)          # + the ids the series cache resolved
        self.timeframes = set(timeframes)
        self._mine = f"{process_name}-"          # the child's bus instances: NAME-pid-random
        self._resolving: dict[str, str] = {}     # rid -> contract text being resolved

    # ------------------------------------------------------------------ subscriptions

    def subscription(self, prefix: str) -> str | None:
        """None when the child may receive `prefix`, else why not."""
        for kind in ("reply.", "_probe."):
            if prefix.startswith(kind + self._mine) and prefix.endswith(".") \
                    and prefix.count(".") == 2:
                return None
        if prefix.startswith("bar."):
            for tf in self.timeframes:
                for c in self.contracts:
                    if prefix == topics.bar(tf, c):
                        return None
            return f"bars {prefix!r}: not one of the instance's contracts and timeframes"
        m = _MARKET.match(prefix)
        if m and m.group(2) in self.contracts:
            return None
        m = _OWN_EVENT.match(prefix)
        if m and m.group(3) == self.name:
            return None
        return f"subscription to {prefix!r}: not one of the instance's topics"

    # ------------------------------------------------------------------ commands

    def command(self, service: str, name: str, args: dict[str, Any], reply_to: str,
                rid: str) -> tuple[dict[str, Any] | None, str | None]:
        """(the args to forward, None) when allowed, else (None, why not)."""
        if not (reply_to.startswith("reply." + self._mine) and reply_to.count(".") == 2
                and reply_to.endswith(".")):
            return None, f"reply_to {reply_to!r} is not the host's own"
        if service == "gateway":
            if name in GATEWAY_OWN:
                return args, None
            if name in GATEWAY_OWNER_READS:
                return {**args, "owner": self.name}, None
            return None, f"gateway {name}: not a strategy's command"
        if service == "series" and name == "window":
            c = args.get("contract")
            if c in self.contracts:
                if c in self.texts:
                    self._resolving[rid] = c
                return args, None
            return None, f"series window of {c!r}: not one of the instance's contracts"
        if service == "subscriptions" and name == "subscribe":
            if args.get("contract") in self.texts:
                self._resolving[rid] = args["contract"]
                return args, None
            return None, f"subscribe {args.get('contract')!r}: not one of the instance's contracts"
        return None, f"{service} {name}: not a strategy's command"

    def reply(self, rid: Any, ok: Any, result: Any) -> None:
        """A reply on its way to the child: learn the id the subscriptions service or the
        series cache resolved."""
        text = self._resolving.pop(rid, None) if isinstance(rid, str) else None
        if text is not None and ok and isinstance(result, dict):
            cid = result.get("contract")
            if isinstance(cid, str) and cid:
                self.contracts.add(cid)

    # ------------------------------------------------------------------ other publishes

    def own_topic(self, topic: str) -> bool:
        """The host's own heartbeat, alarm and readiness probe topics."""
        return topic in (topics.heartbeat(self.process_name), topics.alarm(self.process_name)) \
            or (topic.startswith("_probe." + self._mine) and topic.count(".") == 2)
