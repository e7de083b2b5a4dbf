"""The `subscriptions` process: owns the set of subscribed contracts.

- The set is a list of contract ids (with the symbol each came from), saved atomically to
  RUN_DIR/<venue>/subscriptions.json on every change and restored on restart; when nothing is saved it
  starts from DEFAULT_CONTRACTS (resolved at the venue, retried until the venue answers).
- Commands (service "subscriptions"): `subscribe {"contract": "ES" or id}`, `unsubscribe {...}`,
  `list {}`; each replies `{"contracts": [ids], ...}`.
- It publishes `SubscriptionSet` on `subs.set.` on every change and every FEED_SET_INTERVAL
  seconds (the feeds follow it live), and `ContractInfo` on `contract.<id>.` when a contract is
  resolved and every FEED_CONTRACT_INFO_INTERVAL seconds (late joiners learn it).
- A subscription by symbol follows the venue's active contract across the roll (feeds/rolls.py):
  checked every FEED_ROLL_CHECK_INTERVAL seconds and on each new trading date, or at once on the
  `check-rolls` command; a roll moves the subscription and publishes `ContractRoll` on
  `roll.<symbol>.`. A subscription by contract id stays on that contract.
- CLI tools: `chillly subscribe X`, `chillly unsubscribe X`, `chillly subscriptions` (symbol,
  current contract, whether it follows the roll).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from chillly.bus import CommandError
from chillly import topics
from chillly.calendar import trading_date
from chillly.messages import ContractRoll, SubscriptionSet
from chillly.periodic import every
from chillly.process import StartupError, run_service
from chillly.oneshot import ask_sync
from feeds.rolls import Roll, RollWatch, follows
from feeds.venue_service import VenueService
from topstepx.contracts import ContractNotFound, ContractResolver, is_contract_id, to_info
from topstepx.errors import VenueError
from topstepx.models import Contract
from feeds.settings import FeedSettings
from feeds.state import JsonState

log = logging.getLogger("feeds.subscriptions")

SERVICE = "subscriptions"
STATE_FILE = "subscriptions.json"


class SubscriptionsService(VenueService):
    name = "subscriptions"
    settings_cls = FeedSettings

    async def on_start(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        self.connect_venue()
        self.resolver = ContractResolver(self.client)
        self.rolls = RollWatch(self.resolver)
        self.saved = JsonState(s.venue_run_dir / STATE_FILE)
        try:
            saved = self.saved.load()
        except ValueError as exc:
            raise StartupError(str(exc)) from None
        self.entries: list[dict[str, Any]] = []   # {"contract": id, "symbol": str|None, "info": {...}}
        self.loaded = saved is not None
        if saved is not None:
            for e in saved.get("contracts", []):
                if isinstance(e, dict) and isinstance(e.get("contract"), str):
                    self.entries.append(e)
        self.counters.update({"changes": 0, "rejected_commands": 0})
        self._lock = asyncio.Lock()
        self.bus.serve(SERVICE, {"subscribe": self.cmd_subscribe,
                                 "unsubscribe": self.cmd_unsubscribe, "list": self.cmd_list,
                                 "check-rolls": self.cmd_check_rolls})

    def ids(self) -> list[str]:
        return [e["contract"] for e in self.entries]

    def result(self, **extra: Any) -> dict[str, Any]:
        return {"contracts": self.ids(),
                "symbols": {e["contract"]: e.get("symbol") for e in self.entries},
                "follow": {e["contract"]: follows(e) for e in self.entries}, **extra}

    def venue_counters(self) -> dict[str, Any]:
        return dict(self.rolls.counters)

    async def run(self) -> None:
        if not self.loaded:
            await self._resolve_defaults()
        await asyncio.gather(self._publish_loop(), self._info_loop(), self._roll_loop(),
                             self.client.auth.keep_fresh())

    async def _resolve_defaults(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        pending = list(s.default_contracts)
        delay = 0.5
        while pending:
            left = []
            for text in pending:
                try:
                    contract = await self.resolver.resolve(text)
                except ContractNotFound as exc:
                    log.error("DEFAULT_CONTRACTS: %s (skipped)", exc)
                    continue
                except VenueError as exc:
                    log.warning("cannot resolve %s yet: %s", text, exc)
                    left.append(text)
                    continue
                async with self._lock:
                    if contract.id not in self.ids():
                        self.entries.append(self._entry(contract, text))
            pending = left
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        async with self._lock:
            await self._changed()

    def _entry(self, contract: Contract, text: str) -> dict[str, Any]:
        by_symbol = not is_contract_id(text)
        info = to_info(contract, text.upper() if by_symbol else None)
        return {"contract": contract.id, "symbol": info.symbol, "info": info.body(),
                "follow": by_symbol}

    async def _changed(self) -> None:
        self.counters["changes"] += 1
        await self.saved.save({"contracts": self.entries})
        self.publish_set()

    def publish_set(self) -> None:
        self.bus.publish(topics.subscription_set(), SubscriptionSet(contracts=self.ids()))

    def publish_infos(self) -> None:
        from chillly.messages import ContractInfo

        for e in self.entries:
            info = e.get("info")
            if isinstance(info, dict):
                try:
                    msg = ContractInfo(**{k: info[k] for k in ContractInfo._fields})
                except (KeyError, TypeError):
                    log.warning("saved metadata of %s is incomplete", e["contract"])
                    continue
                self.bus.publish(topics.contract_info(e["contract"]), msg)

    async def _publish_loop(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        await every(s.feed_set_interval, self._publish_set_if_known)

    def _publish_set_if_known(self) -> None:
        if self.loaded or self.entries:
            self.publish_set()

    async def _info_loop(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        await every(s.feed_contract_info_interval, self.publish_infos)

    # ------------------------------------------------------------------ contract roll

    async def _roll_loop(self) -> None:
        s: FeedSettings = self.settings  # type: ignore[assignment]
        await every(s.feed_roll_check_interval, self.check_rolls)

    async def check_rolls(self) -> list[Roll]:
        """Ask the venue about every subscription by symbol; move the ones that rolled."""
        entries = [dict(e) for e in self.entries]
        due = await self.rolls.check(entries, trading_date(self.clock.now_ms()))
        done = []
        for roll in due:
            async with self._lock:
                if roll.old in self.ids():
                    self._apply(roll)
                    await self._changed()
                    done.append(roll)
            if roll in done:
                self.rolls.counters["rolls"] += 1
                self.bus.publish(topics.contract_roll(roll.symbol), ContractRoll(
                    symbol=roll.symbol, old=roll.old, new=roll.new.id, reason=roll.reason))
                log.info("%s rolled from %s to %s (%s)", roll.symbol, roll.old, roll.new.id,
                         roll.reason)
        if done:
            self.publish_infos()
        return done

    def _apply(self, roll: Roll) -> None:
        """Replace the old contract by the new one in place (the set keeps its order); if the
        new one is already subscribed, that entry now follows the symbol."""
        new = self._entry(roll.new, roll.symbol)
        if roll.new.id in self.ids():
            self.entries = [dict(e, follow=True) if e["contract"] == roll.new.id else e
                            for e in self.entries if e["contract"] != roll.old]
        else:
            self.entries = [new if e["contract"] == roll.old else e for e in self.entries]

    async def cmd_check_rolls(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check now (a process that was told `ContractNotActive` by the venue asks this)."""
        try:
            done = await self.check_rolls()
        except VenueError as exc:
            raise CommandError(f"cannot reach the venue: {exc}") from None
        return self.result(rolled=[{"symbol": r.symbol, "old": r.old, "new": r.new.id}
                                   for r in done])

    # ------------------------------------------------------------------ commands

    async def _resolve_cmd(self, args: dict[str, Any]) -> tuple[str, Contract | None]:
        text = args.get("contract")
        if not isinstance(text, str) or not text.strip():
            self.counters["rejected_commands"] += 1
            raise CommandError('expected {"contract": "ES" or a contract id}')
        text = text.strip()
        try:
            return text, await self.resolver.resolve(text)
        except ContractNotFound as exc:
            self.counters["rejected_commands"] += 1
            raise CommandError(str(exc)) from None
        except VenueError as exc:
            raise CommandError(f"cannot reach the venue to resolve {text}: {exc}") from None

    async def cmd_subscribe(self, args: dict[str, Any]) -> dict[str, Any]:
        text, contract = await self._resolve_cmd(args)
        assert contract is not None
        async with self._lock:
            if contract.id in self.ids():
                # The contract's metadata in the reply: a strategy host knows its tick before
                # on_start rather than at the next periodic publication.
                held = next(e for e in self.entries if e["contract"] == contract.id)
                return self.result(contract=contract.id, changed=False, info=held.get("info"))
            entry = self._entry(contract, text)
            self.entries.append(entry)
            self.loaded = True
            await self._changed()
        self.publish_infos()
        log.info("subscribed %s (%s)", contract.id, text)
        return self.result(contract=contract.id, changed=True, info=entry["info"])

    async def cmd_unsubscribe(self, args: dict[str, Any]) -> dict[str, Any]:
        text = args.get("contract")
        if not isinstance(text, str) or not text.strip():
            self.counters["rejected_commands"] += 1
            raise CommandError('expected {"contract": "ES" or a contract id}')
        text = text.strip()
        # Match what we hold first (no venue needed): the id, or the symbol it came from.
        match = [e for e in self.entries
                 if e["contract"] == text or (e.get("symbol") or "").upper() == text.upper()]
        if not match and not is_contract_id(text):
            _, contract = await self._resolve_cmd(args)
            match = [e for e in self.entries if contract and e["contract"] == contract.id]
        if not match:
            self.counters["rejected_commands"] += 1
            raise CommandError(f"{text} is not subscribed")
        async with self._lock:
            gone = {e["contract"] for e in match}
            self.entries = [e for e in self.entries if e["contract"] not in gone]
            self.loaded = True
            await self._changed()
        log.info("unsubscribed %s", ", ".join(sorted(gone)))
        return self.result(contract=sorted(gone)[0], changed=True)

    async def cmd_list(self, args: dict[str, Any]) -> dict[str, Any]:
        return self.result()


