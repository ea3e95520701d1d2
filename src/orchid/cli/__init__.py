"""The ``orchid`` command line."""
