"""How large the values that users make Orchid build and store may be.

One frozen value, made from the settings (:attr:`orchid.settings.Settings.limits`) and
passed down to whatever checks it: expression evaluation, planning, job expansion and
the recording of results. Core stays pure: nothing here reads the settings itself.

Every limit is checked *before* the value it bounds is built (``range(n)`` checks ``n``,
``a + b`` checks ``len(a) + len(b)``, a result file its size before it is read), so going
over one costs nothing but the error; each error names the field, the limit and the
setting that raises it.
"""

from __future__ import annotations

from dataclasses import dataclass

MIB = 1 << 20
MAX_JOBS_PER_MAP = 1_000_000  # the most jobs one `map` may make (a fixed limit, no setting)


@dataclass(frozen=True, slots=True)
class Limits:
    """Size limits; each field is the setting of the same name (``ORCHID_<NAME>``)."""

    expr_max_items: int = 1_000_000
    """Longest list an expression may build (``range``, ``+`` of lists). A million, like
    the most jobs one map may make: a sweep over a million points still fits."""

    expr_max_string: int = MIB
    """Longest string (in characters) an expression may build: ``+`` of strings, ``str()``
    and text with ``${...}`` in it."""

    expr_max_bytes: int = 16 * MIB
    """Largest value an expression may give, as JSON text: bounds values made of many
    references to one big value (``[x, x, x]``), which cost nothing to build but
    everything to store. 16 MiB holds a million-point sweep list many times over."""

    job_args_max_bytes: int = MIB
    """Largest arguments of one job, as JSON text (the work's parameters merged with its
    map item, or a listed job's ``args``): they are written in the database for every job
    and to a file (and up to 64 KiB into the environment) for every attempt."""

    result_max_bytes: int = 16 * MIB
    """Largest result of one job, as JSON text: a bigger one fails the job instead of
    being read into the agent and stored. Results are meant to be small (metrics, file
    names); expressions load all results of a work at once."""

    def __post_init__(self) -> None:
        for name in self.__slots__:
            value = getattr(self, name)
            if not (isinstance(value, int) and not isinstance(value, bool)) or value < 1:
                raise ValueError(f"{name} must be a whole number of at least 1; got {value!r}")

    def result_too_large(self, size: int | None = None) -> str:
        """The failure reason of a job whose result is ``size`` bytes as JSON (None: more
        than the limit, not measured further)."""
        cap = self.result_max_bytes
        more = f"{size:,} bytes" if size is not None else f"more than {cap:,} bytes"
        return (
            f"the result is {more} as JSON, more than the limit of {cap:,} "
            f"{self.setting('result_max_bytes')}; write large outputs to files and return "
            "their names"
        )

    @staticmethod
    def setting(name: str) -> str:
        """How messages name the setting ``name``: ``(setting expr_max_items)``."""
        return f"(setting {name}, ORCHID_{name.upper()})"


DEFAULT = Limits()
