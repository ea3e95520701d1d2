"""Data systems that stage, list and delete files, behind the DataManager Protocol."""

# The public surface: these modules (``from orchid.datamgr import base``). Listing them
# imports none of them.
__all__ = [
    "base",
    "posix",
    "registry",
    "rucio",
    "tapesim",
]
