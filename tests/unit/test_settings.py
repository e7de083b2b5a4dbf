"""Settings: names from ARCHITECTURE.md §6, clear errors, secrets hidden, sim by default."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chillly.settings import TOPSTEPX_API_URL, Settings, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("TOPSTEP_API_KEY", "TOPSTEP_USERNAME", "TOPSTEP_API_URL", "DEFAULT_CONTRACTS",
                 "BUS_PUBLISH_ADDR", "BUS_SUBSCRIBE_ADDR", "CLOCK_SPEED", "CLOCK_ANCHOR",
                 "SIM_PORT", "HEARTBEAT_INTERVAL"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_point_at_the_sim_without_credentials() -> None:
    s = Settings()
    assert s.topstep_api_url == "http://127.0.0.1:7110"
    assert s.topstep_market_hub_url == "http://127.0.0.1:7110/hubs/market"
    assert not s.uses_live_venue


def test_credentials_switch_to_topstepx(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPSTEP_API_KEY", "sekrit-key")
    s = Settings()
    assert s.topstep_api_url == TOPSTEPX_API_URL
    assert "sekrit-key" not in repr(s) and "sekrit-key" not in str(s.model_dump())


def test_explicit_venue_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TOPSTEP_API_KEY", "k")
    monkeypatch.setenv("TOPSTEP_API_URL", "http://127.0.0.1:9999")
    assert Settings().topstep_api_url == "http://127.0.0.1:9999"


def test_contract_list_from_env_and_dotenv(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / ".env").write_text("DEFAULT_CONTRACTS=MNQ, CON.F.US.EP.Z26\n")
    assert Settings().default_contracts == ["MNQ", "CON.F.US.EP.Z26"]
    monkeypatch.setenv("DEFAULT_CONTRACTS", "ES")
    assert Settings().default_contracts == ["ES"]


@pytest.mark.parametrize("name, value, expected", [
    ("BUS_PUBLISH_ADDR", "localhost:5555", "BUS_PUBLISH_ADDR='localhost:5555': expected tcp://"),
    ("DEFAULT_CONTRACTS", "ES;NQ", "DEFAULT_CONTRACTS='ES;NQ': expected a comma-separated"),
    ("HEARTBEAT_INTERVAL", "-1", "HEARTBEAT_INTERVAL='-1'"),
    ("CLOCK_SPEED", "0", "CLOCK_SPEED='0'"),
    ("SIM_PORT", "99999", "SIM_PORT='99999'"),
    # defect 20: mistakes that used to pass
    ("DEFAULT_CONTRACTS", ",,", "DEFAULT_CONTRACTS=',,': expected a comma-separated"),
    ("DEFAULT_CONTRACTS", "", "DEFAULT_CONTRACTS='': expected a comma-separated"),
    ("CLOCK_SPEED", "inf", "CLOCK_SPEED='inf': Input should be a finite number"),
    ("CLOCK_SPEED", "nan", "CLOCK_SPEED='nan': Input should be a finite number"),
    ("HEARTBEAT_INTERVAL", "inf", "HEARTBEAT_INTERVAL='inf'"),
    ("BUS_PUBLISH_ADDR", "tcp://127.0.0.1:99999", "BUS_PUBLISH_ADDR='tcp://127.0.0.1:99999': the port"),
    ("BUS_SUBSCRIBE_ADDR", "tcp://127.0.0.1:0", "BUS_SUBSCRIBE_ADDR='tcp://127.0.0.1:0': the port"),
])
def test_bad_value_exits_2_with_one_line_naming_it(monkeypatch: pytest.MonkeyPatch, capsys,
                                                    name: str, value: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_accelerated_clock_needs_an_anchor(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("CLOCK_SPEED", "60")
    with pytest.raises(SystemExit):
        load_settings()
    assert "CLOCK_ANCHOR" in capsys.readouterr().err
    monkeypatch.setenv("CLOCK_ANCHOR", "2026-11-24T00:00:00Z")
    assert load_settings().clock_anchor_ms == 1_795_478_400_000


def test_api_key_value_is_never_printed_on_error(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TOPSTEP_API_KEY", "sekrit-key")
    monkeypatch.setenv("SIM_PORT", "nope")
    with pytest.raises(SystemExit):
        load_settings()
    assert "sekrit" not in capsys.readouterr().err


def test_process_with_bad_setting_exits_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "broker"], env={"BUS_SUBSCRIBE_ADDR": "nope",
                          "PATH": "/usr/bin:/bin"}, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "BUS_SUBSCRIBE_ADDR='nope'" in proc.stderr


def test_each_venue_keeps_its_state_in_its_own_run_directory(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 7: the market database, the feed marks and the saved subscriptions of the sim
    and of TopstepX live apart (RUN_DIR/<venue>/), unless DATABASE_PATH says otherwise."""
    from pathlib import Path
    monkeypatch.delenv("DATABASE_PATH", raising=False)
    monkeypatch.delenv("RUN_DIR", raising=False)
    sim = Settings()
    assert (sim.venue, sim.venue_run_dir, sim.database_path) == (
        "sim", Path("run/sim"), Path("run/sim/market.db"))
    monkeypatch.setenv("TOPSTEP_API_KEY", "k")
    live = Settings()
    assert (live.venue, live.venue_run_dir, live.database_path) == (
        "topstepx", Path("run/topstepx"), Path("run/topstepx/market.db"))
    monkeypatch.setenv("TOPSTEP_API_URL", "http://127.0.0.1:9999")   # a sim, key or not
    assert Settings().venue == "sim"
    monkeypatch.setenv("TOPSTEP_API_URL", "https://gateway.example.com/")
    assert Settings().venue_run_dir == Path("run/gateway.example.com")
    monkeypatch.setenv("RUN_DIR", "/srv/chillly")
    monkeypatch.setenv("DATABASE_PATH", "/data/bars.db")
    s = Settings()
    assert s.database_path == Path("/data/bars.db")
    assert s.venue_run_dir == Path("/srv/chillly/gateway.example.com")


def test_lower_case_symbols_are_upper_cased(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defect 20: `es` is ES here as in `chillly subscribe es`."""
    monkeypatch.setenv("DEFAULT_CONTRACTS", "es, mnq,con.f.us.ep.z26")
    assert Settings().default_contracts == ["ES", "MNQ", "CON.F.US.EP.Z26"]


def test_clock_speed_inf_exits_2_with_one_line_not_a_traceback() -> None:
    proc = subprocess.run([sys.executable, "-m", "broker"],
                          env={"CLOCK_SPEED": "inf", "CLOCK_ANCHOR": "2026-11-24T00:00:00Z",
                               "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "CLOCK_SPEED='inf'" in proc.stderr
