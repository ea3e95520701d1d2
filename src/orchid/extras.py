"""The optional parts of Orchid and the pip extra that installs each.

``pip install orchid`` gives the CLI, the client and the embedded engine (SQLite, the local
executor). The rest comes with extras: ``orchid[server]`` (the REST API and the monitor),
``[hpo]`` (Optuna's and nevergrad's samplers), ``[postgres]``, ``[stomp]`` (the message
broker), ``[dask]``, ``[panda]``, ``[rucio]``, ``[htcondor]``, and ``[all]``. Code that
needs one imports it where it is needed and turns a missing package into
:class:`MissingExtra`, a one-line error that names the extra.
"""

from __future__ import annotations

from orchid.errors import ConfigError

# the top-level packages each extra installs (what a ModuleNotFoundError names)
EXTRAS: dict[str, frozenset[str]] = {
    "server": frozenset({"fastapi", "starlette", "uvicorn", "jinja2", "jwt", "anyio"}),
    "hpo": frozenset({"optuna", "cmaes", "nevergrad"}),
    "postgres": frozenset({"psycopg", "psycopg_binary"}),
    "stomp": frozenset({"stomp"}),
    "dask": frozenset({"distributed", "dask"}),
    "panda": frozenset({"pandaclient"}),
    "rucio": frozenset({"rucio"}),
    "htcondor": frozenset({"htcondor", "htcondor2", "classad"}),
}


class MissingExtra(ConfigError):
    """A part of Orchid that is not installed: the message names the extra to install."""

    def __init__(self, extra: str, module: str, what: str) -> None:
        self.extra = extra
        self.module = module
        super().__init__(
            f"{what} needs the {module!r} package, which is not installed: "
            f"pip install 'orchid[{extra}]'"
        )


def missing(extra: str, exc: ModuleNotFoundError, what: str | None = None) -> Exception:
    """What to raise for ``exc``: :class:`MissingExtra` when the module it names is one the
    extra installs, else ``exc`` itself (a missing module of another kind is a bug)."""
    name = exc.name or ""
    if name.split(".")[0] not in EXTRAS[extra]:
        return exc
    return MissingExtra(extra, name, what or f"orchid[{extra}]")
