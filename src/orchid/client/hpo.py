"""``client.hpo``: studies (hyperparameter optimisation) and pull-mode workers.

::

    with Client.from_config() as orchid:
        study = orchid.hpo.study_of(workflow_id)            # its only hpo work
        while True:
            got = orchid.hpo.next(study.id, n=1)
            if not got.trials:
                if got.study_status != "running":
                    break
                time.sleep(1)                                 # every point is out: wait
                continue
            for t in got.trials:
                orchid.hpo.report(t.id, value=evaluate(**t.params))
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from orchid.client._http import Http, decode
from orchid.errors import InvalidInput
from orchid.wire import NextOut, ReportOut, StudyOut, TrialOut, TrialPage


class HpoApi:
    """List studies, fetch points, report losses and intermediate values, read the best."""

    def __init__(self, http: Http) -> None:
        self._http = http

    def studies(self, workflow_id: int) -> list[StudyOut]:
        """A workflow's studies (one per hpo work and loop iteration)."""
        body = decode(self._http.request("GET", f"/workflows/{workflow_id}/studies"))
        return [StudyOut.model_validate(s) for s in body]

    def study_of(self, workflow_id: int, work: str | None = None) -> StudyOut:
        """The study of a workflow's hpo work (the latest iteration); ``work`` may be left
        out when the workflow has one hpo work."""
        found = [s for s in self.studies(workflow_id) if work is None or s.work == work]
        if not found:
            what = f"an hpo work named {work!r}" if work else "an hpo work"
            raise InvalidInput(f"workflow {workflow_id} has no study of {what} (yet)")
        names = {s.work for s in found}
        if len(names) > 1:
            raise InvalidInput(
                f"workflow {workflow_id} has several hpo works ({', '.join(sorted(names))}); "
                "name one"
            )
        return max(found, key=lambda s: s.iteration)

    def study(self, study_id: int) -> StudyOut:
        return StudyOut.model_validate(decode(self._http.request("GET", f"/studies/{study_id}")))

    def trials(
        self,
        study_id: int,
        *,
        segment: str | None = None,
        status: Sequence[str] | None = None,
        cursor: str | None = None,
        limit: int = 100,
    ) -> TrialPage:
        query = {"segment": segment, "status": list(status or []), "cursor": cursor, "limit": limit}
        response = self._http.request("GET", f"/studies/{study_id}/trials", params=query)
        return TrialPage.model_validate(decode(response))

    def iter_trials(self, study_id: int, *, segment: str | None = None) -> Iterator[TrialOut]:
        cursor: str | None = None
        while True:
            page = self.trials(study_id, segment=segment, cursor=cursor, limit=1000)
            yield from page.items
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def next(self, study_id: int, *, n: int = 1, segment: str | None = None) -> NextOut:
        """Lease up to ``n`` unevaluated points (pull mode). Not retried once sent: a lost
        answer only leaves points leased until their lease runs out."""
        body: dict[str, Any] = {"n": n}
        if segment is not None:
            body["segment"] = segment
        response = self._http.request("POST", f"/studies/{study_id}/next", json_body=body)
        return NextOut.model_validate(decode(response))

    def report(
        self,
        trial_id: int,
        *,
        value: float | None = None,
        values: Sequence[float] | None = None,
        metrics: Mapping[str, Any] | None = None,
        step: int | None = None,
        failed: str | None = None,
    ) -> ReportOut:
        """Report a trial's loss (``value``), objectives (``values``), ``metrics`` holding
        them by name, a failure, or an intermediate ``value`` at ``step``. ``prune`` in the
        answer says the pruner stopped the trial."""
        response = self._http.request(
            "POST",
            f"/trials/{trial_id}/report",
            json_body=_report(value, values, metrics, step, failed),
        )
        return ReportOut.model_validate(decode(response))

    def report_job(self, job_id: int, value: float, step: int) -> ReportOut:
        """A trial job (``$ORCHID_JOB_ID``) reports an intermediate value."""
        response = self._http.request(
            "POST", f"/jobs/{job_id}/report", json_body={"step": step, "value": value}
        )
        return ReportOut.model_validate(decode(response))


def _report(
    value: float | None,
    values: Sequence[float] | None,
    metrics: Mapping[str, Any] | None,
    step: int | None,
    failed: str | None,
) -> dict[str, Any]:
    body: dict[str, Any] = {}
    for key, v in (("value", value), ("step", step), ("failed", failed)):
        if v is not None:
            body[key] = v
    if values is not None:
        body["values"] = list(values)
    if metrics is not None:
        body["metrics"] = dict(metrics)
    return body
