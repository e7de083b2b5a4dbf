"""`python -m strategy_host NAME`: the sandboxed host, as exec'd by `chillly strategy-host`."""

import sys

from strategy_host.child import main

sys.exit(main())
