"""TopstepX (ProjectX Gateway API) client library: REST client, auth, budgets, models, hub agents.

Imports only the kernel (`chillly/`); the feeds and the order gateway both use it.
"""

import sys

# httpx imports its command line (httpx._main: click, rich, pygments) whenever those happen to be
# installed, as import-linter installs them in the test environment: ~75 ms of CPU at the start
# of every feed and gateway process, for an `httpx` command we never run. An absent module makes
# httpx fall back to its own stub `main` (httpx/__init__.py: `except ImportError`); a process
# that imported httpx before us keeps what it has.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
