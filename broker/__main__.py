"""`python -m broker` runs the broker (same as `chillly broker`)."""

import sys

from broker.relay import main

sys.exit(main())
