"""`python -m broker` runs the broker (same as `chillly broker`)."""

import argparse
import sys

from broker.relay import cli

if __name__ == "__main__":
    sys.exit(cli(argparse.Namespace()))
