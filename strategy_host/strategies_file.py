"""strategies.toml: the instances to run, checked before anything runs.

One table per instance, `[strategies.NAME]` (the table key is the instance name, so TOML itself
refuses a duplicate); its parameters in `[strategies.NAME.params]` and the risk gate's limits in
`[strategies.NAME.limits]` (the gateway reads those from the same file); the record it makes
of each is `trading.strategy.instance.Instance`. Every mistake is one
`LoadError` line naming the file, the instance and the field, so `chillly strategies sync` and
the host report it the same way.

Importing the strategy's class is separate (`load_class`): the host does it only after its
sandbox is up, the sync tool never runs strategy code at all.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tomllib
from pathlib import Path

from pydantic import BaseModel, ValidationError

from trading.strategy.api import Strategy
from trading.strategy.instance import NAME_RE, Instance


class LoadError(Exception):
    """A mistake in strategies.toml or in a strategy's class or parameters (exit code 2)."""


def _field_error(path: Path, name: str, exc: ValidationError, prefix: str = "") -> LoadError:
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "missing":
        msg = "missing"
    elif err.get("type") == "extra_forbidden":
        msg = "unknown field"
    shown = f" (got {err['input']!r})" if err.get("type") not in ("missing",) and \
        not isinstance(err.get("input"), dict) else ""
    return LoadError(f"{path}: [strategies.{name}] {prefix}{loc}: {msg}{shown}")


def read_file(path: Path) -> dict[str, Instance]:
    """Every instance of the file, checked (not the classes). Raises LoadError."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise LoadError(f"{path}: no such file (STRATEGIES_FILE)") from None
    except tomllib.TOMLDecodeError as exc:
        text = str(exc)
        m = re.search(r"Cannot declare \('strategies', '([^']+)'\) twice", text)
        if m:
            raise LoadError(f"{path}: [strategies.{m.group(1)}] name: duplicate instance "
                            f"({text})") from None
        raise LoadError(f"{path}: not valid TOML: {text}") from None
    extra = sorted(set(raw) - {"strategies"})
    if extra:
        raise LoadError(f"{path}: unknown top-level table {extra[0]!r} (expected [strategies.NAME])")
    tables = raw.get("strategies", {})
    if not isinstance(tables, dict):
        raise LoadError(f"{path}: 'strategies' must be tables [strategies.NAME]")
    out: dict[str, Instance] = {}
    for name, table in tables.items():
        if not NAME_RE.match(name):
            raise LoadError(f"{path}: [strategies.{name}] name: expected a letter then up to 31 "
                            "letters, digits or '_'")
        if not isinstance(table, dict):
            raise LoadError(f"{path}: [strategies.{name}] must be a table")
        table = dict(table)
        for single, plural in (("contract", "contracts"), ("timeframe", "timeframes")):
            if single in table:
                if plural in table:
                    raise LoadError(f"{path}: [strategies.{name}] {single}: give {single} or "
                                    f"{plural}, not both")
                table[plural] = [table.pop(single)]
        try:
            out[name] = Instance(name=name, **table)
        except ValidationError as exc:
            raise _field_error(path, name, exc) from None
    return out


def read_instance(path: Path, name: str) -> Instance:
    instances = read_file(path)
    if name not in instances:
        raise LoadError(f"{path}: no instance [strategies.{name}]")
    return instances[name]


def load_class(inst: Instance, base: Path, path: Path) -> type:
    """Import `package.module:Class` or `path/file.py:Class` (relative to `base`)."""
    spec = inst.class_
    where = f"{path}: [strategies.{inst.name}] class"
    if ":" not in spec:
        raise LoadError(f"{where}: expected 'package.module:Class' or 'path/file.py:Class', "
                        f"got {spec!r}")
    target, cls_name = spec.rsplit(":", 1)
    try:
        if target.endswith(".py"):
            file = (base / target).resolve()
            if not file.is_file():
                raise LoadError(f"{where}: unknown class {spec!r}: no file {file}")
            mod_name = f"_strategy_{inst.name}"
            mspec = importlib.util.spec_from_file_location(mod_name, file)
            assert mspec is not None and mspec.loader is not None
            module = importlib.util.module_from_spec(mspec)
            sys.modules[mod_name] = module
            mspec.loader.exec_module(module)
        else:
            module = importlib.import_module(target)
    except LoadError:
        raise
    except ModuleNotFoundError as exc:
        raise LoadError(f"{where}: unknown class {spec!r}: {exc}") from None
    except Exception as exc:
        raise LoadError(f"{where}: importing {target} failed: {exc!r}") from None
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise LoadError(f"{where}: unknown class {spec!r}: {target} has no {cls_name}")
    if not (isinstance(cls, type) and issubclass(cls, Strategy)):
        raise LoadError(f"{where}: {spec!r} is not a strategy_host.api.Strategy subclass")
    return cls


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


def validate_params(inst: Instance, cls: type, path: Path) -> BaseModel:
    try:
        return cls.Config.model_validate(inst.params)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise _field_error(path, inst.name, exc, prefix="params.") from None
