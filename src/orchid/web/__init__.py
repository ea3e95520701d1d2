"""What the API and the monitor share below their applications: the service's state, who a
request comes from, who may see or change what, and which HTTP status an error is.

Both ``orchid.api`` (JSON) and ``orchid.ui`` (HTML) are built on this package and neither
imports the other; ``orchid.server`` mounts them side by side over one :class:`ApiState`.
Nothing here knows a route or a page.
"""

from orchid.web.access import (
    MAX_ID,
    STREAM_RECHECK_S,
    Recheck,
    authenticate,
    check_id,
    refuse_job_token,
    visible_job,
    visible_workflow,
)
from orchid.web.errors import Denied, Malformed, TooLarge, status_of, too_large
from orchid.web.peers import RealPeer, peer
from orchid.web.state import ApiState

__all__ = [
    "MAX_ID",
    "STREAM_RECHECK_S",
    "ApiState",
    "Denied",
    "Malformed",
    "RealPeer",
    "Recheck",
    "TooLarge",
    "authenticate",
    "check_id",
    "peer",
    "refuse_job_token",
    "status_of",
    "too_large",
    "visible_job",
    "visible_workflow",
]
