"""One lifecycle for every CHILLLY process (READY -> STARTING -> RUNNING -> STOPPING -> STOPPED,
or FAULTED), after NautilusTrader's component state table and circus's single stop path.

SIGTERM and SIGINT only set the stop event, so every way of stopping goes through the same
code: cancel the main work, let `on_stop` flush and persist, publish a last heartbeat, close the
bus with linger 0, exit 0, all within `STOP_BUDGET` seconds, whatever the state: `on_start` and
`run` are both raced against the stop event, so a start stuck waiting for the broker or in a
warm-up is cancelled too. A process whose `on_start` or `run` raises, or whose bus receive loop
dies (it would hear nothing while still heartbeating), is FAULTED and exits 1 (supervisord
restarts it); a `StartupError` (bad configuration, a single-writer lock held) exits 2.
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
from concurrent.futures import Future, ThreadPoolExecutor
from collections.abc import Callable
from typing import Any, ClassVar

import chillly
from chillly.bus import Bus, BusNotReady
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
    - `on_stop`: flush and persist. Must finish well inside the stop budget. It also runs
      after an `on_start` cut short by SIGTERM, so it must cope with a half-done start.
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

    @classmethod
    def make_bus(cls, settings: Settings, name: str, clock: Clock) -> Bus:
        """This process's bus client, as configured. A strategy host's sandboxed side has no
        bus socket and overrides it with a pipe to its trusted parent (strategy_host/pipe.py)."""
        return Bus.from_settings(settings, name, clock=clock)

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

    async def alarm_while(self, problem: Callable[[], str | None], code: str,
                          interval: float = 5.0) -> None:
        """Keep alarm `code` raised, with `problem()`'s text, for as long as `problem()` says
        something is wrong; clear it and return once it says None. For conditions that a
        process can live with but an operator must see (a reader whose database is missing)."""
        text = problem()
        while text is not None:
            log.warning("%s", text)
            self.alarm(code, True, text)
            await asyncio.sleep(interval)
            text = problem()
        self.alarm(code, False)

    def publish_heartbeat(self) -> None:
        self.bus.publish(topics.heartbeat(self.process_name), self.heartbeat())


_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def die_with_parent(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (issue 8, defect 8).

    Without it, a program whose supervisord is SIGKILLed keeps running with parent 1, and the
    next supervisord starts a second one beside it. The signal goes through the normal stop
    path (SIGTERM), so an orphan still flushes and exits cleanly. A parent that died before the
    call cannot signal any more: that shows as a parent pid other than the one seen when the
    process started (`chillly.PARENT_PID`), and then the signal is sent at once. Linux only
    (prctl); elsewhere a no-op returning False.
    """
    if not sys.platform.startswith("linux"):
        return False
    parent = chillly.PARENT_PID
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
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    executor = _Executor()
    loop.set_default_executor(executor)
    try:
        code = loop.run_until_complete(_lifecycle(cls, settings))
        if not loop.run_until_complete(_drain(loop, executor)):
            # A blocking call (a warm-up read in a worker thread) is still running after the
            # stop path finished: waiting for it would overrun the stop budget and get us
            # SIGKILLed, and everything that matters was flushed by on_stop already.
            log.error("a blocking call did not finish within the stop budget; exiting without it")
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    finally:
        asyncio.set_event_loop(None)
        loop.close()


class _Executor(ThreadPoolExecutor):
    """The loop's default executor, knowing which calls still run: at exit a call stuck in a
    worker thread (a long warm-up read) must not hold the process past its stop budget, and
    asyncio's own executor shutdown would join it without any time limit."""

    def __init__(self) -> None:
        super().__init__(thread_name_prefix="worker")
        self.running: set[Future[Any]] = set()

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        fut = super().submit(fn, *args, **kwargs)
        self.running.add(fut)
        fut.add_done_callback(self.running.discard)
        return fut


async def _drain(loop: asyncio.AbstractEventLoop, executor: _Executor,
                 timeout: float = 0.3) -> bool:
    """What asyncio.run does after its main coroutine, bounded: cancel leftover tasks, close
    async generators, shut the default executor down. False if something would not finish."""
    tasks = [t for t in asyncio.all_tasks(loop) if t is not asyncio.current_task()]
    for task in tasks:
        task.cancel()
    if tasks:
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        if pending:
            return False
    await loop.shutdown_asyncgens()
    executor.shutdown(wait=False, cancel_futures=True)
    deadline = loop.time() + timeout
    while executor.running:
        if loop.time() > deadline:
            return False
        await asyncio.sleep(0.01)
    return True


