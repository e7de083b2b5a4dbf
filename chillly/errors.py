"""Exceptions shared across packages (kept apart so low-level modules can raise them)."""


class StartupError(Exception):
    """A start-up failure the operator must fix (bad address, port in use): exit code 2."""
