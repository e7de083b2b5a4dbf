"""strategies.toml's text, checked: the instances it defines, a strategy's class and parameters.

Pure parsing of text passed in (the caller reads the file): the strategy host, the supervisord
programs writer and a backtest read the same file the same way, so an instance means one thing
live and in history. Every mistake is one `LoadError` line naming the file, the instance and
the field. One table per instance, `[strategies.NAME]` (the table key is the instance name, so
TOML itself refuses a duplicate); its parameters in `[strategies.NAME.params]` and the risk
gate's limits in `[strategies.NAME.limits]`.

`load_class` imports the strategy's code (`package.module:Class`, or `path/file.py:Class`
relative to the file): the host calls it only once its sandbox is up, a backtest in its own
process; nothing here runs at import.
"""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from trading.strategy.api import Strategy
from trading.strategy.instance import NAME_RE, Instance


class LoadError(Exception):
    """A mistake in strategies.toml or in a strategy's class or parameters (exit code 2)."""


def field_error(source: Any, name: str, exc: ValidationError, prefix: str = "") -> LoadError:
    """The first validation error of instance `name` as one line."""
    err = exc.errors()[0]
    loc = ".".join(str(p) for p in err.get("loc", ()))
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if err.get("type") == "missing":
        msg = "missing"
    elif err.get("type") == "extra_forbidden":
        msg = "unknown field"
    shown = f" (got {err['input']!r})" if err.get("type") not in ("missing",) and \
        not isinstance(err.get("input"), dict) else ""
    return LoadError(f"{source}: [strategies.{name}] {prefix}{loc}: {msg}{shown}")


def parse_instances(text: str, source: Any) -> dict[str, Instance]:
    """Every instance of the file's `text`, checked (not the classes); `source` names the file
    in messages. Raises LoadError."""
    path = source
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = re.search(r"Cannot declare \('strategies', '([^']+)'\) twice", msg)
        if m:
            raise LoadError(f"{path}: [strategies.{m.group(1)}] name: duplicate instance "
                            f"({msg})") from None
        raise LoadError(f"{path}: not valid TOML: {msg}") from None
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
            raise field_error(path, name, exc) from None
    return out


def load_class(inst: Instance, base: Path, path: Any) -> type:
    """Import `package.module:Class` or `path/file.py:Class` (relative to `base`); `path` names
    the file in messages."""
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
        raise LoadError(f"{where}: {spec!r} is not a Strategy subclass (trading.strategy.api)")
    return cls


def validate_params(inst: Instance, cls: type, path: Any) -> BaseModel:
    """The instance's params as the class's typed Config. Raises LoadError."""
    try:
        return cls.Config.model_validate(inst.params)  # type: ignore[attr-defined, no-any-return]
    except ValidationError as exc:
        raise field_error(path, inst.name, exc, prefix="params.") from None
