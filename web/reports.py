"""Backtest reports written by `chillly backtest --report DIR` under WEB_REPORTS_DIR: the list
the page shows (from each `report.json`), and where each report's own page is.

A report's `index.html` is served as written, under a sandboxing Content-Security-Policy (an
opaque origin: its inlined scripts run, but it can reach neither the page's cookie nor its
actions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MAX_REPORTS = 200


def verdict_text(v: dict[str, Any] | None) -> str:
    """The verdict in a few words (the report's own page has it whole)."""
    if not v:
        return ""
    if v.get("first_mll_breach"):
        return f"FAILED: MLL breached {v['first_mll_breach'].get('iso', '')}"
    if v.get("lost"):
        return "FAILED: account lost"
    if v.get("program") == "combine":
        return ("PASSED" if v.get("combine_passed") else "NOT PASSED") + \
            (f": {v['combine_why']}" if v.get("combine_why") else "")
    if v.get("program") == "xfa" and v.get("xfa_winning_days") is not None:
        return f"{v['xfa_winning_days']} winning days"
    return "no rule breached"


def scan(root: Path) -> list[dict[str, Any]]:
    """Every report under `root` (the directory itself and two levels down), newest first."""
    if not root.is_dir():
        return []
    found = [p for pattern in ("report.json", "*/report.json", "*/*/report.json")
             for p in root.glob(pattern)]
    out = []
    for path in sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)[:MAX_REPORTS]:
        try:
            r = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if not isinstance(r, dict):
            continue
        rel = path.parent.relative_to(root).as_posix()
        out.append({
            "name": rel if rel != "." else root.name, "path": "" if rel == "." else rel,
            "written_ms": int(path.stat().st_mtime * 1000), "strategy": r.get("strategy"),
            "from": r.get("data_from"), "to": r.get("data_to"), "net_pnl": r.get("net_pnl"),
            "trades": r.get("trades"), "win_rate": r.get("win_rate"),
            "max_drawdown": r.get("max_drawdown"), "verdict": verdict_text(r.get("verdict")),
            "html": (path.parent / "index.html").is_file()})
    return out
