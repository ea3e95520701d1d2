"""Limits and fair-share weights (issue 21): admins list, set and remove them
(``orchid quota``); ``GET`` shows what each subject uses against each."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from orchid.api.deps import Caller, State, now
from orchid.core.model import Principal
from orchid.errors import NotFound
from orchid.store import quotas
from orchid.web.errors import Denied
from orchid.wire import QuotaIn, QuotaOut

router = APIRouter(tags=["quotas"])


def _admin(who: Principal, what: str) -> None:
    if not who.admin:
        raise Denied(f"{what} is for admins")


def _out(u: quotas.Used) -> QuotaOut:
    q = u.quota
    return QuotaOut(
        kind=q.kind, subject=q.subject, quota=q.quota, value=q.value, executor=q.executor,
        used=u.used,
    )  # fmt: skip


@router.get("/quotas", response_model=list[QuotaOut])
def list_quotas(st: State, who: Caller) -> list[QuotaOut]:
    """Every limit and weight, with what its subject uses now."""
    _admin(who, "the list of quotas")
    with st.db.engine.connect() as conn:
        return [_out(u) for u in quotas.usage(conn, now(), st.settings.share_decay)]


@router.put("/quotas", response_model=QuotaOut)
def set_quota(body: QuotaIn, st: State, who: Caller) -> QuotaOut:
    """Set a limit or a weight (replacing the same one)."""
    _admin(who, "setting quotas")
    q = quotas.Quota(body.kind, body.subject, body.quota, body.value, body.executor).check()
    with st.db.begin() as conn:
        quotas.set_quota(conn, q, now())
        used = next(u for u in quotas.usage(conn, now(), st.settings.share_decay) if u.quota == q)
    return _out(used)


@router.delete("/quotas", status_code=204)
def unset_quota(
    st: State,
    who: Caller,
    kind: Annotated[str, Query(max_length=12)],
    subject: Annotated[str, Query(max_length=200)],
    quota: Annotated[str, Query(max_length=40)],
    executor: Annotated[str, Query(max_length=100)] = "",
) -> Response:
    """Remove a limit or a weight; 404 when there is none."""
    _admin(who, "removing quotas")
    with st.db.begin() as conn:
        if not quotas.unset(conn, kind, subject, quota, executor):
            raise NotFound(f"no quota {quota} of {kind} {subject!r}")
    return Response(status_code=204)
