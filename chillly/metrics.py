"""`chillly metrics`: every heartbeat counter, latency and alarm on the bus, served in the
Prometheus text format on a loopback HTTP port (`METRICS_PORT`, default 7120, 127.0.0.1 only).

It keeps the same `HealthView` as `chillly status`, so a dashboard and the command agree on
what is healthy. The exposition is built at scrape time from the last heartbeat of each
program (a custom collector), not kept in prometheus_client's own metric objects: a program
that goes away must stop reporting its counters, not freeze them at their last value.

The HTTP server is prometheus_client's own, in its thread; the bus side stays on the event
loop. One lock guards the view between the two.

Metrics (label `process` = the heartbeat name; docs/operations.md lists them with queries):
    chillly_up, chillly_healthy, chillly_expected, chillly_heartbeat_age_seconds,
    chillly_uptime_seconds, chillly_instances, chillly_state{state},
    chillly_counter{counter}, chillly_alarm_active{code}, chillly_alarms_raised_total{code},
    chillly_all_healthy.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import threading
import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from pydantic import Field

from chillly import topics
from chillly.codec import Envelope
from chillly.errors import StartupError
from chillly.health import STATES, HealthView, expected_programs
from chillly.messages import Alarm, Heartbeat
from chillly.process import Service, run_service
from chillly.status import StatusSettings, find_conf

log = logging.getLogger("metrics")


class MetricsSettings(StatusSettings):
    metrics_port: int = Field(default=7120, ge=1, le=65535)


def flatten(counters: dict[str, Any], prefix: str = "") -> Iterator[tuple[str, float]]:
    """Numeric heartbeat values as (name, value); nested maps (latency figures) as `a.b`."""
    for key, value in counters.items():
        name = f"{prefix}{key}"
        if isinstance(value, bool):
            yield name, float(value)
        elif isinstance(value, (int, float)):
            yield name, float(value)
        elif isinstance(value, dict):
            yield from flatten(value, name + ".")


class HealthCollector:
    """Builds every metric family from the view at scrape time (called in the HTTP thread)."""

    def __init__(self, view: HealthView, lock: threading.Lock, conf_reader: Any = None) -> None:
        self.view = view
        self.lock = lock
        self.conf_reader = conf_reader
        self.scrapes = 0

    def collect(self) -> Iterator[Metric]:
        expected = self.conf_reader() if self.conf_reader else None  # file I/O outside the lock
        with self.lock:
            if expected is not None:
                self.view.expected = expected
            now = time.monotonic()
            rows = self.view.rows(now)
            raised = dict(self.view.alarms_raised)
            self.scrapes += 1
        p = ["process"]
        up = GaugeMetricFamily("chillly_up", "1 if the process heartbeats, fresh, RUNNING", labels=p)
        healthy = GaugeMetricFamily("chillly_healthy", "1 if the process has no problem "
                                    "(missing, stale, duplicate, not running, alarm)", labels=p)
        expected_f = GaugeMetricFamily("chillly_expected", "1 if supervisord.conf starts it",
                                       labels=p)
        age = GaugeMetricFamily("chillly_heartbeat_age_seconds",
                                "real seconds since the last heartbeat", labels=p)
        uptime = GaugeMetricFamily("chillly_uptime_seconds", "uptime in its last heartbeat",
                                   labels=p)
        instances = GaugeMetricFamily("chillly_instances", "live pids heartbeating under the name",
                                      labels=p)
        state = GaugeMetricFamily("chillly_state", "1 for the state of its last heartbeat",
                                  labels=["process", "state"])
        counter = GaugeMetricFamily(
            "chillly_counter", "a heartbeat counter or latency figure as last published (resets "
            "when the process restarts; rate()/increase() handle that)",
            labels=["process", "counter"])
        alarm = GaugeMetricFamily("chillly_alarm_active", "1 while the alarm is raised",
                                  labels=["process", "code"])
        raised_f = CounterMetricFamily("chillly_alarms_raised", "times an alarm was raised since "
                                       "this exporter started", labels=["process", "code"])
        for r in rows:
            inst = r.instance
            up.add_metric([r.name], 1.0 if inst and r.state == "RUNNING" and not any(
                pr.startswith(("stale", "missing")) for pr in r.problems) else 0.0)
            healthy.add_metric([r.name], 1.0 if r.healthy else 0.0)
            expected_f.add_metric([r.name], 1.0 if r.expected else 0.0)
            instances.add_metric([r.name], float(len(r.duplicates) + (1 if inst else 0)))
            for s in (*STATES, "MISSING"):
                state.add_metric([r.name, s], 1.0 if r.state == s else 0.0)
            for code in sorted(r.alarms):
                alarm.add_metric([r.name, code], 1.0)
            if inst is None:
                continue
            age.add_metric([r.name], r.age or 0.0)
            uptime.add_metric([r.name], inst.uptime_ms / 1000)
            for name, value in flatten(inst.counters):
                counter.add_metric([r.name, name], value)
        for (name, code), n in sorted(raised.items()):
            raised_f.add_metric([name, code], float(n))
            if not any(r.name == name and code in r.alarms for r in rows):
                alarm.add_metric([name, code], 0.0)
        all_ok = GaugeMetricFamily("chillly_all_healthy", "1 when `chillly status` would exit 0")
        all_ok.add_metric([], 1.0 if rows and all(r.healthy for r in rows) else 0.0)
        yield from (all_ok, up, healthy, expected_f, age, uptime, instances, state, counter,
                    alarm, raised_f)


class MetricsService(Service):
    """Listens to `hb.` and `alarm.` and serves them on http://127.0.0.1:METRICS_PORT/metrics."""

    name = "metrics"
    settings_cls = MetricsSettings

    async def on_start(self) -> None:
        s: MetricsSettings = self.settings  # type: ignore[assignment]
        self.counters = {"heartbeats": 0, "alarms": 0, "scrapes": 0, "foreign": 0}
        self.lock = threading.Lock()
        conf = find_conf(s.supervisor_conf)
        self.view = HealthView(s.heartbeat_interval, expected_programs(conf))
        self.collector = HealthCollector(self.view, self.lock, lambda: expected_programs(conf))
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)  # type: ignore[arg-type]
        self.bus.on(topics.HEARTBEATS, self._on_heartbeat)
        self.bus.on(topics.ALARMS, self._on_alarm)
        try:
            self.server, self.thread = start_http_server(s.metrics_port, addr="127.0.0.1",
                                                         registry=self.registry)
        except OSError as exc:
            raise StartupError(f"METRICS_PORT {s.metrics_port}: {exc.strerror or exc}") from exc
        log.info("serving http://127.0.0.1:%d/metrics", s.metrics_port)

    def _on_heartbeat(self, env: Envelope) -> None:
        if env.cls is not Heartbeat:   # any type can be sent on any topic
            self.counters["foreign"] += 1
            return
        with self.lock:
            self.view.on_heartbeat(env.payload, time.monotonic())
        self.counters["heartbeats"] += 1
        self.counters["scrapes"] = self.collector.scrapes

    def _on_alarm(self, env: Envelope) -> None:
        if env.cls is not Alarm:
            self.counters["foreign"] += 1
            return
        with self.lock:
            self.view.on_alarm(env.payload, time.monotonic())
        self.counters["alarms"] += 1

    async def on_stop(self) -> None:
        server = getattr(self, "server", None)
        if server is not None:
            await asyncio.to_thread(server.shutdown)
            server.server_close()


def cli(args: argparse.Namespace) -> int:
    return run_service(MetricsService)
