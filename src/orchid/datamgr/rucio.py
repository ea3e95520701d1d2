"""``rucio``: stage a dataset from tape by a replication rule, follow its replica locks.

``stage`` creates one rule per collection (a Rucio dataset or container DID) from the
``source`` RSE expression (the tape) to the ``destination`` (a disk RSE), owned by the
configured account, unless that account already has a rule for the DID to the same
destination (so a retry after a crash finds the rule it made instead of making
another). ``poll`` lists the rule's replica locks: ``OK`` is on disk (its PFN is the
job's url), ``REPLICATING`` is staging, ``STUCK`` has failed (Rucio's own repairer
retries stuck locks; staging them "again" leaves that to it). ``release(None)`` removes
the rule once the collection is done, and Rucio's reaper reclaims the disk; a rule pins
a whole dataset, so releasing single files does nothing.

The REST calls made (through the ``rucio-clients`` package): ``GET /dids/S/N/files``,
``GET /dids/S/N/rules``, ``POST /rules/``, ``GET /rules/ID/locks``,
``POST /replicas/list`` and ``DELETE /rules/ID``; plus the token request. Rucio keeps a
removed rule for an hour with an expiry date (then its cleaner takes it away): with no
``lifetime`` configured, a rule of ours with an expiry counts as removed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import islice
from typing import Any

from orchid.core.states import FileStatus
from orchid.datamgr.base import Changes, FileInfo, split_collection
from orchid.errors import ConfigError, DataManagerError, UnknownCollection
from orchid.extras import missing

log = logging.getLogger(__name__)
F = FileStatus
LOCK_STATES = {"OK": F.AVAILABLE, "REPLICATING": F.STAGING, "STUCK": F.FAILED}


@contextmanager
def _rucio_errors(what: str) -> Iterator[None]:
    """Rucio's exceptions (and the HTTP library's) as Orchid's, with what was being done."""
    from rucio.common import exception as rex

    try:
        yield
    except rex.DataIdentifierNotFound as exc:
        raise UnknownCollection(f"Rucio has no {what}: {_short(exc)}") from None
    except rex.RucioException as exc:
        raise DataManagerError(f"Rucio refused to {what}: {_short(exc)}") from None
    except OSError as exc:  # requests' connection errors are OSErrors
        raise DataManagerError(f"cannot reach Rucio to {what}: {exc}") from None


def _short(exc: Exception) -> str:
    return " ".join(str(exc).split())[:300]


