"""The only layer that speaks SQL: tables, set-based queries, migrations.

See docs/architecture.md, "The store's set-based rules".
"""

# The public surface: these modules (``from orchid.store import agents``). Listing them
# imports none of them.
__all__ = [
    "agents",
    "bulk",
    "cache",
    "catalog",
    "claims",
    "commands",
    "db",
    "deliveries",
    "dispatch",
    "events",
    "feedends",
    "feeds",
    "filejobs",
    "graph",
    "jobs",
    "jobtokens",
    "messages",
    "monitor",
    "release",
    "routes",
    "secrets",
    "signals",
    "studies",
    "tables",
    "tokens",
    "trials",
    "workflows",
    "works",
]
