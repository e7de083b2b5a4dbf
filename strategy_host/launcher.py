"""`chillly strategy-host NAME`: check the instance, then exec the host with a clean environment.

This process reads the full configuration (environment and .env, credentials included), so it
never imports strategy code. It decides whether the instance may trade where the system points
(the sim, or a live account that the instance names explicitly), then replaces itself
(`execve`, same pid, so supervisord still supervises it) with the host's trusted parent,
`python -m strategy_host.parent NAME` (which starts the sandboxed child), whose environment
holds only what a host needs. The bus's CURVE keys, when configured, travel through an
inherited pipe instead of the environment (/proc/<pid>/environ shows no secret), to the parent
only: the child has no bus socket and gets no key.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from chillly.settings import load_settings
from strategy_host.sandbox import scrubbed_env
from strategy_host.settings import HostSettings
from strategy_host.strategies_file import read_instance
from trading.strategy.config_file import LoadError
from trading.strategy.instance import allowed

# Shared settings a host needs, passed on by value (from the environment or .env).
_PASS = ("bus_publish_addr", "bus_subscribe_addr", "bus_hwm", "clock_speed", "heartbeat_interval",
         "log_level", "strategy_memory_mb", "strategy_max_files", "strategy_max_file_mb",
         "strategy_hook_budget_ms", "strategy_hook_kill_s", "strategy_max_errors",
         "strategy_save_interval", "strategy_max_bar_age", "strategy_user", "strategy_nice",
         "strategy_max_procs", "strategy_cpu_weight")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="the instance's name in strategies.toml")
    p.add_argument("--check", action="store_true",
                   help="load the class and validate the parameters in the sandbox, then exit "
                        "(0 fine, 2 the mistake named): what `chillly strategies sync` runs")


def host_env(settings: HostSettings, name: str) -> dict[str, str]:
    keep = {k.upper(): str(getattr(settings, k)) for k in _PASS}
    if settings.clock_anchor is not None:
        keep["CLOCK_ANCHOR"] = settings.clock_anchor.isoformat()
    keep["RUN_DIR"] = str(settings.run_dir.resolve())
    keep["DATABASE_PATH"] = str(settings.database_path.resolve())
    keep["STRATEGIES_FILE"] = str(settings.strategies_file.resolve())
    if settings.strategy_sandbox_require:
        keep["STRATEGY_SANDBOX_REQUIRE"] = ",".join(settings.strategy_sandbox_require)
    account = settings.strategy_account or settings.topstep_account_id
    if account is not None:
        keep["STRATEGY_ACCOUNT"] = str(account)
    keep["STRATEGY_VENUE"] = "live" if settings.uses_live_venue else "sim"
    keep["STRATEGY_PARENT_PID"] = str(os.getppid())
    keep["STRATEGY_STATE_DIR"] = str(settings.state_dir)
    return scrubbed_env(dict(os.environ), keep)


def _secret_pipe(settings: HostSettings) -> int | None:
    secrets = {"bus_curve_server_key": settings.bus_curve_server_key,
               "bus_curve_client_key": settings.bus_curve_client_key,
               "bus_curve_client_secret": settings.bus_curve_client_secret.get_secret_value()
               if settings.bus_curve_client_secret else ""}
    if not any(secrets.values()):
        return None
    r, w = os.pipe()
    os.write(w, json.dumps(secrets).encode())   # a few hundred bytes: fits the pipe buffer
    os.close(w)
    os.set_inheritable(r, True)
    return r


def cli(args: argparse.Namespace) -> int:
    settings = load_settings(HostSettings, strategy_name=args.name)
    path = settings.strategies_file
    try:
        inst = read_instance(path, args.name)
    except LoadError as exc:
        print(f"chillly strategy-host: {exc}", file=sys.stderr, flush=True)
        return 2
    ok, why = allowed(inst, settings.uses_live_venue, settings.topstep_account_id,
                      settings.topstep_account_name)
    if not ok:
        print(f"chillly strategy-host: {path}: [strategies.{inst.name}] run_on: {why}",
              file=sys.stderr, flush=True)
        return 2
    env = host_env(settings, args.name)
    sys.stdout.flush()
    sys.stderr.flush()
    if getattr(args, "check", False):
        # The check needs no bus: the sandboxed child alone loads the class, validates the
        # parameters and stops (no secret pipe: the strategy's module code runs there).
        os.execve(sys.executable, [sys.executable, "-m", "strategy_host", "--check", args.name],
                  env)
    fd = _secret_pipe(settings)
    if fd is not None:
        env["CHILLLY_SECRET_FD"] = str(fd)
    os.execve(sys.executable, [sys.executable, "-m", "strategy_host.parent", args.name], env)
    return 1  # not reached
