"""A discrete-event model of a tape library with a disk buffer. Pure: time is passed in.

Drives mount a tape (``mount_s``), read the requested files on it in position order
(``locate_s`` to jump to a file that does not follow the last one; ``size / bandwidth``
to read it), and unmount (``unmount_s``) when no request for that tape is left. A free
drive takes the tape with the most requested bytes that no other drive holds, so
requests are grouped by tape. A read needs room in the disk buffer for the file; when
the buffer is full the drive waits until released files free enough of it.

Each read may fail (``failure_rate``) or, having been read, take hours to appear on disk
(``straggler_rate``, ``straggler_s``): both are drawn from the seed, the file and the
attempt, so a replay with the same seed and the same calls is identical.

Every change of a file's state is appended to its dataset's log; a log position is the
cursor a poller passes back.
"""

from __future__ import annotations

import bisect
import heapq
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from orchid.core.states import FileStatus
from orchid.datamgr.tapesim.library import Library
from orchid.errors import ConfigError

F = FileStatus
# per-file states, kept in a byte array (426,331 files)
NEW, QUEUED, READING, LANDING, ON_DISK, FAILED, DELETED = range(7)
_REPORTED = {NEW: F.NEW, QUEUED: F.STAGING, READING: F.STAGING, LANDING: F.STAGING}
_REPORTED |= {ON_DISK: F.AVAILABLE, FAILED: F.FAILED, DELETED: F.DELETED}


@dataclass(frozen=True)
class TapeConfig:
    """The library's hardware and its faults."""

    drives: int = 4
    bandwidth: float = 360e6  # bytes/s per drive (LTO-8)
    mount_s: float = 90.0  # robot move, load and thread
    unmount_s: float = 30.0
    locate_s: float = 30.0  # positioning to a file that does not follow the last one read
    buffer_bytes: int | None = None  # disk buffer size; None: unlimited
    failure_rate: float = 0.0  # per read
    straggler_rate: float = 0.0  # per read: read, but on disk only hours later
    straggler_s: tuple[float, float] = (3600.0, 4 * 3600.0)
    seed: int = 0
    sample_s: float = 60.0  # buffer-use samples kept for plots, one per this many seconds

    def check(self) -> TapeConfig:
        if self.drives < 1 or self.bandwidth <= 0:
            raise ConfigError("a tape library needs drives >= 1 and bandwidth > 0")
        if min(self.mount_s, self.unmount_s, self.locate_s) < 0:
            raise ConfigError("mount_s, unmount_s and locate_s must be >= 0")
        if self.buffer_bytes is not None and self.buffer_bytes < 1:
            raise ConfigError("buffer_bytes must be >= 1 (or unset for an unlimited buffer)")
        if not (0 <= self.failure_rate <= 1 and 0 <= self.straggler_rate <= 1):
            raise ConfigError("failure_rate and straggler_rate are probabilities in [0, 1]")
        lo, hi = self.straggler_s
        if not 0 <= lo <= hi:
            raise ConfigError("straggler_s is (shortest, longest) delay in seconds")
        return self


class Change(NamedTuple):
    name: str
    status: FileStatus
    at: float
    error: str | None = None
    attempt: int = 0


@dataclass
class _Drive:
    id: int
    tape: int | None = None
    head: int = 0
    busy: bool = False  # an event of this drive is scheduled
    blocked: bool = False  # waiting for room in the buffer


@dataclass
class Stats:
    """What a campaign did to the buffer and the drives."""

    mounts: int = 0
    reads: int = 0
    failures: int = 0
    stragglers: int = 0
    bytes_read: int = 0
    peak_buffer: int = 0
    buffer_area: float = 0.0  # ∫ used dt, for the mean
    first_request: float | None = None
    last_landing: float = 0.0
    samples: list[tuple[float, int]] = field(default_factory=list)


