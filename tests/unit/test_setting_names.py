"""A misspelt setting with one of CHILLLY's prefixes is refused at start, never ignored (issue 21,
item 13); the kernel's registry of names (chillly/setting_names.py) covers every settings class."""

from __future__ import annotations

import ast
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chillly.setting_names import PACKAGE_SETTINGS, known_names, prefixes
from chillly.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("chillly", "trading", "topstepx", "broker", "feeds", "store", "gateway",
            "strategy_host", "sim", "backtest", "web")


def _settings_modules() -> list[str]:
    """Every module of ours that defines a class deriving from something named *Settings."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")) if (ROOT / pkg).is_dir() else []:
            tree = ast.parse(path.read_text())
            if any(isinstance(node, ast.ClassDef) and any(
                    getattr(b, "id", getattr(b, "attr", "")).endswith("Settings")
                    for b in node.bases) for node in ast.walk(tree)):
                found.append(".".join(path.relative_to(ROOT).with_suffix("").parts))
    return found


def _all_classes() -> list[type[Settings]]:
    for module in _settings_modules():
        importlib.import_module(module)
    out: list[type[Settings]] = []
    todo: list[type[Settings]] = [Settings]
    while todo:
        cls = todo.pop()
        out.append(cls)
        todo.extend(cls.__subclasses__())
    return out


def test_every_field_of_every_settings_class_is_registered() -> None:
    known = known_names(Settings.model_fields)
    missing = sorted({f"{cls.__module__.split('.')[0]}: {name.upper()}"
                      for cls in _all_classes() for name in cls.model_fields
                      if name.upper() not in known})
    assert not missing, ("add these names to PACKAGE_SETTINGS in chillly/setting_names.py: "
                         + ", ".join(missing))
    assert len(_all_classes()) > 10      # the walk found the process packages' classes


def test_our_prefixes_are_the_first_words_of_our_names_without_generic_ones() -> None:
    ours = prefixes(known_names(Settings.model_fields))
    assert {"TOPSTEP_", "RISK_", "FEED_", "SIM_", "STORE_", "GATEWAY_", "STRATEGY_", "BUS_",
            "CLOCK_", "AGGREGATOR_", "SERIES_", "METRICS_", "HEARTBEAT_", "LOG_"} <= ours
    # supervisord's SUPERVISOR_ENABLED, a shell's DATABASE_URL: not ours to refuse.
    assert not {"SUPERVISOR_", "DATABASE_", "DEFAULT_", "RUN_"} & ours
    assert all(n == n.upper() for group in PACKAGE_SETTINGS.values() for n in group)


def _status(tmp_path: Path, env: dict[str, str], dotenv: str = "") -> subprocess.CompletedProcess[str]:
    """`chillly status` with no broker, from tmp_path (its .env): exit 1 "no broker" once the
    settings are accepted, exit 2 when they are refused."""
    (tmp_path / ".env").write_text(dotenv)
    base = {k: v for k, v in os.environ.items()
            if k in ("PATH", "HOME", "LANG", "PYTHONPATH", "SYSTEMROOT")}
    return subprocess.run([sys.executable, "-m", "chillly.cli", "status", "--wait", "0.3",
                           "--conf", str(tmp_path / "none.conf")],
                          cwd=tmp_path, env={**base, "PYTHONPATH": str(ROOT), **env},
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("where", ["env", "dotenv"])
def test_a_misspelt_setting_is_refused_naming_the_closest_known_one(tmp_path, where) -> None:
    for typo, meant in (("RISK_MAX_LOTZ", "RISK_MAX_LOTS"),
                        ("TOPSTEP_ACOUNT_ID", "TOPSTEP_ACCOUNT_ID"),
                        ("clock_speeed", "CLOCK_SPEED")):
        proc = (_status(tmp_path, {typo: "2"}) if where == "env"
                else _status(tmp_path, {}, f"# mine\n{typo}=2\n"))
        assert proc.returncode == 2, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1, proc.stderr
        assert typo.upper() in lines[0] and f"did you mean {meant}?" in lines[0]
        assert ("in .env" if where == "dotenv" else "in the environment") in lines[0]


def test_a_name_no_process_has_is_refused_without_a_guess(tmp_path) -> None:
    proc = _status(tmp_path, {"STORE_XYZZY": "1"})
    assert proc.returncode == 2
    assert "unknown setting STORE_XYZZY" in proc.stderr
    assert "no CHILLLY setting has this name" in proc.stderr


def test_another_process_s_setting_and_foreign_names_pass(tmp_path) -> None:
    # STORE_BATCH_ROWS is the store's, RISK_MAX_LOTS the gateway's: `chillly status` reads
    # neither but must not refuse them (one shared .env); DATABASE_URL and SUPERVISOR_ENABLED
    # are other programs'.
    proc = _status(tmp_path, {"SUPERVISOR_ENABLED": "1", "DATABASE_URL": "x",
                              "RISK_MAX_LOTS": "3"}, "STORE_BATCH_ROWS=50\n")
    assert proc.returncode == 1 and "no broker" in proc.stderr, proc.stderr
