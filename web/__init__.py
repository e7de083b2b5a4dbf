"""`chillly web`: the trader's page (docs/web.md)."""
