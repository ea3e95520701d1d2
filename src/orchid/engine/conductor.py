"""The conductor: delivers the outbox to the subscribers of the settings file, at least once.

For each subscriber (``[notify.NAME]``) it leases the subscriber's ledger row, reads the
events after its cursor (and late commits in its gaps, see :mod:`orchid.store.deliveries`),
keeps the kinds the subscriber wants, sends them as one batch and, only once the transport
confirmed the batch, moves the cursor past it. A crash between send and commit resends
the batch: receivers de-duplicate on the notification ids, which are the same every time.

A failed batch is retried after a back-off that doubles each time (``backoff`` to
``max_backoff`` seconds), so a subscriber that is down costs one try per back-off, never a
flood; after ``max_attempts`` tries the batch is parked (kept in ``parked_notifications``
with the error) and delivery goes on with the next events.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from orchid.engine.agent import AgentEnv, agent_id
from orchid.notify.base import DeliveryError, Notification, Sender
from orchid.notify.config import Subscriber
from orchid.settings import Settings
from orchid.store import deliveries

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.2  # per subscriber: the outbox is read at most this often


@dataclass
class Subscription:
    """A subscriber's options and its transport."""

    name: str
    options: Subscriber
    sender: Sender


class Conductor:
    name = "conductor"

    def __init__(
        self,
        env: AgentEnv,
        subscriptions: Mapping[str, Subscription],
        owner: str | None = None,
        check_every_s: float = CHECK_EVERY_S,
    ) -> None:
        self.env = env
        self.subscriptions = dict(subscriptions)
        self.owner = owner or agent_id("conductor")
        self._check_every = check_every_s
        self._next_check: dict[str, float] = {}
        self._idle: dict[str, int] = {}  # subscriber → newest event id when it was all sent
        self._ready = False

    def run_once(self) -> int:
        env = self.env
        now = env.clock()
        if not self._ready:
            with env.db.begin() as conn:
                deliveries.ensure(conn, self.subscriptions, now)
            self._ready = True
        due = [n for n in self.subscriptions if now >= self._next_check.get(n, 0.0)]
        if not due:
            return 0
        with env.db.begin() as conn:
            newest = deliveries.newest(conn)
        done = 0
        for name in due:
            sub = self.subscriptions[name]
            if self._idle.get(name) == newest:
                self._next_check[name] = now + self._check_every
                continue  # nothing new, no late commit awaited: no write at all
            sent = self._deliver(sub, now, newest)
            # a full batch: there may be more at once; else look again a little later
            self._next_check[name] = now if sent >= sub.options.batch else now + self._check_every
            done += sent
        return done

    def close(self) -> None:
        for sub in self.subscriptions.values():
            try:
                sub.sender.close()
            except Exception:
                log.debug("closing the sender of %s failed", sub.name, exc_info=True)

    def _deliver(self, sub: Subscription, now: float, newest: int) -> int:
        env, opts = self.env, sub.options
        self._idle.pop(sub.name, None)
        with env.db.begin() as conn:
            ledger = deliveries.claim(conn, sub.name, self.owner, now, env.lease)
            if ledger is None:
                return 0  # another conductor has it, or it is backing off
            rows = deliveries.pending(conn, ledger, opts.batch, now)
            if not rows and not ledger.gaps and ledger.cursor >= newest:
                deliveries.advance(conn, ledger, self.owner, ledger.cursor, 0, now)
                self._idle[sub.name] = newest
                return 0
        batch = [
            Notification(
                id=f"{opts.source}-{r['id']}",
                event_id=int(r["id"]),
                kind=str(r["kind"]),
                workflow_id=int(r["workflow_id"]),
                workflow=str(r["workflow"] or ""),
                at=float(r["created_at"]),
                data=r["data"] or {},
            )
            for r in rows
            if opts.wants(str(r["kind"]))
        ]
        cursor = max((int(r["id"]) for r in rows), default=ledger.cursor)
        try:
            if batch:
                sub.sender.send(batch)
        except DeliveryError as exc:
            return self._failed(sub, ledger, batch, cursor, str(exc))
        except Exception as exc:  # a bug in a transport must not stop the other subscribers
            log.exception("subscriber %s: sender failed", sub.name)
            return self._failed(sub, ledger, batch, cursor, f"{type(exc).__name__}: {exc}")
        with env.db.begin() as conn:
            deliveries.advance(conn, ledger, self.owner, cursor, len(batch), env.clock())
        if batch:
            log.debug("subscriber %s: %d notifications delivered", sub.name, len(batch))
        return len(batch)

    def _failed(
        self,
        sub: Subscription,
        ledger: deliveries.Ledger,
        batch: list[Notification],
        cursor: int,
        error: str,
    ) -> int:
        env, opts = self.env, sub.options
        now = env.clock()
        with env.db.begin() as conn:
            if ledger.failures + 1 >= opts.max_attempts:
                log.error(
                    "subscriber %s: parking %d notifications after %d tries: %s",
                    sub.name,
                    len(batch),
                    opts.max_attempts,
                    error,
                )
                deliveries.park(conn, sub.name, [n.event_id for n in batch], error, now)
                deliveries.advance(conn, ledger, self.owner, cursor, 0, now)
                return 0
            delay = opts.delay(ledger.failures + 1)
            log.warning(
                "subscriber %s: %d notifications not delivered (%s); again in %.1fs",
                sub.name,
                len(batch),
                error,
                delay,
            )
            deliveries.failed(conn, ledger, self.owner, error, now + delay, now)
        return 0


def subscriptions_from(settings: Settings) -> dict[str, Subscription]:
    """The subscriptions of the settings file, each with its transport (not yet connected)."""
    from orchid.notify import config
    from orchid.notify.stomp import StompSender
    from orchid.notify.webhook import WebhookSender

    out: dict[str, Subscription] = {}
    where = str(settings.settings_file or "settings")
    for name, cfg in settings.notify.items():
        opts = config.subscriber(cfg, f"{where}: [notify.{name}]")
        sender: Sender
        if isinstance(opts, config.StompSubscriber):
            broker = config.broker(settings.brokers[opts.broker], f"[brokers.{opts.broker}]")
            sender = StompSender(broker, opts.destination, name=f"orchid-{name}")
        else:
            sender = WebhookSender(opts.url, opts.key(), source=opts.source, timeout=opts.timeout)
        out[name] = Subscription(name, opts, sender)
    return out
