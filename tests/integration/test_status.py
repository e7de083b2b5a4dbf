"""`chillly status` and `chillly metrics` against real processes on a real broker.

Programs are test peers (real CHILLLY processes) named as a supervisord.conf written here
expects them; two peers share one name (issue 8 defect 19: two pids under one name), one is
missing, one raises an alarm before status starts listening (the heartbeat carries it).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import PYTHON, ROOT, START_TIMEOUT, Procs, aeventually


def write_conf(tmp: Path, programs: list[str], included: list[str]) -> Path:
    (tmp / "run" / "strategies").mkdir(parents=True, exist_ok=True)
    text = "[supervisord]\n" + "".join(f"[program:{p}]\ncommand=x\n"
                                        for p in ["broker", *programs])
    text += "[include]\nfiles = run/strategies/*.conf\n"
    for p in included:
        (tmp / "run" / "strategies" / f"{p}.conf").write_text(f"[program:{p}]\ncommand=x\n")
    conf = tmp / "supervisord.conf"
    conf.write_text(text)
    return conf


def peer(procs: Procs, name: str, alarm: str = "") -> None:
    procs.spawn(["-m", "tests.integration.peer"], name=name, env={
        "PEER_MODE": "serve", "PEER_NAME": name, "PEER_SERVICE": f"svc-{name}",
        "PEER_ALARM": alarm})


def status(env: dict[str, str], conf: Path, *extra: str) -> tuple[int, str]:
    import os
    out = subprocess.run([PYTHON, "-m", "chillly.cli", "status", "--conf", str(conf), *extra],
                         cwd=str(ROOT), env={**os.environ, **env}, capture_output=True,
                         text=True, timeout=60)
    return out.returncode, out.stdout + out.stderr


def programs(env: dict[str, str], conf: Path) -> tuple[int, dict]:  # type: ignore[type-arg]
    rc, out = status(env, conf, "--json")
    doc = json.loads(out.splitlines()[-1])
    return rc, {p["name"]: p for p in doc["programs"]}


async def test_status_marks_missing_doubled_alarmed_and_exits_by_health(
        procs: Procs, broker, bus_env: dict[str, str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = write_conf(tmp_path, ["alpha", "beta", "gamma"], ["strategy-x"])
    peer(procs, "alpha")
    peer(procs, "alpha")
    peer(procs, "beta")
    await aeventually(lambda: sum("READY" in p.log() for p in procs.children) == 3, START_TIMEOUT,
                      what="peers ready")
    rc, rows = programs(bus_env, conf)
    assert rc == 1
    assert set(rows) == {"broker", "alpha", "beta", "gamma", "strategy-x"}
    assert rows["beta"]["healthy"] and rows["beta"]["state"] == "RUNNING"
    assert rows["beta"]["age_s"] < 0.5 and "published" in rows["beta"]["counters"]
    assert rows["gamma"]["state"] == "MISSING" and not rows["gamma"]["healthy"]
    assert rows["strategy-x"]["state"] == "MISSING"   # from the [include]d file
    alphas = {p.pid for p in procs.children if p.name == "alpha"}
    assert not rows["alpha"]["healthy"]
    assert {rows["alpha"]["pid"], *rows["alpha"]["duplicates"]} == alphas
    assert rows["alpha"]["problems"][0].startswith("duplicate: 2 instances")

    # One alpha goes, gamma comes with an alarm raised before status listens, strategy-x is
    # no longer deployed: only the alarm is left wrong.
    next(p for p in procs.children if p.name == "alpha").kill()
    (tmp_path / "run" / "strategies" / "strategy-x.conf").unlink()
    peer(procs, "gamma", alarm="disk_full")
    await aeventually(lambda: "READY" in procs.children[-1].log(), START_TIMEOUT,
                      what="gamma ready")
    rc, rows = programs(bus_env, conf)
    assert rc == 1 and set(rows) == {"broker", "alpha", "beta", "gamma"}
    assert rows["alpha"]["healthy"] and rows["beta"]["healthy"]
    assert rows["gamma"]["alarms"] == {"disk_full": "raised by the test peer"}
    assert rows["gamma"]["problems"] == ["alarm: disk_full"]

    # The table, and exit 0 when every expected program is well.
    conf = write_conf(tmp_path, ["alpha", "beta"], [])
    procs.children[-1].terminate()
    rc, out = status(bus_env, conf)
    assert rc == 0, out
    assert "all healthy" in out and "alpha" in out and "RUNNING" in out
    rc, out = status(bus_env, write_conf(tmp_path, ["alpha", "beta", "gamma"], []))
    assert rc == 1 and "UNHEALTHY: gamma" in out


async def test_status_without_a_broker_exits_1(bus_env: dict[str, str], tmp_path: Path) -> None:
    rc, out = status(bus_env, write_conf(tmp_path, ["alpha"], []))
    assert rc == 1 and "no broker" in out


async def test_metrics_serves_prometheus_text(procs: Procs, broker, bus_env: dict[str, str],
                                              tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    conf = write_conf(tmp_path, ["alpha", "beta", "metrics"], [])
    peer(procs, "alpha", alarm="stale_feed")
    peer(procs, "alpha")
    peer(procs, "beta")
    procs.chillly("metrics", env={"SUPERVISOR_CONF": str(conf)})
    url = f"http://127.0.0.1:{bus_env['METRICS_PORT']}/metrics"

    async def scrape() -> dict | None:  # type: ignore[type-arg]
        try:
            async with httpx.AsyncClient(verify=False) as client:  # http: no CAs
                text = (await client.get(url, timeout=2)).text
        except httpx.HTTPError:
            return None
        samples = {}
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
        ok = samples.get(("chillly_up", (("process", "metrics"),)))
        both = samples.get(("chillly_instances", (("process", "alpha"),))) == 2
        return samples if ok == 1 and both else None

    m = await aeventually(scrape, 30, interval=0.2, what="metrics scraped with every peer")
    assert m[("chillly_up", (("process", "beta"),))] == 1
    assert m[("chillly_healthy", (("process", "beta"),))] == 1
    assert m[("chillly_healthy", (("process", "alpha"),))] == 0       # two pids
    assert m[("chillly_state", (("process", "beta"), ("state", "RUNNING")))] == 1
    assert m[("chillly_alarm_active", (("code", "stale_feed"), ("process", "alpha")))] == 1
    assert m[("chillly_counter", (("counter", "published"), ("process", "beta")))] >= 1
    assert m[("chillly_heartbeat_age_seconds", (("process", "beta"),))] < 1
    assert m[("chillly_all_healthy", ())] == 0

    # Fixed: one alpha without the alarm left; the missing-and-expected check is live too.
    next(p for p in procs.children if p.name == "alpha").kill()

    async def all_ok() -> bool:
        try:
            async with httpx.AsyncClient(verify=False) as client:  # http: no CAs
                text = (await client.get(url, timeout=2)).text
        except httpx.HTTPError:
            return False
        return "chillly_all_healthy 1.0" in text

    await aeventually(all_ok, 30, interval=0.2, what="all healthy once alpha is single")
    assert (ROOT / "supervisord.conf").read_text().count("[program:metrics]") == 1
