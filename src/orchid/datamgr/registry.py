"""Named data managers, from a TOML file (``ORCHID_DATA_MANAGERS``) and built-in defaults.

Built in: ``tapesim`` (a small simulated tape library on a clock 1,000× faster than real
time, which holds any dataset a template names) and, only when the ``data_root`` setting
names a folder, ``posix`` over that folder (``orchid run`` and ``orchid up`` set it to
``ORCHID_HOME/data``, which they create; ``orchid server`` and ``orchid agents`` have no
``posix`` manager unless configured). A file adds or replaces managers by name::

    [tape]                      # a template says `input: {manager: tape, ...}`
    kind = "tapesim"
    drives = 8
    bandwidth_mb = 360          # MB/s per drive
    buffer_gb = 2000
    speed = 5000                # simulated seconds per real second
    files_per_dataset = 500     # datasets are made up on first use

    [spool]
    kind = "posix"
    root = "/data/incoming"     # required: an absolute folder that holds data only
    marker = ".done"
    users = ["alice"]           # who may name it in a template (default: everyone) ...
    groups = ["physics"]        # ... or members of these groups

    [atlas]
    kind = "rucio"
    host = "https://rucio.example.org"
    account = "carousel"
    source = "type=TAPE"        # RSE expressions
    destination = "CERN-PROD_DATADISK"

Every section takes ``users`` and ``groups``: with either given, only those users and the
members of those groups (as the server knew them at submission) may use the manager; the
server refuses other submissions (422) and the agents fail such a work. A ``posix`` root
may not be, or contain, ``ORCHID_HOME``, the log folder, the SQLite database or the
settings files, nor lie inside the log folder.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchid.datamgr.base import DataManager
from orchid.errors import ConfigError

if TYPE_CHECKING:
    from orchid.settings import Settings

ACCESS_KEYS = ("users", "groups")


@dataclass(frozen=True)
class Access:
    """Who may name a data manager in a template: ``users``, and the members of ``groups``
    (neither given: everyone)."""

    users: frozenset[str] | None = None
    groups: frozenset[str] | None = None

    @property
    def open(self) -> bool:
        return self.users is None and self.groups is None

    def allows(self, user: str, groups: Iterable[str]) -> bool:
        if self.open:
            return True
        return user in (self.users or ()) or not (self.groups or frozenset()).isdisjoint(groups)

    def refusal(self, manager: str, user: str) -> str:
        """Why ``user`` may not use ``manager``, and what to do."""
        allowed = []
        if self.users:
            allowed.append("users " + ", ".join(sorted(self.users)))
        if self.groups:
            allowed.append("members of " + ", ".join(sorted(self.groups)))
        who = " and ".join(allowed) or "nobody"
        return (
            f"user {user!r} may not use data manager {manager!r}: it is for {who} "
            "(an admin can add you to its `users` or `groups` in the data-manager file)"
        )


OPEN = Access()


@dataclass(frozen=True)
class ManagerSpec:
    """One configured data manager, read but not built (the API server only checks
    templates against it; the agents build it)."""

    name: str
    kind: str
    options: Mapping[str, Any]
    access: Access = OPEN
    where: str = ""  # "FILE: [name]", for messages

    def collection_problem(self, collection: str) -> str | None:
        """Why a template's collection cannot be one of this manager's (None: it may be)."""
        if self.kind == "posix":
            from orchid.datamgr.posix import collection_problem

            return collection_problem(collection)
        return None


@dataclass(frozen=True)
class Configured:
    """The data managers of this process, built, and who may use each."""

    managers: dict[str, DataManager] = field(default_factory=dict)
    access: dict[str, Access] = field(default_factory=dict)


Factory = Callable[[Mapping[str, Any]], DataManager]


def _tapesim(opts: Mapping[str, Any]) -> DataManager:
    from orchid.datamgr.tapesim import AcceleratedClock, DatasetSpec, Library, TapeConfig, TapeSim

    tb, gb, mb = 10**12, 10**9, 10**6
    buffer = opts.get("buffer_gb")
    cfg = TapeConfig(
        drives=int(opts.get("drives", 2)),
        bandwidth=float(opts.get("bandwidth_mb", 360)) * mb,
        mount_s=float(opts.get("mount_s", 90)),
        unmount_s=float(opts.get("unmount_s", 30)),
        locate_s=float(opts.get("locate_s", 30)),
        buffer_bytes=int(float(buffer) * gb) if buffer is not None else None,
        failure_rate=float(opts.get("failure_rate", 0.0)),
        straggler_rate=float(opts.get("straggler_rate", 0.0)),
        straggler_s=tuple(opts.get("straggler_s", (3600.0, 14400.0))),
        seed=int(opts.get("seed", 0)),
    )
    datasets = [
        DatasetSpec(d["name"], int(d["files"]), int(float(d.get("mean_gb", 2)) * gb))
        for d in opts.get("datasets", [])
    ]
    lib = Library.generate(
        datasets,
        seed=cfg.seed,
        tape_capacity=int(float(opts.get("tape_capacity_tb", 12)) * tb),
        spread=int(opts.get("spread", 4)),
    )
    auto = opts.get("files_per_dataset", 100)
    return TapeSim(
        lib,
        cfg,
        AcceleratedClock(float(opts.get("speed", 1000))),
        auto=int(auto) if auto else None,
        auto_size=int(float(opts.get("mean_file_gb", 2)) * gb),
    )


def _posix(opts: Mapping[str, Any]) -> DataManager:
    from orchid.datamgr.posix import PosixManager

    root = Path(opts["root"])
    if not root.is_dir():
        raise ValueError(f"root {root} is not a folder here; create it, or fix `root`")
    return PosixManager(
        root,
        settle_s=float(opts.get("settle_s", 2.0)),
        marker=opts.get("marker"),
        end_marker=str(opts.get("end_marker", "_END")),
        poll_interval=float(opts.get("poll_interval", 1.0)),
    )


def _rucio(opts: Mapping[str, Any]) -> DataManager:
    from orchid.datamgr.rucio import RucioManager

    return RucioManager.from_options(opts)


KINDS: dict[str, Factory] = {"tapesim": _tapesim, "posix": _posix, "rucio": _rucio}


def service_paths(settings: Settings) -> tuple[list[Path], list[Path]]:
    """(paths a posix root may not be or contain, folders it may not be inside): the
    service's own files."""
    import sqlalchemy as sa

    held = [settings.home, settings.log_dir]
    url = sa.engine.make_url(settings.db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        held.append(Path(url.database))
    held += [p for p in (settings.settings_file, settings.data_managers) if p is not None]
    return held, [settings.log_dir]


def _posix_root(opts: Mapping[str, Any], settings: Settings, where: str) -> Path:
    raw = opts.get("root")
    if not isinstance(raw, str) or not raw.strip():
        raise ConfigError(
            f"{where}: a posix manager needs `root`, an absolute folder that holds data only "
            "(no default: it must not reach the service's own files)"
        )
    root = Path(raw).expanduser()
    if not root.is_absolute():
        raise ConfigError(f"{where}: root {raw!r} must be an absolute path")
    root = root.resolve()
    held, inside = service_paths(settings)
    for path in held:
        p = path.expanduser().resolve()
        if root == p or root in p.parents:
            raise ConfigError(
                f"{where}: root {root} holds the service's own files ({p}); give a folder "
                "dedicated to data"
            )
    for path in inside:
        p = path.expanduser().resolve()
        if p in root.parents:
            raise ConfigError(f"{where}: root {root} is inside the log folder {p}")
    return root


def _access(opts: Mapping[str, Any], where: str) -> Access:
    lists: dict[str, frozenset[str] | None] = {}
    for key in ACCESS_KEYS:
        raw = opts.get(key)
        if raw is not None and (
            not isinstance(raw, list) or not all(isinstance(x, str) and x for x in raw)
        ):
            raise ConfigError(f"{where}: `{key}` must be a list of names; got {raw!r}")
        lists[key] = None if raw is None else frozenset(raw)
    return Access(lists["users"], lists["groups"])


def specs(settings: Settings) -> dict[str, ManagerSpec]:
    """The data managers the settings name, checked but not built."""
    path = settings.data_managers
    raw: dict[str, Any] = {"tapesim": {"kind": "tapesim"}}
    if settings.data_root is not None:
        raw["posix"] = {"kind": "posix", "root": str(Path(settings.data_root).expanduser())}
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no data-manager file {path} (ORCHID_DATA_MANAGERS)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the data-manager file {path}: {exc}") from None
    raw |= from_file
    out: dict[str, ManagerSpec] = {}
    for name, opts in raw.items():
        where = f"{path}: [{name}]" if name in from_file else f"the built-in {name} manager"
        if not isinstance(opts, dict):
            raise ConfigError(f"{where} must be a table with a `kind`")
        kind = str(opts.get("kind"))
        if kind not in KINDS:
            raise ConfigError(f"{where} has kind {opts.get('kind')!r}; use {', '.join(KINDS)}")
        options = {k: v for k, v in opts.items() if k not in ACCESS_KEYS}
        if kind == "posix":
            options["root"] = str(_posix_root(opts, settings, where))
        out[name] = ManagerSpec(name, kind, options, _access(opts, where), where)
    return out


def build(spec: ManagerSpec) -> DataManager:
    """The data manager a spec describes (connecting to its data system)."""
    try:
        return KINDS[spec.kind](spec.options)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{spec.where}: {exc}") from None


def load(settings: Settings) -> Configured:
    """The data managers this process offers, by name, and who may use each."""
    found = specs(settings)
    return Configured(
        {name: build(spec) for name, spec in found.items()},
        {name: spec.access for name, spec in found.items()},
    )
