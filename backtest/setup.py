"""What one backtest runs: the strategy (an instance of strategies.toml, or a class path with its
config's defaults), its parameters, the program's numbers and the fill rules. Every mistake is
one `SetupError` line (exit 2): an unknown instance, class or parameter, a bad value."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trading.referee.rules import Program, resolve
from trading.risk.programs import ACCOUNT_SIZES
from trading.strategy.config_file import LoadError, field_error, load_class, parse_instances
from trading.strategy.instance import Instance


class SetupError(Exception):
    """A mistake on the command line or in strategies.toml (exit 2)."""


@dataclass(frozen=True)
class Setup:
    instance: Instance
    strategy_cls: type
    config: BaseModel
    program: Program
    target: float
    params: dict[str, Any] = field(default_factory=dict)   # as given on the command line


def program_of(name: str, size: str) -> tuple[Program, float]:
    """The referee's Program of a fresh account, and the Combine's profit target."""
    try:
        spec = ACCOUNT_SIZES[size]
        start = 0.0 if name == "xfa" else spec.starting_balance
        return resolve(name, size, start), spec.profit_target
    except (KeyError, ValueError) as exc:
        raise SetupError(str(exc)) from None


def parse_value(text: str) -> Any:
    """A command-line parameter value: int, float, true/false, else the text."""
    low = text.lower()
    if low in ("true", "false"):
        return low == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def pairs(items: list[str], what: str) -> dict[str, str]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SetupError(f"{what} {item!r}: expected k=v")
        out[key.strip()] = value.strip()
    return out


def instance_of(target: str, strategies_file: Path, contract: str, timeframe: str) -> Instance:
    """An instance name from the file, or a class path (`pkg.mod:Class`, `file.py:Class`)."""
    if ":" in target:
        name = target.rsplit(":", 1)[1]
        name = "".join(ch for ch in name if ch.isalnum() or ch == "_")[:32] or "strategy"
        if not name[0].isalpha():
            name = "s" + name[:31]
        try:
            return Instance.model_validate({"name": name, "class": target,
                                            "contracts": [contract], "timeframes": [timeframe]})
        except ValidationError as exc:
            raise SetupError(str(field_error("command line", name, exc))) from None
    try:
        text = strategies_file.read_text()
    except OSError as exc:
        raise SetupError(f"{strategies_file}: {exc.strerror} (STRATEGIES_FILE)") from None
    try:
        instances = parse_instances(text, strategies_file)
    except LoadError as exc:
        raise SetupError(str(exc)) from None
    if target not in instances:
        known = ", ".join(sorted(instances)) or "none"
        raise SetupError(f"unknown instance {target!r} in {strategies_file} (instances: {known}; "
                         "or give a class as package.module:Class)")
    return instances[target]


def build(inst: Instance, base: Path, where: Path, params: dict[str, Any], program: str,
          size: str) -> Setup:
    """Import the class, check the parameters (the instance's, overridden by `params`)."""
    try:
        cls = load_class(inst, base, where)
    except LoadError as exc:
        raise SetupError(str(exc)) from None
    merged = {**inst.params, **params}
    config_cls = getattr(cls, "Config")
    try:
        config = config_cls.model_validate(merged)
    except ValidationError as exc:
        raise SetupError(str(field_error(where, inst.name, exc, prefix="params."))) from None
    prog, target = program_of(program, size)
    final = inst.model_copy(update={"params": merged})
    return Setup(final, cls, config, prog, target, params)
