"""The sim: a local venue speaking the TopstepX (ProjectX Gateway) API over loopback.

`chillly sim` runs it (sim/server.py). Market data and history come from one deterministic tape
(sim/market/tape.py); the trading engine (sim/exchange/engine.py and the modules it names) is
wired to them in sim/venue.py, as docs/sim.md and docs/sim-trading.md describe.
"""
