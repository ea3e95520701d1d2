"""The REST API: HTTP mapping, authentication and authorization."""

# The public surface: these modules (``from orchid.api import app``). Listing them
# imports none of them.
__all__ = [
    "app",
    "deps",
    "errors",
    "routes",
    "threads",
]
