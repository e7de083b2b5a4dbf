"""The sim's view of Topstep's account rules: the referee's own, in trading/referee/rules.py
(pure, shared with a backtest's verdict so both judge alike)."""

from trading.referee.rules import (MICROS, PROGRAMS, RULES, SIZE_SPECS, SIZES, XFA_SCALING,
                                   Program, day_max_lots, exposure, floor, lot_tenths, resolve)

__all__ = ["MICROS", "PROGRAMS", "RULES", "SIZES", "SIZE_SPECS", "XFA_SCALING", "Program",
           "day_max_lots", "exposure", "floor", "lot_tenths", "resolve"]