class TapeLibrarySim:
    """The model. Call :meth:`advance` (every other method does) with a clock reading."""

    def __init__(self, library: Library, config: TapeConfig) -> None:
        self.lib = library
        self.cfg = config.check()
        self.now = 0.0
        self.state = bytearray(len(library.files))
        self.attempts = array("H", bytes(2 * len(library.files)))
        self.landed_at = array("d", [float("nan")]) * len(library.files)
        self.released: set[int] = set()  # released while still being read
        self.drives = [_Drive(i) for i in range(config.drives)]
        self.queues: dict[int, list[tuple[int, int]]] = {}  # tape → sorted (position, index)
        self.queued_bytes: dict[int, int] = {}
        self.mounted: set[int] = set()
        self.used = 0  # bytes reserved or held in the buffer
        self.stats = Stats()
        self.logs: dict[str, list[Change]] = {name: [] for name in library.datasets}
        self._events: list[tuple[float, int, str, int, int]] = []
        self._seq = 0
        self._next_sample = 0.0

    def grow(self) -> None:
        """The library gained datasets (added lazily): make room for their files."""
        extra = len(self.lib.files) - len(self.state)
        if extra > 0:
            self.state.extend(bytes(extra))
            self.attempts.extend([0] * extra)
            self.landed_at.extend([float("nan")] * extra)
        for name in self.lib.datasets:
            self.logs.setdefault(name, [])

    # --- requests -----------------------------------------------------------------------

    def request(self, indexes: Iterable[int], now: float) -> None:
        """Stage these files; those queued, being read or on disk are left alone."""
        self.advance(now)
        files = self.lib.files
        by_tape: dict[int, list[tuple[int, int]]] = {}
        for i in indexes:
            if self.state[i] not in (NEW, FAILED, DELETED):
                continue
            f = files[i]
            self.released.discard(i)
            self._set(i, QUEUED)
            by_tape.setdefault(f.tape, []).append((f.position, i))
            self.queued_bytes[f.tape] = self.queued_bytes.get(f.tape, 0) + f.size
        for tape, new in by_tape.items():
            q = self.queues.setdefault(tape, [])
            if len(new) > 16:
                q.extend(new)
                q.sort()
            else:
                for item in new:
                    bisect.insort(q, item)
        if by_tape and self.stats.first_request is None:
            self.stats.first_request = self.now
        self._dispatch()

    def release(self, indexes: Iterable[int], now: float) -> None:
        """Files no longer needed: deleted from disk, or not staged if still queued."""
        self.advance(now)
        freed = False
        for i in indexes:
            s = self.state[i]
            f = self.lib.files[i]
            if s == ON_DISK:
                self._set(i, DELETED)
                self._use(-f.size)
                freed = True
            elif s == QUEUED:
                q = self.queues[f.tape]
                q.pop(bisect.bisect_left(q, (f.position, i)))
                self.queued_bytes[f.tape] -= f.size
                self._set(i, NEW)
            elif s in (READING, LANDING):
                self.released.add(i)  # deleted the moment it lands
        if freed:
            self._unblock()

    def status(self, i: int) -> FileStatus:
        return _REPORTED[self.state[i]]

    # --- time ---------------------------------------------------------------------------

    def advance(self, now: float) -> None:
        """Play every event up to ``now``."""
        ev = self._events
        while ev and ev[0][0] <= now:
            t, _, kind, a, b = heapq.heappop(ev)
            self._tick(t)
            if kind == "read":
                self._read_done(self.drives[a], b)
            elif kind == "land":
                self._land(b)
            elif kind == "mounted":
                self.drives[a].busy = False
                self._next_read(self.drives[a])
            elif kind == "unmounted":
                d = self.drives[a]
                assert d.tape is not None
                self.mounted.discard(d.tape)
                d.tape, d.busy = None, False
                self._dispatch()
        self._tick(max(now, self.now))

    def next_event(self) -> float | None:
        """When the next thing happens (None: nothing is going on)."""
        return self._events[0][0] if self._events else None

    def idle(self) -> bool:
        return not self._events

    # --- internals ----------------------------------------------------------------------

    def _tick(self, t: float) -> None:
        if t > self.now:
            self.stats.buffer_area += self.used * (t - self.now)
            self.now = t

    def _at(self, dt: float, kind: str, a: int, b: int = 0) -> None:
        self._seq += 1
        heapq.heappush(self._events, (self.now + dt, self._seq, kind, a, b))

    def _set(self, i: int, state: int, error: str | None = None) -> None:
        old = self.state[i]
        self.state[i] = state
        reported = _REPORTED[state]
        if _REPORTED[old] != reported or error is not None:
            f = self.lib.files[i]
            attempt = self.attempts[i] if error is not None else 0
            self.logs[f.dataset].append(Change(f.name, reported, self.now, error, attempt))

    def _use(self, delta: int) -> None:
        self.used += delta
        st = self.stats
        st.peak_buffer = max(st.peak_buffer, self.used)
        if self.now >= self._next_sample:
            st.samples.append((self.now, self.used))
            self._next_sample = self.now + self.cfg.sample_s

    def _dispatch(self) -> None:
        """Give free drives the tapes with the most requested bytes."""
        for d in self.drives:
            if d.busy or d.blocked:
                continue
            if d.tape is not None:
                self._next_read(d)
                continue
            waiting = [
                (b, -t) for t, b in self.queued_bytes.items() if b > 0 and t not in self.mounted
            ]
            if not waiting:
                return
            _, neg = max(waiting)
            d.tape, d.head, d.busy = -neg, 0, True
            self.mounted.add(-neg)
            self.stats.mounts += 1
            self._at(self.cfg.mount_s, "mounted", d.id)

    def _next_read(self, d: _Drive) -> None:
        assert d.tape is not None
        q = self.queues.get(d.tape)
        if not q:
            d.busy = True
            self._at(self.cfg.unmount_s, "unmounted", d.id)
            return
        k = bisect.bisect_left(q, (d.head, -1))
        if k == len(q):
            k = 0  # rewind for requests behind the head
        pos, i = q[k]
        f = self.lib.files[i]
        cap = self.cfg.buffer_bytes
        if cap is not None and self.used + f.size > cap and self.used > 0:
            d.blocked = True
            return
        q.pop(k)
        self.queued_bytes[d.tape] -= f.size
        self._use(f.size)
        self._set(i, READING)
        seek = 0.0 if pos == d.head else self.cfg.locate_s
        d.head, d.busy = pos + f.size, True
        self._at(seek + f.size / self.cfg.bandwidth, "read", d.id, i)

    def _read_done(self, d: _Drive, i: int) -> None:
        d.busy = False
        f = self.lib.files[i]
        self.attempts[i] += 1
        st = self.stats
        st.reads += 1
        st.bytes_read += f.size
        u = _uniform(self.cfg.seed, i, self.attempts[i], 0)
        if u < self.cfg.failure_rate:
            st.failures += 1
            self._use(-f.size)
            self.released.discard(i)
            self._set(i, FAILED, f"read error on tape {f.tape} (attempt {self.attempts[i]})")
            self._unblock()
        elif u < self.cfg.failure_rate + self.cfg.straggler_rate:
            st.stragglers += 1
            self._set(i, LANDING)
            lo, hi = self.cfg.straggler_s
            self._at(
                lo + (hi - lo) * _uniform(self.cfg.seed, i, self.attempts[i], 1), "land", d.id, i
            )
        else:
            self._land(i)
        self._next_read(d)

    def _land(self, i: int) -> None:
        self.landed_at[i] = self.now
        self.stats.last_landing = max(self.stats.last_landing, self.now)
        self._set(i, ON_DISK)
        if i in self.released:
            self.released.discard(i)
            self.release([i], self.now)

    def _unblock(self) -> None:
        for d in self.drives:
            if d.blocked:
                d.blocked = False
                self._next_read(d)
                if d.blocked:
                    return  # still no room: later drives wait too


def _uniform(*key: int) -> float:
    """A number in [0, 1) fixed by ``key``: the same on every run and platform.

    Tuples of ints hash the same way in every Python process (only text hashes are
    randomised), and it is far cheaper than seeding a generator per read."""
    h = hash(key) * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF
    return (h >> 11) / 9007199254740992.0
