"""WEB_HOST off loopback needs WEB_TOKEN (exit 2 naming it) and makes the page read-only."""

from __future__ import annotations

import pytest

from chillly.settings import load_settings
from web.settings import WebSettings


def test_defaults_are_loopback_and_writable(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WEB_HOST", "WEB_PORT", "WEB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    s = load_settings(WebSettings)
    assert (s.web_host, s.web_port, s.web_token, s.read_only) == ("127.0.0.1", 7130, None, False)


def test_off_loopback_without_a_token_stops_with_one_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WEB_HOST", "0.0.0.0")
    monkeypatch.delenv("WEB_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exc:
        load_settings(WebSettings)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "WEB_TOKEN" in err and len(err.splitlines()) == 1


def test_off_loopback_with_a_token_is_read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_HOST", "192.0.2.10")
    monkeypatch.setenv("WEB_TOKEN", "a" * 20)
    s = load_settings(WebSettings)
    assert s.read_only and s.web_token is not None


def test_a_short_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WEB_TOKEN", "short")
    with pytest.raises(SystemExit):
        load_settings(WebSettings)