def cli(args: argparse.Namespace) -> int:
    """`chillly subscriptions serve`."""
    return run_service(SubscriptionsService)


# ---------------------------------------------------------------------- CLI tools


def add_contract_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("contract", help="a symbol (ES, MNQ) or a contract id (CON.F.US.EP.Z26)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")


def add_unsubscribe_arguments(p: argparse.ArgumentParser) -> None:
    add_contract_argument(p)
    p.add_argument("--force", action="store_true",
                   help="unsubscribe even a contract a strategy of STRATEGIES_FILE trades")


def add_list_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=["list", "serve"], default="list",
                   help="list (default): print the subscribed set; serve: run the process")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the reply")
    p.add_argument("--json", action="store_true", help="print the reply as JSON")


def _print_set(result: Any) -> None:
    """One line per subscription: symbol, the contract it is on now, and whether it rolls."""
    symbols = result.get("symbols", {}) if isinstance(result, dict) else {}
    follow = result.get("follow", {}) if isinstance(result, dict) else {}
    for cid in (result or {}).get("contracts", []):
        sym = symbols.get(cid) or "-"
        how = "follows the active contract" if follow.get(cid) else "this contract only"
        print(f"{sym:<6} {cid:<24} {how}")


def _run_tool(name: str, args: dict[str, Any], timeout: float, as_json: bool = False) -> int:
    import json

    ok, result, error = ask_sync(SERVICE, name, args, timeout=timeout)
    if not ok:
        print(f"chillly {'subscriptions' if name == 'list' else name}: {error}",
              file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps(result))
    else:
        if name != "list" and isinstance(result, dict):
            what = "subscribed" if name == "subscribe" else "unsubscribed"
            print(f"{what} {result.get('contract')}"
                  + ("" if result.get("changed", True) else " (already)"))
        _print_set(result)
    return 0


