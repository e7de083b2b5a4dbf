"""The trader's buttons: halt, resume, flatten (one contract or all), cancel (one order).

Each goes to the gateway through `chillly.oneshot.ask`, with the arguments the CLI tools send
(`chillly halt|resume|flatten|cancel`), so the page acts as the trader by the same path as the
command line. Who may press them is decided before this (web/guard.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chillly.oneshot import ask
from chillly.settings import Settings

#: the statuses each command's CLI counts as done (exit 0)
_DONE = {"flatten": ("done",), "cancel": ("cancelled",)}


class BadAction(ValueError):
    """A request the page should never send: unknown action, missing or malformed argument."""


@dataclass(frozen=True)
class Outcome:
    ok: bool
    message: str
    result: Any = None


def command(name: str, body: dict[str, Any]) -> dict[str, Any]:
    """The gateway command's arguments for a page action, as the CLI builds them."""
    if name == "halt":
        reason = body.get("reason")
        return {"reason": str(reason)[:200] if reason else "halted from the page"}
    if name == "resume":
        return {}
    if name == "flatten":
        if body.get("all") is True:
            return {"all": True}
        contract = body.get("contract")
        if not isinstance(contract, str) or not contract.strip():
            raise BadAction("flatten needs a contract or all: true")
        return {"contract": contract.strip()}
    if name == "cancel":
        oid = body.get("order_id")
        if isinstance(oid, bool) or not isinstance(oid, int):
            raise BadAction("cancel needs an order_id (a whole number)")
        return {"order_id": oid}
    raise BadAction(f"unknown action {name!r}")


async def act(name: str, body: dict[str, Any], settings: Settings) -> Outcome:
    """Run one action; the outcome the CLI would print."""
    args = command(name, body)
    ok, result, error = await ask("gateway", name, args, tool=name, timeout=12.0,
                                  settings=settings)
    if not ok:
        return Outcome(False, error or "refused")
    done = _DONE.get(name)
    if done is None:     # halt / resume answer {"state", "reason"}
        return Outcome(True, f"{result['state']}: {result['reason']}", result)
    status = result.get("status")
    return Outcome(status in done, str(result.get("message") or status), result)
