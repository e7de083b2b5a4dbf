"""Helpers for tests and benches that run against a sim process (any helper's tests may use them).

Plain httpx, no project client: wait for the sim to answer, log in, and drive the admin
endpoint (faults, counters). The sim speaks plain http on loopback, so these calls pass
`verify=False`: otherwise httpx builds a verifying TLS context (the CA bundle, ~85 ms of CPU)
for every call it never uses, and wait_ready's polling paid that 20-40 times per sim start. Start the sim itself as a child process (`chillly sim`) with the
environment the test wants (SIM_PORT, CLOCK_SPEED, SIM_ALWAYS_OPEN, SIM_RATE_*, ...).
"""

from __future__ import annotations

import os
import random
import socket
import time
from typing import Any

import httpx


_BELOW_EPHEMERAL = (20_000, 32_768)  # Linux hands out 32768-60999 for outgoing connections
_next_port: list[int] = []          # this process's next candidate (sequential in its slice)


def _port_slice() -> tuple[int, int]:
    """The ports this process picks from: under pytest-xdist each worker has its own slice of
    the range (and the serial phase that scripts/test runs beside them the last one), so two
    workers never hand out the same port (a random pick checked by a bind is
    free only until the child binds it: another worker's test could take it meanwhile)."""
    lo, hi = _BELOW_EPHEMERAL
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1)
    # scripts/test runs the serial phase beside the workers: one more slice, the last, for it.
    slices = int(os.environ.get("CHILLLY_PORT_SLICES") or count)
    if worker.startswith("gw") and slices >= 2:
        k = int(worker[2:]) % slices
    elif slices >= 2:
        k = slices - 1
    else:
        return lo, hi
    size = (hi - lo) // slices
    return lo + k * size, lo + (k + 1) * size


def free_port() -> int:
    """A loopback port nobody listens on, for a child process to bind later.

    Chosen below the kernel's ephemeral range: a port the kernel picked with bind(0) is an
    ephemeral one, and any outgoing connection made before the child binds (an httpx client,
    a ZeroMQ connect) may take it meanwhile ("Address already in use"). Ports are handed out in
    turn from a random start within this process's slice (see _port_slice), so one test never
    gets the same port twice and a port comes round again only after thousands of others."""
    lo, hi = _port_slice()
    if not _next_port or not lo <= _next_port[0] < hi:
        _next_port[:] = [random.randrange(lo, hi)]
    for _ in range(hi - lo):
        port = _next_port[0]
        _next_port[0] = lo + (port + 1 - lo) % (hi - lo)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {lo}..{hi}")


def sim_env(run_dir: object, **extra: str) -> dict[str, str]:
    """Environment for a sim child process on free loopback ports: always open, 3 days of
    history, its own bus ports (no broker needed), plus `extra` (SIM_*, CLOCK_* ...)."""
    return {"SIM_PORT": str(free_port()), "SIM_ALWAYS_OPEN": "1", "SIM_HISTORY_DAYS": "3",
            "BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
            "RUN_DIR": f"{run_dir}/run", "HEARTBEAT_INTERVAL": "1", **extra}


def anchor_for(market_ms: int, speed: float) -> str:
    """CLOCK_ANCHOR that makes market time equal `market_ms` now (market = a + (real - a) * s):
    a sim started with it runs from that moment (any date) at `speed`."""
    from chillly.clock import ms_to_iso

    real = time.time() * 1000
    return ms_to_iso(int((speed * real - market_ms) / (speed - 1)))


def wait_ready(base_url: str, timeout: float = 60.0) -> None:
    """Poll GET /api/Status/ping until the sim answers (fail after `timeout` seconds)."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/api/Status/ping", timeout=1.0, verify=False).status_code == 200:
                return
        except httpx.HTTPError as exc:
            last = exc
        time.sleep(0.05)
    raise AssertionError(f"sim at {base_url} not ready after {timeout}s ({last})")


def login(base_url: str, user: str = "trader", key: str = "key") -> str:
    """A session token from Auth/loginKey."""
    r = httpx.post(f"{base_url}/api/Auth/loginKey", json={"userName": user, "apiKey": key},
                   verify=False)
    r.raise_for_status()
    body = r.json()
    if not body.get("success"):
        raise AssertionError(f"login failed: {body}")
    return str(body["token"])


def set_faults(base_url: str, **changes: Any) -> dict[str, Any]:
    """POST /admin/faults; returns the answer ({"faults": ..., "done": ...})."""
    r = httpx.post(f"{base_url}/admin/faults", json=changes, verify=False)
    r.raise_for_status()
    return dict(r.json())


def clear_faults(base_url: str) -> None:
    set_faults(base_url, rest_fail_rate=0, rest_delay_ms=0, rest_fail_after_rate=0,
               rest_stale_ms=0, release_stale_now=True, rest_fault_paths=None, force_429=False,
               drop_hubs_every_s=0, drop_mode="abrupt", token_lifetime_s=None)


def counters(base_url: str) -> dict[str, Any]:
    """GET /admin/counters: {"counters": {...}, "paths": {...}}."""
    r = httpx.get(f"{base_url}/admin/counters", verify=False)
    r.raise_for_status()
    return dict(r.json())


def reset_counters(base_url: str) -> None:
    httpx.post(f"{base_url}/admin/counters/reset", verify=False).raise_for_status()
