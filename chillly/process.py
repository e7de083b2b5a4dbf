"""One lifecycle for every CHILLLY process (READY -> STARTING -> RUNNING -> STOPPING -> STOPPED,
or FAULTED), after NautilusTrader's component state table and circus's single stop path.

SIGTERM and SIGINT only set the stop event, so every way of stopping goes through the same
code: cancel the main work, let `on_stop` flush and persist, publish a last heartbeat, close the
bus with linger 0, exit 0, all within `STOP_BUDGET` seconds. A process whose `run` raises is
FAULTED and exits 1 (supervisord restarts it).
"""

from __future__ import annotations

import asyncio
import ctypes
import enum
import logging
import os
import signal
import sys
import time
from typing import Any, ClassVar

from chillly.bus import Bus
from chillly import topics
from chillly.clock import Clock, clock_from_settings
from chillly.errors import StartupError
from chillly.logs import setup_logging
from chillly.messages import Alarm, Heartbeat
from chillly.periodic import every
from chillly.settings import Settings, load_settings

STOP_BUDGET = 1.8  # seconds: the issue asks for a clean exit within 2 s of SIGTERM

log = logging.getLogger("process")


class State(str, enum.Enum):
    READY = "READY"
    STARTING = "STARTING"
    RUNNING = "RUNNING"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    FAULTED = "FAULTED"


class Service:
    """Base of every process. Override the hooks; the lifecycle calls them once each.

    - `on_start`: subscribe, open files, restore state. Raising here is a FAULT.
    - `run`: the main work; the default waits for the stop signal. Returning ends the process.
    - `on_stop`: flush and persist. Must finish well inside the stop budget.
    - `counters`: numbers that go into every heartbeat (what was done, what was rejected).
    """

    name: ClassVar[str] = "service"
    settings_cls: ClassVar[type[Settings]] = Settings
    connect_bus: ClassVar[bool] = True

    def __init__(self, settings: Settings, bus: Bus, clock: Clock) -> None:
        self.settings = settings
        self.bus = bus
        self.clock = clock
        self.counters: dict[str, int] = {}
        self.alarms: dict[str, str] = {}  # active alarms, code -> text, in every heartbeat
        self.state = State.READY
        self.started_at = time.monotonic()
        self.stopping = asyncio.Event()

    @property
    def process_name(self) -> str:
        """The name this instance publishes under (overridable per instance, e.g. strategies)."""
        return self.name

    async def on_start(self) -> None:
        pass

    async def run(self) -> None:
        await self.stopping.wait()

    async def on_stop(self) -> None:
        pass

    def heartbeat(self) -> Heartbeat:
        counters: dict[str, Any] = {**self.bus.counters, **self.counters}
        return Heartbeat(
            name=self.process_name, pid=os.getpid(), state=self.state.value,
            uptime_ms=int((time.monotonic() - self.started_at) * 1000), counters=counters,
            alarms=dict(self.alarms),
        )

    def alarm(self, code: str, active: bool, text: str = "") -> None:
        """Raise or clear an alarm: published once on `alarm.<name>.` when it changes, and
        carried in every heartbeat while active, so `chillly status` sees an alarm raised before
        it started listening."""
        if active == (code in self.alarms) and (not active or self.alarms[code] == text):
            return
        if active:
            self.alarms[code] = text
        else:
            self.alarms.pop(code, None)
        self.bus.publish(topics.alarm(self.process_name),
                         Alarm(name=self.process_name, code=code, active=active, text=text))

    def publish_heartbeat(self) -> None:
        self.bus.publish(topics.heartbeat(self.process_name), self.heartbeat())


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (issue 8, defect 8).

    Without it, a program whose supervisord is SIGKILLed keeps running with parent 1, and the
    next supervisord starts a second one beside it. The signal goes through the normal stop
    path (SIGTERM), so an orphan still flushes and exits cleanly. A parent that died before the
    call cannot signal any more: that shows as a changed parent pid, and then the signal is
    sent at once. Linux only (prctl); elsewhere a no-op returning False.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # the parent died between our start and the prctl
        os.kill(os.getpid(), sig)
    return True


def install_uvloop() -> None:
    try:
        import uvloop
    except ImportError:  # optional: plain asyncio works, only slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run_service(cls: type[Service], **overrides: Any) -> int:
    """Entry point of a process: parent-death signal, settings (exit 2 if bad), logging,
    uvloop, lifecycle."""
    die_with_parent()
    settings = load_settings(cls.settings_cls, **overrides)
    return run_with_settings(cls, settings)


def run_with_settings(cls: type[Service], settings: Settings) -> int:
    die_with_parent()
    setup_logging(getattr(settings, "process_name", None) or cls.name, settings.log_level)
    install_uvloop()
    return asyncio.run(_lifecycle(cls, settings))


async def _lifecycle(cls: type[Service], settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    clock = clock_from_settings(settings)
    try:
        bus = Bus.from_settings(settings, getattr(settings, "process_name", None) or cls.name,
                                clock=clock)
    except StartupError as exc:
        print(f"chillly {cls.name}: {exc}", file=sys.stderr, flush=True)
        return 2
    svc = cls(settings, bus, clock)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, svc.stopping.set)
    exit_code = 0
    svc.state = State.STARTING
    log.info("starting (pid %d)", os.getpid())
    hb_task: asyncio.Task[None] | None = None
    run_task: asyncio.Task[None] | None = None
    try:
        bus.start()
        await svc.on_start()
        svc.state = State.RUNNING
        log.info("running")
        hb_task = loop.create_task(every(settings.heartbeat_interval, svc.publish_heartbeat))
        run_task = loop.create_task(svc.run())
        stop_task = loop.create_task(svc.stopping.wait())
        done, _ = await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        stop_task.cancel()
        if run_task in done and run_task.exception() is not None:
            raise run_task.exception()  # type: ignore[misc]
    except StartupError as exc:
        print(f"chillly {bus.name}: {exc}", file=sys.stderr, flush=True)
        log.error("cannot start: %s", exc)
        svc.state = State.FAULTED
        exit_code = 2
    except Exception:
        log.exception("fault")
        svc.state = State.FAULTED
        exit_code = 1
    stop_started = loop.time()
    if svc.state is not State.FAULTED:
        svc.state = State.STOPPING
    log.info("stopping")
    for task in (run_task, hb_task):
        if task is not None and not task.done():
            task.cancel()
            try:
                await asyncio.wait_for(task, 0.5)
            except (asyncio.CancelledError, asyncio.TimeoutError, Exception):
                pass
    try:
        remaining = STOP_BUDGET - (loop.time() - stop_started) - 0.2
        await asyncio.wait_for(svc.on_stop(), max(0.1, remaining))
    except asyncio.TimeoutError:
        log.error("on_stop overran the stop budget")
        exit_code = exit_code or 1
    except Exception:
        log.exception("on_stop failed")
        exit_code = exit_code or 1
    if svc.state is not State.FAULTED:
        svc.state = State.STOPPED
    try:
        svc.publish_heartbeat()
    except Exception:
        pass
    await bus.close()
    log.info("stopped (%s)", svc.state.value)
    return exit_code
