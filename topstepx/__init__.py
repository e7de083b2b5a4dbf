"""TopstepX (ProjectX Gateway API) client library: REST client, auth, budgets, models, hub agents.

Imports only the kernel (`chillly/`); the feeds and the order gateway both use it.
"""
