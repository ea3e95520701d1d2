"""The base of the real clusters tests start (Dask, Slurm): a ``with`` block runs them."""

from __future__ import annotations

from typing import Self


class Daemons:
    """Processes started by ``start`` and stopped by ``stop``; entering a ``with`` block
    starts them (stopping whatever did start, if starting fails), leaving it stops them."""

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
