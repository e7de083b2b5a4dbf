"""Defect 20: configuration mistakes that used to pass silently.

- A mistyped DATABASE_PATH: readers say so (alarm `no_database` in series and aggregator
  heartbeats, the series' window error, `chillly bars` exits 2 naming the path) instead of
  running on nothing and answering "unknown contract".
- supervisord does not restart a program that exits 2 (bad configuration) in a loop: it ends
  FATAL (or EXITED) and stays there, while a healthy program beside it keeps running.
"""

from __future__ import annotations

import configparser
import re
import subprocess
from pathlib import Path

from tests.integration.test_store_support import Heartbeats
from tests.support import START_TIMEOUT, ROOT, Procs, aeventually, eventually


async def test_a_mistyped_database_path_is_reported_by_every_reader(procs, bus, tmp_path) -> None:
    typo = str(tmp_path / "markte.db")
    hb = Heartbeats(bus)
    procs.chillly("series", env={"DATABASE_PATH": typo})
    procs.chillly("aggregator", env={"DATABASE_PATH": typo})
    await aeventually(lambda: hb.running("series", "aggregator"), timeout=START_TIMEOUT,
                      what="series and aggregator running")
    for name in ("series", "aggregator"):
        await aeventually(lambda: "no_database" in hb.last[name].get("alarms", {}), timeout=5,
                          what=f"{name} alarming no_database")
        assert typo in hb.last[name]["alarms"]["no_database"]
    reply = await bus.request("series", "window", {"contract": "ES", "last": 5}, timeout=5)
    assert not reply.ok and "no market database at" in (reply.error or "")
    tool = procs.chillly("bars", "ES", "--db", env={"DATABASE_PATH": typo}, stdout_pipe=True)
    assert tool.wait(60) == 2
    assert "no market database at" in tool.log() and "unknown contract" not in tool.log()


def trimmed_conf(tmp_path: Path, keep: set[str]) -> Path:
    """The real supervisord.conf with only the `keep` programs, its run dir in tmp_path."""
    cp = configparser.RawConfigParser()
    cp.read_string((ROOT / "supervisord.conf").read_text())
    for section in cp.sections():
        if (section.startswith("program:") and section.split(":", 1)[1] not in keep) \
                or section == "include":
            cp.remove_section(section)
    run = tmp_path / "run"
    (run / "log").mkdir(parents=True)
    out = tmp_path / "supervisord.conf"
    with out.open("w") as f:
        cp.write(f)
    text = out.read_text().replace("%(here)s/run", str(run)).replace("%(here)s", str(ROOT))
    out.write_text(text)
    return out


def status(conf: Path) -> dict[str, str]:
    out = subprocess.run([str(ROOT / ".venv/bin/supervisorctl"), "-c", str(conf), "status"],
                         capture_output=True, text=True, timeout=30).stdout
    return dict(re.findall(r"^(\S+)\s+([A-Z]+)", out, re.M))


def test_supervisord_leaves_a_badly_configured_program_stopped(procs: Procs, tmp_path) -> None:
    conf = trimmed_conf(tmp_path, {"broker", "store"})
    # The store's own setting is bad; the broker does not read it and must stay up.
    text = conf.read_text().replace("chillly store\n", "chillly store\nenvironment=STORE_BATCH_ROWS=\"0\"\n")
    conf.write_text(text)
    procs.spawn([str(ROOT / ".venv/bin/supervisord"), "-n", "-c", str(conf)], name="supervisord")
    eventually(lambda: status(conf).get("broker") == "RUNNING", 60, interval=0.5,
               what="broker RUNNING")
    eventually(lambda: status(conf).get("store") in ("FATAL", "EXITED"), 60, interval=0.5,
               what="the badly configured store given up")
    log = tmp_path / "run" / "log" / "store.log"
    attempts = log.read_text().count("bad setting STORE_BATCH_ROWS")
    assert 1 <= attempts <= 4, f"{attempts} attempts"     # startretries=3, then no more
    assert status(conf).get("store") in ("FATAL", "EXITED")
    assert status(conf).get("broker") == "RUNNING"
