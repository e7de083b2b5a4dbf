"""The pure trading core: every trading decision, shared by the gateway, the strategy host, the
sim's referee and the backtest.

A library between the kernel and the processes: it imports only `chillly`, and does no I/O
(no event loop, socket, disk, venue client) and never reads the wall clock; time is always
passed in. import-linter keeps both true (pyproject.toml).
"""