class RucioManager:
    """Collections are Rucio DIDs ``scope:name``; files are their file DIDs."""

    name = "rucio"

    def __init__(
        self,
        client: Any,
        *,
        destination: str,
        source: str | None = None,
        account: str | None = None,
        lifetime: int | None = None,
        activity: str | None = None,
        poll_interval: float = 30.0,
    ) -> None:
        self.client = client
        self.destination = destination
        self.source = source
        self.account = account or getattr(client, "account", None)
        self.lifetime = lifetime
        self.activity = activity
        self.poll_interval = poll_interval
        self._sizes: dict[str, dict[str, int]] = {}
        self._reported: dict[str, tuple[int, dict[str, str]]] = {}  # last poll per collection

    @staticmethod
    def from_options(opts: Mapping[str, Any]) -> RucioManager:
        """From a [name] table of the data-manager file (see datamgr/registry.py)."""
        try:
            from rucio.client import Client
        except ModuleNotFoundError as exc:
            raise missing("rucio", exc, "the rucio data manager") from None
        if "destination" not in opts:
            raise ConfigError("a rucio data manager needs `destination` (a disk RSE expression)")
        args: dict[str, Any] = {
            k: opts[k] for k in ("account", "auth_type", "vo", "ca_cert") if k in opts
        }
        if "host" in opts:
            args["rucio_host"] = opts["host"]
            args["auth_host"] = opts.get("auth_host", opts["host"])
        if "username" in opts:
            args["creds"] = {"username": opts["username"], "password": opts.get("password", "")}
        with _rucio_errors("authenticate"):
            client = Client(**args)
        return RucioManager(
            client,
            destination=str(opts["destination"]),
            source=opts.get("source"),
            account=opts.get("account"),
            lifetime=int(opts["lifetime"]) if "lifetime" in opts else None,
            activity=opts.get("activity"),
            poll_interval=float(opts.get("poll_interval", 30.0)),
        )

    # --- helpers --------------------------------------------------------------------------

    def _rule(self, collection: str) -> dict[str, Any] | None:
        """Our rule for the collection: this account's, to the destination."""
        scope, name = split_collection(collection)
        with _rucio_errors(f"list the rules of {collection}"):
            for rule in self.client.list_did_rules(scope, name):
                if (
                    rule.get("rse_expression") == self.destination
                    and rule.get("account") == self.account
                    and not self._removed(rule)
                ):
                    return dict(rule)
        return None

    def _removed(self, rule: Mapping[str, Any]) -> bool:
        """A removed rule lingers for Rucio's grace period (an hour) with an expiry date;
        rules made without a lifetime have none, so an expiry means it was removed."""
        expires = rule.get("expires_at")
        if not expires:
            return False
        if self.lifetime is None:
            return True
        when = expires if isinstance(expires, datetime) else datetime.fromisoformat(str(expires))
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when <= datetime.now(UTC)

    def _file_sizes(self, collection: str) -> dict[str, int]:
        sizes = self._sizes.get(collection)
        if sizes is None:
            scope, name = split_collection(collection)
            with _rucio_errors(f"dataset {collection}"):
                sizes = {
                    f["name"]: int(f.get("bytes") or 0) for f in self.client.list_files(scope, name)
                }
            self._sizes[collection] = sizes
        return sizes

    def _locks(self, rule_id: str) -> dict[str, str]:
        with _rucio_errors(f"list the locks of rule {rule_id}"):
            return {lk["name"]: str(lk["state"]) for lk in self.client.list_replica_locks(rule_id)}

    def _urls(self, collection: str, names: Sequence[str]) -> dict[str, str]:
        """PFNs on the destination of files now on disk (the DID URI if Rucio gives none)."""
        scope, _ = split_collection(collection)
        urls = {n: f"rucio://{self.destination}/{scope}:{n}" for n in names}
        it = iter(names)
        while chunk := list(islice(it, 500)):
            with _rucio_errors(f"list the replicas of {collection}"):
                for rep in self.client.list_replicas(
                    [{"scope": scope, "name": n} for n in chunk], rse_expression=self.destination
                ):
                    pfns = [p for ps in (rep.get("rses") or {}).values() for p in ps]
                    if pfns:
                        urls[rep["name"]] = pfns[0]
        return urls

    # --- the protocol -------------------------------------------------------------------

    def list_files(self, collection: str) -> list[FileInfo]:
        sizes = self._file_sizes(collection)
        rule = self._rule(collection)
        states = self._locks(rule["id"]) if rule else {}
        on_disk = [n for n, s in states.items() if s == "OK"]
        urls = self._urls(collection, on_disk) if on_disk else {}
        return [
            FileInfo(n, size, LOCK_STATES.get(states.get(n, ""), F.NEW), urls.get(n))
            for n, size in sorted(sizes.items())
        ]

    def stage(self, collection: str, files: Sequence[str] | None = None) -> None:
        scope, name = split_collection(collection)
        self._file_sizes(collection)  # an unknown DID is refused here
        if self._rule(collection) is not None:
            return  # staging or done; Rucio retries stuck locks itself
        try:
            with _rucio_errors(f"create a rule for {collection}"):
                rule_ids = self.client.add_replication_rule(
                    dids=[{"scope": scope, "name": name}],
                    copies=1,
                    rse_expression=self.destination,
                    source_replica_expression=self.source,
                    lifetime=self.lifetime,
                    activity=self.activity,
                    grouping="DATASET",
                    asynchronous=False,
                )
        except DataManagerError:
            # a rule made meanwhile by another process (DuplicateRule) is ours all the same
            if self._rule(collection) is None:
                raise
            return
        log.info("rucio rule %s: %s → %s", rule_ids, collection, self.destination)

    def poll(self, collection: str, cursor: str | None) -> Changes:
        sizes = self._file_sizes(collection)
        rule = self._rule(collection)
        states = self._locks(rule["id"]) if rule else {}
        generation, before = self._reported.get(collection, (0, {}))
        if cursor is None or cursor != str(generation):
            before = {}  # unknown position: report everything
        changed = {n: s for n, s in states.items() if before.get(n) != s}
        new_on_disk = [n for n, s in changed.items() if s == "OK"]
        urls = self._urls(collection, new_on_disk) if new_on_disk else {}
        out = tuple(
            FileInfo(
                n,
                sizes.get(n, 0),
                LOCK_STATES.get(s, F.STAGING),
                urls.get(n),
                f"replica lock {s} on {self.destination}" if s == "STUCK" else None,
            )
            for n, s in sorted(changed.items())
        )
        self._reported[collection] = (generation + 1, states)
        return Changes(out, str(generation + 1))

    def release(self, collection: str, files: Sequence[str] | None = None) -> None:
        if files is not None:
            return  # one rule pins the whole collection: it goes when the collection is done
        rule = self._rule(collection)
        if rule is None:
            return
        from rucio.common import exception as rex

        try:
            self.client.delete_replication_rule(rule["id"], purge_replicas=False)
        except rex.RuleNotFound:
            return
        except (rex.RucioException, OSError) as exc:
            raise DataManagerError(
                f"Rucio refused to remove rule {rule['id']}: {_short(exc)}"
            ) from None
        self._reported.pop(collection, None)
        log.info("rucio rule %s of %s removed", rule["id"], collection)

    def close(self) -> None:
        """The client holds no connection open between calls."""