class BusReceiveDied(RuntimeError):
    """The bus receive loop ended while the process was running: it hears nothing any more."""


async def _until_stopped(coro: Any, stop: asyncio.Task[Any], receiver: asyncio.Task[None],
                         heartbeats: asyncio.Task[None] | None = None) -> bool:
    """Run `coro` (on_start or run) until it returns (True), or until the stop signal comes
    (False): then it is cancelled, so SIGTERM is honoured in every state, a start stuck in
    `bus.ready()` or a warm-up included. A receive loop or heartbeat loop that ends first is a
    fault (raised), not something to sit out."""
    work = asyncio.ensure_future(coro)
    watched = {work, stop, receiver} | ({heartbeats} if heartbeats is not None else set())
    done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
    if work in done:
        work.result()   # its exception, if any, is the process's fault
        return True
    work.cancel()
    # Not wait_for: a task that swallows its cancellation must not hold the stop up.
    await asyncio.wait({work}, timeout=0.5)
    if receiver in done:
        exc = None if receiver.cancelled() else receiver.exception()
        raise BusReceiveDied(f"the bus receive loop died: {exc!r}" if exc
                             else "the bus receive loop ended")
    if heartbeats is not None and heartbeats in done:
        heartbeats.result()
        raise RuntimeError("the heartbeat loop ended")
    return False


async def _lifecycle(cls: type[Service], settings: Settings) -> int:
    loop = asyncio.get_running_loop()
    clock = clock_from_settings(settings)
    if getattr(settings, "bus_backend", "zmq") == "memory":
        # A process of its own would meet nobody: the memory bus joins one process's clients.
        print(f"chillly {cls.name}: BUS_BACKEND=memory joins only the bus clients of one "
              "process; a program of its own needs zmq or redis", file=sys.stderr, flush=True)
        return 2
    try:
        bus = cls.make_bus(settings, getattr(settings, "process_name", None) or cls.name, clock)
    except StartupError as exc:
        print(f"chillly {cls.name}: {exc}", file=sys.stderr, flush=True)
        return 2
    svc = cls(settings, bus, clock)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, svc.stopping.set)
    exit_code = 0
    svc.state = State.STARTING
    log.info("starting (pid %d)", os.getpid())
    stop_task = loop.create_task(svc.stopping.wait())
    hb_task: asyncio.Task[None] | None = None
    try:
        receiver = bus.start()
        if await _until_stopped(svc.on_start(), stop_task, receiver):
            svc.state = State.RUNNING
            log.info("running")
            # Heartbeats once started: `heartbeat` overrides may read what on_start set up.
            hb_task = loop.create_task(every(settings.heartbeat_interval, svc.publish_heartbeat))
            await _until_stopped(svc.run(), stop_task, receiver, hb_task)
        else:
            log.info("stop requested while starting")
    except StartupError as exc:
        print(f"chillly {bus.name}: {exc}", file=sys.stderr, flush=True)
        log.error("cannot start: %s", exc)
        svc.state = State.FAULTED
        exit_code = 2
    except BusNotReady as exc:
        # Not a configuration error: the broker may be restarting. Exit 1, so supervisord
        # starts us again (exit 2 would stop the program for good).
        print(f"chillly {bus.name}: no broker: {exc}", file=sys.stderr, flush=True)
        log.error("no broker: %s", exc)
        svc.state = State.FAULTED
        exit_code = 1
    except BusReceiveDied as exc:
        log.error("fault: %s", exc)
        svc.state = State.FAULTED
        svc.alarm("bus_receive", True, str(exc))
        exit_code = 1
    except Exception:
        log.exception("fault")
        svc.state = State.FAULTED
        exit_code = 1
    finally:
        stop_task.cancel()
    stop_started = loop.time()
    if svc.state is not State.FAULTED:
        svc.state = State.STOPPING
    log.info("stopping")
    if hb_task is not None:
        hb_task.cancel()
        await asyncio.wait({hb_task}, timeout=0.2)
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
