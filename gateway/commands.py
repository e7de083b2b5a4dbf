"""The gateway's bus commands (service `gateway`, docs/wire-format.md): validation of each
command's arguments and who may touch which order, then the action. Every command replies;
order commands reply `not_ready` until start-up is done."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from gateway.gate import SELL, Intent
from gateway.orders import TERMINAL
from gateway.requests import TYPE_NAME, Invalid, build_intent, owner_of, parse_submit
from gateway.state import GatewayState
from topstepx.contracts import ContractNotFound
from topstepx.errors import ApiError, OutcomeUnknown

log = logging.getLogger("gateway")


class Commands(GatewayState):
    """The command handlers served on the bus (`command_handlers`)."""

    def command_handlers(self) -> dict[str, Any]:
        return {"submit": self.cmd_submit, "cancel": self.cmd_cancel, "modify": self.cmd_modify,
                "cancel_all": self.cmd_cancel_all, "flatten": self.cmd_flatten,
                "orders": self.cmd_orders, "positions": self.cmd_positions,
                "account": self.cmd_account, "halt": self.cmd_halt, "resume": self.cmd_resume,
                "risk": self.cmd_risk}

    async def cmd_submit(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        self.counters["submits"] += 1
        if not self.ready:
            self.counters["not_ready"] += 1
            return {"status": "not_ready", "client_id": args.get("client_id"),
                    "message": "the gateway is reconciling with the venue; try again shortly"}
        owner = owner_of(sender)
        try:
            req = parse_submit(args, owner, max_client_id=self.s.gateway_max_client_id,
                               min_bracket_ticks=self.s.gateway_min_bracket_ticks)
        except Invalid as exc:
            return self._rejected(args.get("client_id"), exc.rule, str(exc), "rejected_invalid")
        cid = req.client_id
        if cid in self.intents or cid in self._reserved:
            old = self.intents.get(cid, {})
            return self._rejected(cid, "duplicate", f"client id {cid} was already used"
                                  + (f" (order {old['order_id']})" if old.get("order_id")
                                     else ""), "rejected_duplicate",
                                  order_id=old.get("order_id"))
        self._reserved.add(cid)
        try:
            try:
                contract = await self.resolver.resolve(req.contract)
            except ContractNotFound as exc:
                return self._rejected(cid, "invalid", f"unknown contract: {exc}",
                                      "rejected_invalid")
            spec = self._spec(contract)
            if contract.active_contract is False:   # the gate refuses a month not the front
                self.risk.gate.inactive.add(contract.id)
            net = self.book.venue.get(contract.id)
            try:
                intent = build_intent(req, owner, contract.id, spec.symbol, spec.tick_size,
                                      spec.tick_value, net.qty if net else 0, self.clock.now_ms())
            except Invalid as exc:
                return self._rejected(cid, exc.rule, str(exc), "rejected_invalid")
            await self._await_marks(intent)     # a price for what is held, if one is coming
            verdict = self.gate.check(intent, self.view())
            self.risk.save_soon()
            if not verdict.permits(intent):
                rule = verdict.rule or "risk"
                reason = verdict.reason or "refused by the risk gate"
                self._risk_event("reject", reason, rule, owner, cid)
                return self._rejected(cid, rule, reason, "rejected_gate")
            # Counted as working by the next check until the venue's order exists.
            self._inflight[cid] = intent
            trail_price = None
            if intent.order_type == "trailing_stop":
                last = await self._last_price(contract.id)
                if last is None:
                    return self._rejected(cid, "invalid", f"no last price for {spec.symbol}: "
                                          "a trailing stop needs one", "rejected_invalid")
                off = (intent.trail_ticks or 0) * spec.tick_size
                trail_price = round(last - off if intent.side == SELL else last + off, 10)
            rec = self._new_intent(cid, owner, contract.id, intent.side, intent.size,
                                   intent.order_type, limit_price=intent.limit_price,
                                   stop_price=intent.stop_price, trail_ticks=intent.trail_ticks,
                                   sl_ticks=intent.sl_ticks, tp_ticks=intent.tp_ticks)
            return await self._send(rec, trail_price)
        finally:
            self._reserved.discard(cid)
            self._inflight.pop(cid, None)

    async def cmd_cancel(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self._find(args)
            self._may_touch(row, sender)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        return await self._cancel(row)

    async def cmd_modify(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "message": "the gateway is reconciling"}
        try:
            row = self._find(args)
            self._may_touch(row, sender)
            spec = self._spec_of(row["contract"])
            size = args.get("size", row["size"])
            if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
                raise Invalid(f"size must be a whole number > 0, got {size!r}")
            prices = {}
            for key in ("limit_price", "stop_price"):
                v = args.get(key)
                if v is not None:
                    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
                        raise Invalid(f"{key} must be a positive number")
                    if spec.tick_size and abs(v / spec.tick_size - round(v / spec.tick_size)) \
                            > 1e-6:
                        raise Invalid(f"{key} {v} is not on the tick grid ({spec.tick_size})")
                    prices[key] = float(v)
        except Invalid as exc:
            self.counters["rejected_invalid"] += 1
            return {"status": "rejected", "order_id": args.get("order_id"), "message": str(exc)}
        intent = Intent(client_id=row["client_id"] or str(row["order_id"]), owner=row["owner"],
                        contract=row["contract"], symbol=spec.symbol, tick_size=spec.tick_size,
                        tick_value=spec.tick_value, side=row["side"], size=size,
                        order_type=TYPE_NAME.get(row["order_type"], "unknown"),
                        limit_price=prices.get("limit_price", row["limit_price"]),
                        stop_price=prices.get("stop_price", row["stop_price"]),
                        kind="modify", order_id=row["order_id"], ts=self.clock.now_ms(),
                        protective=row.get("parent_id") is not None)
        await self._await_marks(intent)
        verdict = self.gate.check(intent, self.view())
        if not verdict.permits(intent):
            self._risk_event("reject", verdict.reason, verdict.rule, row["owner"],
                             row["client_id"])
            return {"status": "rejected", "order_id": row["order_id"], "rule": verdict.rule,
                    "message": verdict.reason}
        self.counters["modifies"] += 1
        try:
            await self.client.modify_order(self.account.id, row["order_id"],
                                           size=size if "size" in args else None,
                                           limit_price=prices.get("limit_price"),
                                           stop_price=prices.get("stop_price"))
        except ApiError as exc:
            return {"status": "rejected", "order_id": row["order_id"], "code": exc.code,
                    "message": exc.message or f"errorCode {exc.code}"}
        except OutcomeUnknown as exc:
            asyncio.ensure_future(self._safe_reconcile())
            return {"status": "unknown", "order_id": row["order_id"], "message": str(exc)}
        return {"status": "modified", "order_id": row["order_id"],
                "message": f"order {row['order_id']} modified"}

    async def cmd_cancel_all(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "cancelled": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "cancelled": [], "message": str(exc)}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        return await self._cancel_many(self._working(contract, owner))

    async def cmd_flatten(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        if not self.ready:
            return {"status": "not_ready", "orders": [], "message": "reconciling"}
        try:
            contract = await self._contract_arg(args)
        except Invalid as exc:
            return {"status": "rejected", "orders": [], "message": str(exc)}
        if contract is None and args.get("all") is not True:
            return {"status": "rejected", "orders": [],
                    "message": "flatten needs a contract or all: true"}
        owner = owner_of(sender) if sender.startswith("strategy-") else args.get("owner")
        return await self.flatten(contract, owner if isinstance(owner, str) else None)

    async def cmd_orders(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        open_only = args.get("open_only", True) is not False
        rows = [r for r in self.orders.values()
                if (owner is None or r["owner"] == owner)
                and (not open_only or r["state"] not in TERMINAL)]
        rows.sort(key=lambda r: (r.get("created_ms") or 0, r["order_id"]))
        return {"orders": [self._order_msg(r).body() for r in rows], "ready": self.ready}

    async def cmd_positions(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        owner = args.get("owner")
        return {"positions": [self._position_msg(p.contract, p.owner).body()
                              for p in self.book.positions(owner)], "ready": self.ready}

    async def cmd_account(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = self._account_msg().body()
        out.update(account_id=self.account.id, ready=self.ready,
                   trading_state=self.trading_state)
        return out

    async def cmd_halt(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = await self.risk.halt(args, sender)
        self._run_gate()
        return out

    async def cmd_resume(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        out = await self.risk.resume(args, sender, self.view())
        self._run_gate()
        return out

    async def cmd_risk(self, args: dict[str, Any], sender: str) -> dict[str, Any]:
        return await self.risk.risk(args, sender, self.view())

    def _find(self, args: dict[str, Any]) -> dict[str, Any]:
        oid = args.get("order_id")
        cid = args.get("client_id")
        if isinstance(oid, int) and not isinstance(oid, bool):
            row = self.orders.get(oid)
            if row is None:
                raise Invalid(f"order {oid} is not known on account {self.account.id}")
            return row
        if isinstance(cid, str):
            rec = self.intents.get(cid)
            if rec is None or not rec.get("order_id") or rec["order_id"] not in self.orders:
                raise Invalid(f"no venue order for client id {cid}")
            return self.orders[rec["order_id"]]
        raise Invalid("order_id (int) or client_id (str) is required")

    def _may_touch(self, row: dict[str, Any], sender: str) -> None:
        owner = owner_of(sender)
        if sender.startswith("strategy-") and row["owner"] != owner:
            raise Invalid(f"order {row['order_id']} belongs to {row['owner']}, not {owner}")

    async def _contract_arg(self, args: dict[str, Any]) -> str | None:
        text = args.get("contract")
        if text is None:
            return None
        if not isinstance(text, str):
            raise Invalid("contract must be a string")
        try:
            return (await self.resolver.resolve(text)).id
        except ContractNotFound as exc:
            raise Invalid(f"unknown contract: {exc}") from None
