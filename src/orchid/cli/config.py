"""`orchid config show`: the effective settings and where each value came from."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from orchid.cli.common import DbOpt, _settings, app, console

config_app = typer.Typer(help="The settings Orchid runs with.", no_args_is_help=True)
app.add_typer(config_app, name="config")


@config_app.command("show")
def config_show(
    db: DbOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="one JSON object per setting")] = False,
) -> None:
    """Print every setting by section with its value (secrets masked) and its source: the
    default, the settings file, a variable ($ORCHID_...) or a flag."""
    settings = _settings(db=db)
    rows = list(settings.shown())
    if as_json:
        for section, key, value, source in rows:
            print(json.dumps({"section": section, "key": key, "value": value, "source": source}))
        return
    table = Table("section", "key", "value", "source", box=None)
    for section, key, value, source in rows:
        table.add_row(section, key, escape(value), escape(source))
    console.print(table)
    names = ", ".join(sorted(settings.executors)) or "none"
    console.print(
        f"named executors: {escape(names)}; brokers: {len(settings.brokers)}; "
        f"subscribers: {len(settings.notify)}"
    )
