"""The market database: its single writer (`store`), schema and migrations, read-side queries,
and the in-memory series cache (`series`). See docs/store.md and docs/schema.md."""
