"""The referee: Topstep's rules applied to what an account did, with its own formulas.

The numbers are the program and product tables the risk gate reads (trading/risk/programs.py,
trading/products.py); the formulas here are written apart from the gate's (trading/risk/), so
the referee stays an independent judge of it. The sim's venue records breaches with it
(sim/), and a backtest's verdict is its judgement of the run (backtest/):
`rules` (an account's program and the floor, cap and lot formulas), `judge` (the rule state of
accounts over time and every breach seen), `verdict` (passing a Combine, an XFA's payout days).
"""
