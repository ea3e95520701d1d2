"""Which OS user runs a job of the local executor: its ``run_as`` option.

``run_as = "orchid-jobs"`` runs every job as that one unprivileged user; a table maps
Orchid users, and the groups workflows are shared with, to OS users::

    [executors.local]
    run_as = { alice = "alice", "group:atlas" = "atlas-prod", "*" = "orchid-jobs" }

A workflow's owner is looked up first, then ``group:G`` for the group it is shared with,
then ``*``; a job whose workflow matches none fails with a message saying so. The switch
happens in the child before it runs anything of the job (``setgid``, ``initgroups``,
``setuid``, umask 077, through :class:`subprocess.Popen`), for processes of their own and
pool workers alike (a pool worker serves one OS user). The agent must be root for this
(it also reads what the jobs write in folders they own); :meth:`RunAs.check` says so at
start otherwise.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchid.errors import ConfigError

UMASK = 0o077
"""The umask of jobs run as another user: what they write is theirs alone."""


@dataclass(frozen=True)
class OsUser:
    """An OS account, resolved once (at start): what a child needs to become it."""

    name: str
    uid: int
    gid: int
    groups: tuple[int, ...]
    home: str

    @classmethod
    def lookup(cls, name: str, where: str = "run_as") -> OsUser:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(
                f"{where}: there is no OS user {name!r} on this host; create it "
                "(useradd --system NAME) or name another"
            ) from None
        if entry.pw_uid == 0:
            raise ConfigError(f"{where}: {name!r} is root; jobs must run as an unprivileged user")
        groups = tuple(g for g in os.getgrouplist(name, entry.pw_gid) if g != entry.pw_gid)
        return cls(name, entry.pw_uid, entry.pw_gid, groups, entry.pw_dir or "/")


def as_user(user: OsUser | None) -> dict[str, Any]:
    """:class:`subprocess.Popen` keywords that make the child ``user`` before it execs."""
    if user is None:
        return {}
    return {
        "user": user.uid,
        "group": user.gid,
        "extra_groups": list(user.groups),
        "umask": UMASK,
    }


class RunAs:
    """The ``run_as`` option, resolved: the OS user of each job's workflow."""

    def __init__(self, fixed: OsUser | None, users: Mapping[str, OsUser]) -> None:
        self._fixed = fixed
        self._users = dict(users)

    @classmethod
    def parse(cls, option: str | Mapping[str, str] | None, where: str) -> RunAs | None:
        """From the option's value (a user name, or a table); None: jobs run as we do."""
        if not option:
            return None
        if isinstance(option, str):
            return cls(OsUser.lookup(option, where), {})
        users: dict[str, OsUser] = {}
        for key, name in option.items():
            if not key or (key.startswith("group:") and len(key) == 6):
                raise ConfigError(f"{where}: run_as keys are user names, group:NAME or *")
            users[key] = OsUser.lookup(name, f"{where}: run_as.{key}")
        return cls(None, users)

    @property
    def accounts(self) -> list[OsUser]:
        return [self._fixed] if self._fixed is not None else list(self._users.values())

    def check(self, where: str) -> None:
        """Switching users needs root: say so now, not at the first job."""
        me = os.geteuid()
        if me != 0 and any(u.uid != me for u in self.accounts):
            raise ConfigError(
                f"{where}: run_as needs the agents to run as root (they start each job as its "
                f"user and read what it writes); this agent runs as uid {me}. Start it as "
                "root, or remove run_as"
            )

    def user_for(self, owner: str, share_group: str | None) -> OsUser:
        """The OS user of a job of ``owner``'s workflow (shared with ``share_group``).

        Raises LookupError, whose message is the job's failure reason, when none is set."""
        if self._fixed is not None:
            return self._fixed
        found = self._users.get(owner)
        if found is None and share_group:
            found = self._users.get(f"group:{share_group}")
        if found is None:
            found = self._users.get("*")
        if found is None:
            raise LookupError(
                f"run_as names no OS user for Orchid user {owner!r}"
                + (f" or group {share_group!r}" if share_group else "")
                + ' (add it, or "*" for everyone else, to run_as in the settings)'
            )
        return found


def own_folder(path: Path, user: OsUser) -> None:
    """``path`` exists as a folder of ``user``'s alone (0700); its parent must exist."""
    with contextlib.suppress(FileExistsError):
        os.mkdir(path, 0o700)
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise NotADirectoryError(f"{path} is not a folder")
    if info.st_uid != user.uid or info.st_gid != user.gid:
        os.chown(path, user.uid, user.gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)


def traversable(folder: Path, home: Path) -> None:
    """Let other users pass through ``folder`` and its parents up to ``home`` (execute
    only, 0711: no listing), so run_as users reach their own folders in the log folder,
    whose other files stay closed to them (0600). ConfigError if a parent above ``home``
    keeps them out."""
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    home = home.resolve()
    for path in (folder.resolve(), *folder.resolve().parents):
        info = path.stat()
        if path == home or home in path.parents:
            if not info.st_mode & 0o001:
                os.chmod(path, stat.S_IMODE(info.st_mode) | 0o011)
        elif not info.st_mode & 0o001:
            raise ConfigError(
                f"run_as: the jobs' users cannot reach the log folder {folder}, since {path} "
                "is closed to others; let them pass (chmod o+x) or put ORCHID_HOME elsewhere"
            )
