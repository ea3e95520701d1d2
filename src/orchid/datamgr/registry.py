"""Named data managers, from a TOML file (``ORCHID_DATA_MANAGERS``) and built-in defaults.

Without a file there are two: ``posix`` (folders under the agents' working directory)
and ``tapesim`` (a small simulated tape library on a clock 1,000× faster than real time,
which holds any dataset a template names). A file adds or replaces managers by name::

    [tape]                      # a template says `input: {manager: tape, ...}`
    kind = "tapesim"
    drives = 8
    bandwidth_mb = 360          # MB/s per drive
    buffer_gb = 2000
    speed = 5000                # simulated seconds per real second
    files_per_dataset = 500     # datasets are made up on first use

    [spool]
    kind = "posix"
    root = "/data/incoming"
    marker = ".done"

    [atlas]
    kind = "rucio"
    host = "https://rucio.example.org"
    account = "carousel"
    source = "type=TAPE"        # RSE expressions
    destination = "CERN-PROD_DATADISK"
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchid.datamgr.base import DataManager
from orchid.errors import ConfigError

Factory = Callable[[Mapping[str, Any], Path], DataManager]


def _tapesim(opts: Mapping[str, Any], base: Path) -> DataManager:
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


def _posix(opts: Mapping[str, Any], base: Path) -> DataManager:
    from orchid.datamgr.posix import PosixManager

    return PosixManager(
        base / str(opts.get("root", ".")),
        settle_s=float(opts.get("settle_s", 2.0)),
        marker=opts.get("marker"),
        end_marker=str(opts.get("end_marker", "_END")),
        poll_interval=float(opts.get("poll_interval", 1.0)),
    )


def _rucio(opts: Mapping[str, Any], base: Path) -> DataManager:
    from orchid.datamgr.rucio import RucioManager

    return RucioManager.from_options(opts)


KINDS: dict[str, Factory] = {"tapesim": _tapesim, "posix": _posix, "rucio": _rucio}


def load(path: Path | None, *, cwd: Path | None = None) -> dict[str, DataManager]:
    """The data managers this process offers, by name."""
    cwd = cwd or Path.cwd()
    specs: dict[str, Any] = {"posix": {"kind": "posix"}, "tapesim": {"kind": "tapesim"}}
    from_file: dict[str, Any] = {}
    if path is not None:
        try:
            from_file = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"no data-manager file {path} (ORCHID_DATA_MANAGERS)") from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the data-manager file {path}: {exc}") from None
        specs |= from_file
    out: dict[str, DataManager] = {}
    for name, opts in specs.items():
        if not isinstance(opts, dict):
            raise ConfigError(f"{path}: [{name}] must be a table with a `kind`")
        kind = opts.get("kind")
        factory = KINDS.get(str(kind))
        if factory is None:
            raise ConfigError(f"{path}: [{name}] has kind {kind!r}; use {', '.join(KINDS)}")
        try:
            base = path.resolve().parent if path is not None and name in from_file else cwd
            out[name] = factory(opts, base)
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{path}: [{name}]: {exc}") from None
    return out
