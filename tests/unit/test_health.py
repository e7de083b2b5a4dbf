"""HealthView: what counts as healthy, stale, missing and doubled; supervisord.conf parsing."""

from __future__ import annotations

from pathlib import Path

from chillly.health import HealthView, expected_programs

IV = 1.0  # heartbeat interval


def hb(name: str, pid: int, state: str = "RUNNING", **extra: object) -> dict:  # type: ignore[type-arg]
    return {"name": name, "pid": pid, "state": state, "uptime_ms": 1000, "counters": {},
            **extra}


def rows(view: HealthView, now: float) -> dict:  # type: ignore[type-arg]
    return {r.name: r for r in view.rows(now)}


def test_one_fresh_running_instance_is_healthy_and_missing_expected_is_not() -> None:
    view = HealthView(IV, ["store", "gateway"])
    view.on_heartbeat(hb("store", 10), 0.0)
    view.on_heartbeat(hb("store", 10), 1.0)
    r = rows(view, 1.5)
    assert r["store"].healthy and r["store"].age == 0.5
    assert not r["gateway"].healthy and r["gateway"].state == "MISSING"
    assert not view.healthy(1.5)
    assert HealthView(IV, ["store"]).healthy(0.0) is False  # nothing heard: not healthy


def test_stale_after_two_and_a_half_intervals() -> None:
    view = HealthView(IV, ["store"])
    view.on_heartbeat(hb("store", 10), 0.0)
    assert rows(view, 2.4)["store"].healthy
    assert rows(view, 2.6)["store"].problems == ["stale: no heartbeat for 2.6s"]


def test_two_pids_beating_under_one_name_are_a_duplicate() -> None:
    view = HealthView(IV, ["gateway"])
    for t in (0.0, 1.0, 2.0):
        view.on_heartbeat(hb("gateway", 10), t)
        view.on_heartbeat(hb("gateway", 11), t + 0.3)
    r = rows(view, 2.5)["gateway"]
    assert r.duplicates == [10] and r.instance is not None and r.instance.pid == 11
    assert r.problems[0].startswith("duplicate: 2 instances")


def test_a_restart_is_not_a_duplicate() -> None:
    view = HealthView(IV, ["gateway"])
    view.on_heartbeat(hb("gateway", 10), 0.0)   # killed after this beat
    view.on_heartbeat(hb("gateway", 11), 1.2)   # its successor
    view.on_heartbeat(hb("gateway", 11), 2.2)
    r = rows(view, 2.7)["gateway"]
    assert r.healthy and r.duplicates == [] and r.instance is not None and r.instance.pid == 11


def test_faulted_stopped_and_alarms() -> None:
    view = HealthView(IV, ["store", "feed-bars", "gateway"])
    view.on_heartbeat(hb("store", 1, "FAULTED"), 0.0)
    view.on_heartbeat(hb("feed-bars", 2, alarms={"venue_unreachable": "no poll"}), 0.0)
    view.on_heartbeat(hb("gateway", 3, "STOPPED"), 0.0)
    view.on_heartbeat(hb("tool", 4, "STOPPED"), 0.0)  # not expected: a clean stop is fine
    r = rows(view, 0.5)
    assert r["store"].problems == ["faulted"]
    assert r["feed-bars"].alarms == {"venue_unreachable": "no poll"}
    assert r["gateway"].problems == ["stopped"]
    assert r["tool"].healthy
    # An alarm message raises and clears on its own, before or after a heartbeat.
    view.on_alarm({"name": "store", "code": "disk", "active": True, "text": "full"}, 0.6)
    assert r["store"].alarms == {} and rows(view, 0.7)["store"].alarms == {"disk": "full"}
    view.on_alarm({"name": "store", "code": "disk", "active": False, "text": ""}, 0.8)
    assert rows(view, 0.9)["store"].alarms == {}
    assert view.alarms_raised == {("store", "disk"): 1}


def test_expected_programs_reads_includes_and_skips_autostart_false(tmp_path: Path) -> None:
    (tmp_path / "run" / "strategies").mkdir(parents=True)
    (tmp_path / "supervisord.conf").write_text(
        "[supervisord]\nlogfile=%(here)s/run/log/s.log\n"
        "[program:broker]\ncommand=x\n"
        "[program:manual]\ncommand=x\nautostart=false\n"
        "[include]\nfiles = run/strategies/*.conf %(here)s/extra.ini\n")
    (tmp_path / "run" / "strategies" / "b.conf").write_text("[program:strategy-b]\ncommand=x\n")
    (tmp_path / "run" / "strategies" / "a.conf").write_text("[program:strategy-a]\ncommand=x\n")
    (tmp_path / "extra.ini").write_text("[program:metrics]\ncommand=x\n")
    assert expected_programs(tmp_path / "supervisord.conf") == [
        "broker", "strategy-a", "strategy-b", "metrics"]
    assert expected_programs(tmp_path / "absent.conf") == []


def test_the_real_supervisord_conf_expects_every_process() -> None:
    names = expected_programs(Path(__file__).resolve().parents[2] / "supervisord.conf")
    assert {"broker", "sim", "store", "feed-bars", "metrics"} <= set(names)


def test_metrics_collector_and_the_dashboard_use_the_same_names() -> None:
    import json
    import re
    import threading

    from prometheus_client import CollectorRegistry, generate_latest

    from chillly.metrics import HealthCollector

    view = HealthView(IV, ["store", "gateway"])
    view.on_heartbeat(hb("store", 1, counters={"malformed": 3, "lat": {"p99_ms": 2.5}}), 0.0)
    view.on_alarm({"name": "store", "code": "disk", "active": True, "text": ""}, 0.0)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(HealthCollector(view, threading.Lock()))  # type: ignore[arg-type]
    text = generate_latest(reg).decode()
    assert 'chillly_counter{counter="malformed",process="store"}' in text
    assert 'chillly_counter{counter="lat.p99_ms",process="store"} 2.5' in text
    assert 'chillly_up{process="gateway"} 0.0' in text
    assert 'chillly_alarms_raised_total{code="disk",process="store"} 1.0' in text
    exported = set(re.findall(r"^(chillly_\w+)", text, re.M))
    dash = json.loads((Path(__file__).resolve().parents[2] / "docs/grafana-dashboard.json")
                      .read_text())
    used = {n for p in dash["panels"] for t in p["targets"]
            for n in re.findall(r"chillly_\w+", t["expr"])}
    assert used and used <= exported, used - exported
