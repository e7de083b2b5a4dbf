"""Example strategies (docs/strategies.md); strategies.toml ships with one enabled on the sim."""
