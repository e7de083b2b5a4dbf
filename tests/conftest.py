"""Fixtures shared by unit and integration tests."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from tests import schedule
from tests.support import START_TIMEOUT, Procs, free_port

# No pydantic plugin is installed in the test environment, yet pydantic looks for one (its entry
# points, a scan of every installed distribution's metadata) in each process that builds a model:
# ~25 ms of CPU in every process a test starts, which inherit this. A value set by hand is kept.
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

# pytest keeps the test modules it rewrites (assertion rewriting) as .pyc files beside them, but
# only while bytecode may be written: with PYTHONDONTWRITEBYTECODE=1 every pytest process (the
# serial phase and each xdist worker) rewrote every test module again as it collected: ~4 s of
# CPU each. This process may write them (scripts/test byte-compiles tests/ anyway); the children
# a test starts keep the environment's setting.
sys.dont_write_bytecode = False


def pytest_configure(config: pytest.Config) -> None:
    schedule.configure(config)


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    items[:] = schedule.longest_first(items, schedule.known_durations())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture
def bus_env(tmp_path: Path) -> dict[str, str]:
    """Environment for processes of one test: its own bus ports, run dir and database."""
    return {
        "BUS_PUBLISH_ADDR": f"tcp://127.0.0.1:{free_port()}",
        "BUS_SUBSCRIBE_ADDR": f"tcp://127.0.0.1:{free_port()}",
        "RUN_DIR": str(tmp_path / "run"),
        "DATABASE_PATH": str(tmp_path / "market.db"),
        "HEARTBEAT_INTERVAL": "0.2",
        "SIM_PORT": str(free_port()),
        "METRICS_PORT": str(free_port()),
        "WEB_PORT": str(free_port()),
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def procs(request: pytest.FixtureRequest, tmp_path: Path, bus_env: dict[str, str]) -> Iterator[Procs]:
    """Start real child processes; all are stopped at the end, logs printed on failure."""
    p = Procs(tmp_path, bus_env)
    yield p
    p.cleanup()
    rep = getattr(request.node, "rep_call", None)
    if rep is not None and rep.failed:
        print(p.dump_logs())


@pytest.fixture
def broker(procs: Procs):  # type: ignore[no-untyped-def]
    """A real broker process on this test's ports."""
    return procs.spawn(["-m", "broker"], name="broker")


@pytest.fixture
async def bus(broker, bus_env: dict[str, str]) -> AsyncIterator["object"]:  # type: ignore[no-untyped-def]
    """A bus client in the test process, proven connected through the real broker."""
    from chillly.bus import Bus

    b = Bus(bus_env["BUS_PUBLISH_ADDR"], bus_env["BUS_SUBSCRIBE_ADDR"], "test")
    await b.ready(timeout=START_TIMEOUT)
    yield b
    await b.close()
