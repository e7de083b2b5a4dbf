"""Every bus topic is built here and nowhere else.

Topics are dotted, general to specific, and always end with the delimiter ".". ZeroMQ matches
subscriptions by byte prefix, so the trailing delimiter is what keeps a subscription to one
contract (`bar.1m.CON.F.US.EP.Z26.`) from receiving another whose id merely starts the same way,
and a subscription to `bar.1m.` from receiving `bar.15m.` bars. Contract ids contain dots
themselves; they are always the last segment before the delimiter.

The grammar is documented in docs/wire-format.md.
"""

from __future__ import annotations

D = "."


def _seg(value: str, what: str) -> str:
    if not value or any(c.isspace() for c in value) or value.startswith(D) or value.endswith(D):
        raise ValueError(f"bad {what} for a topic: {value!r}")
    return value


def bar(tf: str, contract: str) -> str:
    """Bars of one timeframe ("1m", "5m", "1h", "1d") for one contract, partial and final."""
    return f"bar.{_seg(tf, 'timeframe')}.{_seg(contract, 'contract')}."


def history_bar(tf: str, contract: str) -> str:
    """Final bars re-sent on request (backfill for a store or a tool), kept apart from the live
    `bar.` stream so that stream's "one final per bar" promise holds."""
    return f"hist.{_seg(tf, 'timeframe')}.{_seg(contract, 'contract')}."


def bars(tf: str | None = None) -> str:
    """Prefix: all bars, or all bars of one timeframe."""
    return "bar." if tf is None else f"bar.{_seg(tf, 'timeframe')}."


def quote(contract: str) -> str:
    return f"quote.{_seg(contract, 'contract')}."


def trade(contract: str) -> str:
    return f"trade.{_seg(contract, 'contract')}."


def depth(contract: str) -> str:
    return f"depth.{_seg(contract, 'contract')}."


def contract_info(contract: str) -> str:
    return f"contract.{_seg(contract, 'contract')}."


def clock_tick(tf: str) -> str:
    """Boundary events published from the clock when a timeframe's bucket closes."""
    return f"clock.{_seg(tf, 'timeframe')}."


def heartbeat(process: str) -> str:
    return f"hb.{_seg(process, 'process')}."


def alarm(process: str) -> str:
    return f"alarm.{_seg(process, 'process')}."


def command(service: str, name: str) -> str:
    """A command for `service` (request/reply; see chillly.bus.Bus.request)."""
    return f"cmd.{_seg(service, 'service')}.{_seg(name, 'command')}."


def commands(service: str) -> str:
    """Prefix: every command for one service."""
    return f"cmd.{_seg(service, 'service')}."


def reply(requester: str) -> str:
    """Replies addressed to one requesting process instance."""
    return f"reply.{_seg(requester, 'requester')}."


def subscription_set() -> str:
    return "subs.set."


def contract_roll(symbol: str) -> str:
    """A subscription by symbol moved to another contract (the front month rolled)."""
    return f"roll.{_seg(symbol, 'symbol')}."


ACCOUNT_OWNER = "_account"  # owner segment of the venue's own (account-level) positions


def order_event(account: int | str, owner: str) -> str:
    """Order updates of one owner (strategy name, "manual", "external") on one account."""
    return f"order.{account}.{_seg(owner, 'owner')}."


def fill_event(account: int | str, owner: str) -> str:
    return f"fill.{account}.{_seg(owner, 'owner')}."


def position_event(account: int | str, owner: str = ACCOUNT_OWNER) -> str:
    """Positions of one owner; owner "_account" carries the venue's net positions."""
    return f"position.{account}.{_seg(owner, 'owner')}."


def account_event(account: int | str) -> str:
    return f"account.{account}."


def risk_event(account: int | str) -> str:
    """Trading-state changes and risk-gate rejections of one account."""
    return f"risk.{account}."


def trading(kind: str, account: int | str | None = None) -> str:
    """Prefix: every `order`/`fill`/`position`/`account`/`risk` event, optionally of one account."""
    return f"{_seg(kind, 'kind')}." if account is None else f"{kind}.{account}."


PROBES = "_probe."


def probe(instance: str) -> str:
    """Loopback probe a bus client sends to itself to prove the broker path works."""
    return f"{PROBES}{_seg(instance, 'instance')}."


HISTORY = "hist."
CONTRACTS = "contract."
ROLLS = "roll."
HEARTBEATS = "hb."
ALARMS = "alarm."
REPLIES = "reply."
QUOTES = "quote."
TRADES = "trade."
