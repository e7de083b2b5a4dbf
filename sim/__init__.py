"""The sim: a local venue speaking the TopstepX (ProjectX Gateway) API over loopback.

`chillly sim` runs it (sim/server.py). Market data and history come from one deterministic tape
(sim/prices.py); the trading engine (sim/trading.py) is plugged in through the seam described
in docs/sim.md.
"""
