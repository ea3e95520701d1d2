"""Messages to and from the world: outbound notifications (STOMP, webhooks), inbound job status.

The conductor (:mod:`orchid.engine.conductor`) reads the outbox and hands batches of
:class:`~orchid.notify.base.Notification` to a :class:`~orchid.notify.base.Sender` per
subscriber; :mod:`orchid.notify.receiver` consumes job status messages from a broker.
"""

# The public surface: these modules (``from orchid.notify import base``). Listing them
# imports none of them.
__all__ = [
    "base",
    "config",
    "receiver",
    "stomp",
    "webhook",
]
