"""The page's list of backtest reports: every report.json under the directory, newest first,
with a verdict in a few words; a broken file is skipped, not fatal (web/reports.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from web.reports import scan, verdict_text


def write(d: Path, mtime: float, **fields: object) -> None:
    d.mkdir(parents=True)
    (d / "report.json").write_text(json.dumps(fields))
    (d / "index.html").write_text("<html></html>")
    os.utime(d / "report.json", (mtime, mtime))


def test_reports_newest_first_and_a_broken_one_skipped(tmp_path: Path) -> None:
    write(tmp_path / "old", 1000, strategy="a", net_pnl=-5.0,
          verdict={"program": "combine", "first_mll_breach": {"iso": "2026-01-05T15:00:00Z"}})
    write(tmp_path / "sweep" / "run1", 2000, strategy="b", net_pnl=12.5,
          verdict={"program": "combine", "combine_passed": True, "combine_why": "target made"})
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "report.json").write_text("{not json")
    got = scan(tmp_path)
    assert [r["name"] for r in got] == ["sweep/run1", "old"]
    assert got[0]["verdict"] == "PASSED: target made" and got[0]["html"]
    assert got[1]["verdict"].startswith("FAILED: MLL breached")
    assert scan(tmp_path / "missing") == []


def test_verdict_words() -> None:
    assert verdict_text(None) == ""
    assert verdict_text({"lost": True}) == "FAILED: account lost"
    assert verdict_text({"program": "combine", "combine_passed": False,
                         "combine_why": "target 3,000 not made"}).startswith("NOT PASSED")
