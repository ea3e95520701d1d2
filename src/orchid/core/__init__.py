"""Pure domain logic: model, state machines, templates, DAG, conditions. No I/O here."""
