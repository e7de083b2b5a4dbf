"""Strategy hosts: the strategy API, strategies.toml, one sandboxed process per instance."""
