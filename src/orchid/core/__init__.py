"""Pure domain logic: model, state machines, templates, DAG, conditions. No I/O here."""

# The public surface: these modules (``from orchid.core import carousel``). Listing them
# imports none of them.
__all__ = [
    "carousel",
    "commands",
    "dag",
    "expr",
    "expr_lexer",
    "hpo",
    "jobs",
    "jobtoken",
    "jsonvalues",
    "limits",
    "model",
    "placeholders",
    "plan",
    "rawcheck",
    "retry",
    "states",
    "study",
    "template",
    "validate",
]
