"""The order gateway: the only process that reaches the venue's order endpoints (docs/gateway.md)."""
