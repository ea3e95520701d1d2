"""The only layer that speaks SQL: tables, set-based queries, migrations.

See docs/architecture.md, "The store's set-based rules".
"""
