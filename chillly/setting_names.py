"""The name of every setting of every process, so a misspelt one is refused instead of ignored.

All processes share one `.env`, so each settings class must ignore the variables it does not read
(`extra="ignore"`); alone, that lets `RISK_MAX_LOTZ=2` pass in silence and the default apply. The
kernel cannot import the process packages to learn their names (the layering forbids it, and a
strategy host must not load the gateway), so each package's names are registered here, as data:
`PACKAGE_SETTINGS` below. tests/unit/test_setting_names.py imports every settings class and
fails, naming the lines to add, when one has a field this table lacks; a process always knows
its own fields besides. A variable with one of CHILLLY's prefixes (the first word of a known
name: `RISK_`, `FEED_`, `BUS_`, ...) that no process knows is refused by `load_settings`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping

#: Settings added to the kernel's `Settings` by each package's own settings classes.
PACKAGE_SETTINGS: dict[str, tuple[str, ...]] = {
    "chillly": (
        "AGGREGATOR_SESSION_OPEN", "AGGREGATOR_SESSION_TIMEFRAMES", "AGGREGATOR_TIMEFRAMES",
        "BAR_FUTURE_TOLERANCE", "FEED_MARKET_HOURS", "METRICS_PORT", "SUPERVISOR_CONF",
    ),
    "feeds": (
        "AGGREGATOR_GAP_DELAY", "AGGREGATOR_GRACE", "AGGREGATOR_REQUEST_TIMEOUT",
        "AGGREGATOR_RETENTION_DAYS", "AGGREGATOR_WARMUP_DAYS",
        "FEED_BACKFILL_MAX_DAYS", "FEED_CATCHUP_MAX_DAYS", "FEED_CLOCK_TIMEFRAMES",
        "FEED_CONTRACT_INFO_INTERVAL", "FEED_FINAL_DELAY", "FEED_INITIAL_LOOKBACK_MIN",
        "FEED_LIVE_BARS", "FEED_POLL_INTERVAL", "FEED_REVISE_WINDOW", "FEED_ROLL_CHECK_INTERVAL",
        "FEED_SET_INTERVAL", "FEED_STALE_AFTER", "FEED_STALE_MIN_REAL",
    ),
    "gateway": (
        "GATEWAY_BARS_BUDGET", "GATEWAY_BRACKET_MODE", "GATEWAY_DATABASE_PATH",
        "GATEWAY_MAX_CLIENT_ID", "GATEWAY_MIN_BRACKET_TICKS", "GATEWAY_PUBLISH_INTERVAL",
        "GATEWAY_RECONCILE_INTERVAL", "GATEWAY_REST_BUDGET", "GATEWAY_SYMBOL_CACHE_S",
        "GATEWAY_UNKNOWN_WAIT", "RISK_ACCOUNT_ORDERS_PER_MINUTE", "RISK_DAILY_CONTRACTS",
        "RISK_DAILY_LOSS_LIMIT", "RISK_DEFAULT_STOP_TICKS", "RISK_ENTRY_CUTOFF", "RISK_FEES",
        "RISK_FLATTEN_START", "RISK_FLAT_BY", "RISK_FLOOR", "RISK_HEDGING_FAMILIES",
        "RISK_MARKET_HOURS", "RISK_MARK_FALLBACK", "RISK_MARK_MAX_AGE", "RISK_MARK_POLL_INTERVAL",
        "RISK_MAX_LOTS", "RISK_MICRO_WEIGHT", "RISK_MLL_ALLOWANCE", "RISK_MLL_BUFFER",
        "RISK_SCALING_TABLE", "RISK_SLIPPAGE_TICKS", "RISK_STARTING_BALANCE",
        "RISK_STRATEGY_ORDERS_PER_MINUTE", "RISK_XFA_PAYOUT_TAKEN", "SIM_ALWAYS_OPEN",
        "TOPSTEP_ACCOUNT_SIZE", "TOPSTEP_PROGRAM",
    ),
    "sim": (
        "SIM_ACCOUNTS", "SIM_API_KEY", "SIM_BRACKET_MODE", "SIM_ENFORCE",
        "SIM_FAULT_DROP_HUBS_EVERY_S", "SIM_FAULT_FORCE_429", "SIM_FAULT_REST_DELAY_MS",
        "SIM_FAULT_REST_FAIL_RATE", "SIM_FILL_MODEL", "SIM_HISTORY_DAYS",
        "SIM_HUB_CLOSE_ON_EXPIRY", "SIM_HUB_PING_S", "SIM_RATE_BARS", "SIM_RATE_BARS_WINDOW_S",
        "SIM_RATE_CLOCK", "SIM_RATE_OTHER", "SIM_RATE_OTHER_WINDOW_S", "SIM_RATE_SCOPE",
        "SIM_REVISE_AFTER_FINAL", "SIM_ROOTS", "SIM_SEED", "SIM_STATE_PATH", "SIM_TICK_INTERVAL_S",
        "SIM_TOKEN_LIFETIME_S", "SIM_TOKEN_SECRET", "SIM_USERNAME", "SIM_VALIDATE_EXPIRED",
    ),
    "store": (
        "SERIES_MAX_WINDOW", "SERIES_SIZE", "STORE_BATCH_ROWS", "STORE_FLUSH_INTERVAL",
        "STORE_MAX_QUEUED", "STORE_RECORD_TICKS", "STORE_RECOVER", "STORE_RECOVER_DAYS",
        "STORE_REQUEST_TIMEOUT", "STORE_RETRY_MAX",
    ),
    "strategy_host": (
        "PROCESS_NAME", "STRATEGY_ACCOUNT", "STRATEGY_HOOK_BUDGET_MS", "STRATEGY_HOOK_KILL_S",
        "STRATEGY_MAX_BAR_AGE", "STRATEGY_MAX_ERRORS", "STRATEGY_MAX_FILES",
        "STRATEGY_MAX_FILE_MB", "STRATEGY_MEMORY_MB", "STRATEGY_MAX_PROCS", "STRATEGY_CPU_WEIGHT", "STRATEGY_CGROUP",
        "STRATEGY_NAME", "STRATEGY_NICE", "STRATEGY_PARENT_PID", "STRATEGY_SANDBOX_REQUIRE",
        "STRATEGY_SAVE_INTERVAL", "STRATEGY_STATE_DIR", "STRATEGY_USER", "STRATEGY_VENUE",
    ),
    "topstepx": (
        "FEED_BARS_BUDGET", "FEED_HTTP_TIMEOUT", "FEED_HUB_BACKOFF_MAX", "FEED_HUB_BACKOFF_MIN",
        "FEED_READ_RETRIES", "FEED_REST_BUDGET", "FEED_RETRY_AFTER_MAX",
        "FEED_TOKEN_REFRESH_BEFORE", "TOPSTEP_LIVE",
    ),
    "web": (
        "WEB_CLIENT_QUEUE", "WEB_HOST", "WEB_PORT", "WEB_QUOTE_INTERVAL", "WEB_REFRESH_INTERVAL",
        "WEB_REPORTS_DIR", "WEB_STRATEGIES_INTERVAL", "WEB_TOKEN",
    ),
}

#: First words of known names too common to claim: a shell's DATABASE_URL, supervisord's own
#: SUPERVISOR_ENABLED or an editor's DEFAULT_* are not ours to refuse.
_NOT_OURS = frozenset({"DATABASE", "DEFAULT", "RUN", "PROCESS", "SUPERVISOR", "BAR"})


def known_names(own: Iterable[str]) -> frozenset[str]:
    """Every registered name, with `own` (the loading class's fields) added."""
    names = {n.upper() for n in own}
    for group in PACKAGE_SETTINGS.values():
        names.update(group)
    return frozenset(names)


def prefixes(known: Iterable[str]) -> frozenset[str]:
    """CHILLLY's prefixes: the first word of each known name, generic words left out."""
    return frozenset(f"{n.split('_', 1)[0]}_" for n in known
                     if "_" in n and n.split("_", 1)[0] not in _NOT_OURS)


def unknown(variables: Mapping[str, str], own: Iterable[str]) -> list[tuple[str, str | None]]:
    """(name, closest known name or None) for each variable with one of our prefixes that no
    process knows; names compare in upper case, as the settings read them."""
    known = known_names(own)
    ours = prefixes(known)
    found: list[tuple[str, str | None]] = []
    for raw in variables:
        name = raw.upper()
        if name in known or not name.startswith(tuple(ours)):
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.6)
        found.append((name, close[0] if close else None))
    return sorted(found)
