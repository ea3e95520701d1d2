"""Event buses wake agents; correctness never depends on them (agents also poll)."""
