"""The only layer that speaks SQL: tables, set-based queries, migrations."""