def cli_subscribe(ns: argparse.Namespace) -> int:
    return _run_tool("subscribe", {"contract": ns.contract}, ns.timeout)


def traded_by(text: str, subscribed: dict[str, Any]) -> tuple[list[str], str | None]:
    """The instances of STRATEGIES_FILE that may trade here (enabled, run_on) and list the
    contract `text` names (a symbol or an id, matched through the subscribed set's symbols);
    or a reason the file cannot tell."""
    from chillly.settings import Settings, load_settings
    from trading.strategy.config_file import LoadError, parse_instances
    from trading.strategy.instance import allowed

    s = load_settings(Settings)
    path = s.strategies_file
    if not path.is_file():
        return [], None
    symbols = subscribed.get("symbols", {})
    names = {text.upper()}
    for cid, sym in symbols.items():
        if text.upper() in (cid.upper(), (sym or "").upper()):
            names.update(n.upper() for n in (cid, sym) if n)
    try:
        instances = parse_instances(path.read_text(), path)
    except LoadError as exc:
        return [], str(exc)
    return sorted(i.name for i in instances.values()
                  if allowed(i, s.uses_live_venue, s.topstep_account_id,
                             s.topstep_account_name)[0]
                  and names & {c.upper() for c in i.contracts}), None


def cli_unsubscribe(ns: argparse.Namespace) -> int:
    if not ns.force:
        # A strategy's feed would stop under it (and come back at its next start): refuse.
        ok, subscribed, _ = ask_sync(SERVICE, "list", {}, timeout=ns.timeout)
        holders, problem = traded_by(ns.contract, subscribed if ok else {})
        if problem or holders:
            why = (f"cannot tell which strategies trade it: {problem}" if problem else
                   f"traded by strategy {', '.join(holders)}")
            print(f"chillly unsubscribe: {ns.contract} is {why}"
                  f"{'' if problem else ' (STRATEGIES_FILE)'}; stop or disable it first, "
                  "or --force", file=sys.stderr)
            return 1
    return _run_tool("unsubscribe", {"contract": ns.contract}, ns.timeout)


def cli_list(ns: argparse.Namespace) -> int:
    if ns.action == "serve":
        return cli(ns)
    return _run_tool("list", {}, ns.timeout, ns.json)
