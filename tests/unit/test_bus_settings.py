"""BUS_BACKEND and REDIS_URL: validated like every setting (one line naming it, exit 2), a
password in REDIS_URL never printed, and a program on the memory backend refused at start."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chillly.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # no stray .env
    for name in ("BUS_BACKEND", "REDIS_URL", "REDIS_STREAM_MAXLEN"):
        monkeypatch.delenv(name, raising=False)


def test_defaults_and_case() -> None:
    s = load_settings()
    assert (s.bus_backend, s.redis_url, s.redis_stream_maxlen) == (
        "zmq", "redis://127.0.0.1:6379/0", 10_000)
    assert load_settings(bus_backend="Redis").bus_backend == "redis"


@pytest.mark.parametrize("name,value,expected", [
    ("BUS_BACKEND", "kafka", "BUS_BACKEND='kafka': expected zmq, memory or redis"),
    ("REDIS_URL", "http://127.0.0.1:6379", "REDIS_URL='http://127.0.0.1:6379': expected redis://"),
    ("REDIS_URL", "redis://127.0.0.1:99999/0", "the port must be 1..65535"),
    ("REDIS_STREAM_MAXLEN", "-1", "REDIS_STREAM_MAXLEN='-1'"),
])
def test_a_bad_value_is_one_line_and_exit_2(monkeypatch: pytest.MonkeyPatch, capsys,  # type: ignore[no-untyped-def]
                                            name: str, value: str, expected: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exc:
        load_settings()
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert expected in err and err.count("\n") == 1


def test_a_redis_password_is_never_printed(monkeypatch: pytest.MonkeyPatch, capsys) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("REDIS_URL", "redis://feed:sekrit@127.0.0.1:99999/0")
    with pytest.raises(SystemExit):
        load_settings()
    err = capsys.readouterr().err
    assert "REDIS_URL=<hidden>" in err and "sekrit" not in err


def test_a_program_on_the_memory_backend_exits_2_saying_why() -> None:
    proc = subprocess.run([sys.executable, "-m", "broker"],
                          env={"BUS_BACKEND": "memory", "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2, proc.stderr
    assert "BUS_BACKEND=memory joins only the bus clients of one process" in proc.stderr
