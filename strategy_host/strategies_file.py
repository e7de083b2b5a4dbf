"""strategies.toml from disk: the host's and the programs writer's way to the instances.

The parsing is the trading core's (trading/strategy/config_file.py, shared with a backtest);
here are the file reading and `code_paths`, which the sandbox needs to let the host read the
strategy's code.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from trading.strategy.config_file import LoadError, parse_instances
from trading.strategy.instance import Instance


def read_file(path: Path) -> dict[str, Instance]:
    """Every instance of the file, checked (not the classes). Raises LoadError."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file (STRATEGIES_FILE)") from None
    return parse_instances(text, path)


def read_instance(path: Path, name: str) -> Instance:
    instances = read_file(path)
    if name not in instances:
        raise LoadError(f"{path}: no instance [strategies.{name}]")
    return instances[name]


def code_paths(inst: Instance, base: Path) -> list[Path]:
    """Where the strategy's code lives, found without importing it (the sandbox lets the
    host read these)."""
    target = inst.class_.rsplit(":", 1)[0]
    if target.endswith(".py"):
        return [(base / target).resolve().parent]
    top = target.split(".")[0]
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return []
    if spec is None:
        return []
    if spec.submodule_search_locations:
        return [Path(p).resolve() for p in spec.submodule_search_locations]
    return [Path(spec.origin).resolve()] if spec.origin else []
