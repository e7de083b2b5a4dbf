"""chillly/files.py: a state file is replaced whole or not at all."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from chillly import files


def test_replaces_the_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    p = tmp_path / "state.json"
    files.write_atomic(p, '{"a": 1}')
    files.write_atomic(p, b'{"a": 2}')
    assert p.read_text() == '{"a": 2}'
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_mode_is_the_callers(tmp_path: Path) -> None:
    p = tmp_path / "secret.json"
    files.write_atomic(p, "{}", mode=0o600)
    assert stat.S_IMODE(p.stat().st_mode) == 0o600


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "state.json"
    files.write_atomic(p, "old")

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError):
        files.write_atomic(p, "new")
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["state.json"]


def test_a_missing_directory_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        files.write_atomic(tmp_path / "nowhere" / "state.json", "{}")
