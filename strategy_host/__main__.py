"""`python -m strategy_host NAME`: the sandboxed child's main, started by the host's trusted
parent (strategy_host/parent.py) with the parent's scrubbed environment, no secret at all, and
one end of a socketpair (its only way out: strategy_host/pipe.py).

Order matters: check strategies.toml, open what the host keeps open (/proc/self/statm for its
RSS), apply the sandbox while this is still the only thread, and only then import the
strategy's code and validate its parameters. A mistake in any of these is one line on stderr
and exit code 2 (which the parent passes on to supervisord).
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

from chillly.logs import setup_logging
from chillly.process import run_with_settings
from chillly.settings import load_settings
from strategy_host import sandbox
from strategy_host.host import Host
from strategy_host.settings import HostSettings
from strategy_host.state import RunMarker
from strategy_host.strategies_file import code_paths, read_instance
from trading.strategy.config_file import LoadError, load_class, validate_params
from trading.strategy.instance import Instance

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("host")


def _read_paths(inst: Instance, base: Path) -> list[Path]:
    """What the host may read: the interpreter and the virtualenv, our three packages (the
    kernel, the trading core, the host), the strategy's code; never the project root itself
    (its .env)."""
    never = {ROOT, base, Path.cwd().resolve()}
    paths = {Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix),
             ROOT / "chillly", ROOT / "trading", ROOT / "strategy_host"}
    for entry in sys.path:
        p = Path(entry or ".").resolve()
        if p not in never and p.exists():
            paths.add(p)
    for p in code_paths(inst, base):
        if p in never or (p.is_dir() and (p / ".env").exists()):
            target = inst.class_.rsplit(":", 1)[0]
            paths.add((base / target).resolve())   # the file alone, not its directory
        else:
            paths.add(p)
    return sorted(paths)


def _preload(inst: Instance, base: Path) -> None:
    """Find (not run) the strategy's top-level package while the project root is readable,
    so that importing it after the sandbox does not need to list the root directory."""
    import importlib.util

    target = inst.class_.rsplit(":", 1)[0]
    if target.endswith(".py"):
        return
    top = target.split(".")[0]
    if top in sys.modules:
        return
    spec = importlib.util.find_spec(top)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        sys.modules[top] = module
        _PENDING.append((spec, module))


_PENDING: list[tuple[object, object]] = []


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    check = argv[:1] == ["--check"]      # load and validate in the sandbox, then stop
    argv = argv[1:] if check else argv
    if len(argv) != 1:
        print("usage: python -m strategy_host [--check] NAME (use `chillly strategy-host "
              "NAME`)", file=sys.stderr)
        return 2
    name = argv[0]
    settings = load_settings(HostSettings, _env_file=None, strategy_name=name,
                             process_name=f"strategy-{name}")
    setup_logging(settings.process_name, settings.log_level)
    path = settings.strategies_file
    try:
        inst = read_instance(path, name)
    except LoadError as exc:
        print(f"chillly strategy-host: {exc}", file=sys.stderr, flush=True)
        return 2
    base = path.resolve().parent
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    try:
        statm: int | None = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        statm = None
    _preload(inst, base)
    plan = sandbox.Plan(
        state_dir=settings.state_dir, read_paths=_read_paths(inst, base),
        bus_ports=[],   # no TCP at all: the bus is the parent's
        memory_mb=settings.strategy_memory_mb, max_files=settings.strategy_max_files,
        max_file_mb=settings.strategy_max_file_mb, user=settings.strategy_user,
        nice=settings.strategy_nice,
        parent_pid=settings.strategy_parent_pid, cgroup=settings.strategy_cgroup,
        require=set(settings.strategy_sandbox_require))
    try:
        report = sandbox.apply(plan)
    except sandbox.SandboxError as exc:
        print(f"chillly strategy-host: {exc}", file=sys.stderr, flush=True)
        return 2
    log.info(report.line())
    sandbox.attempts.install()
    sandbox.attempts.armed = True       # the strategy's module code runs on import
    try:
        for spec, module in _PENDING:
            spec.loader.exec_module(module)  # type: ignore[attr-defined]
        cls = load_class(inst, base, path)
        config = validate_params(inst, cls, path)
    except LoadError as exc:
        print(f"chillly strategy-host: {exc}", file=sys.stderr, flush=True)
        return 2
    except Exception as exc:
        print(f"chillly strategy-host: {path}: [strategies.{name}] class: importing failed: "
              f"{exc!r}", file=sys.stderr, flush=True)
        return 2
    finally:
        sandbox.attempts.armed = False  # until the host's own sockets exist (Host.on_start)
    if check:
        print(f"{path}: [strategies.{name}] {inst.class_}: class and params valid "
              f"({report.line()})", flush=True)
        return 0
    delay = RunMarker(settings.state_dir).start(time.time())
    if delay:
        log.warning("the last run ended uncleanly within a minute: backing off %.0f s", delay)
        time.sleep(delay)
    bound = type("BoundHost", (Host,), {"inst": inst, "strategy_cls": cls, "config": config,
                                        "statm_fd": statm, "sandbox_line": report.line()})
    return run_with_settings(bound, settings)


if __name__ == "__main__":
    sys.exit(main())
