"""The risk gate: no order may breach a Topstep rule (../shared/topstep-rules.md).

A pure core (no I/O, no wall clock). Its numbers are in `programs.py`; the gateway
(gateway/gate_runner.py) feeds it views and carries out what it asks.
"""
