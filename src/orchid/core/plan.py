"""The clerk's decisions: which works start, which are skipped, how loops go on, when a
workflow ends. Pure: it reads a snapshot of the run state and returns what to change.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from orchid.core import expr
from orchid.core.jobs import check_args
from orchid.core.limits import DEFAULT, Limits
from orchid.core.nested import Scope, chain
from orchid.core.states import TERMINAL_WORK, JobStatus, WorkflowStatus, WorkStatus
from orchid.core.template import LoopSpec, Template, WorkSpec
from orchid.core.validate import Analysis
from orchid.errors import ExpressionError, InvalidInput

LoopStatus = Literal["waiting", "running", "succeeded", "failed", "skipped", "cancelled"]
FAILED_WORK = frozenset({WorkStatus.FAILED, WorkStatus.PARTIAL})
SUCCESS: Literal["succeeded"] = "succeeded"
UNFINISHED = frozenset({"waiting", "ready", "running"})
FINISHED_BY_USER = "not started: the user asked the workflow to finish"


LoopCause = Literal["", "upstream", "error", "max", "finish"]


@dataclass(frozen=True)
class LoopState:
    """A loop's run state. ``cause`` says why it was skipped or failed, for retry.

    ``serial`` is the iteration number of the work rows of the loop's current iteration
    when it differs from ``iteration``: a loop inside a loop starts again at iteration 0
    in each iteration of the outer loop, while its works' rows keep counting (0, 1, 2 …
    over all its runs), so that every row of a work has its own (name, iteration).
    """

    status: LoopStatus = "waiting"
    iteration: int = 0
    vars: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""
    cause: LoopCause = ""
    serial: int | None = None

    @property
    def work_iteration(self) -> int:
        """The ``iteration`` of this loop's work rows now."""
        return self.iteration if self.serial is None else self.serial

    def to_json(self) -> dict[str, Any]:
        out = {
            "status": self.status,
            "iteration": self.iteration,
            "vars": dict(self.vars),
            "message": self.message,
            "cause": self.cause,
        }
        if self.serial is not None:
            out["serial"] = self.serial
        return out

    @staticmethod
    def from_json(d: Mapping[str, Any]) -> LoopState:
        return LoopState(
            d["status"],
            d["iteration"],
            d.get("vars", {}),
            d.get("message", ""),
            d.get("cause", ""),
            d.get("serial"),
        )

    def after_retry(self) -> LoopState:
        """What a user's retry makes of this loop: failures and upstream skips run again."""
        if self.status == "skipped" and self.cause == "upstream":
            return LoopState("waiting", serial=self.serial)
        if (
            self.status == "failed"
            and self.cause == "error"
            and self.message.startswith("cannot bind")
        ):
            return LoopState("waiting", serial=self.serial)
        if self.status == "failed" and self.cause != "max":
            return LoopState("running", self.iteration, self.vars, serial=self.serial)
        return self


@dataclass(frozen=True)
class WorkState:
    """One work row as the clerk sees it. ``results`` only for works some expression reads."""

    id: int
    name: str
    iteration: int
    status: WorkStatus
    counts: Mapping[JobStatus, int] = field(default_factory=dict)
    results: Sequence[Any] | None = None
    message: str = ""


@dataclass(frozen=True)
class RunState:
    workflow_id: int
    name: str
    status: WorkflowStatus
    params: Mapping[str, Any]
    loops: Mapping[str, LoopState]
    works: Sequence[WorkState]
    finishing: bool = False  # the user said `finish`: start nothing new
    open: bool = False  # works may still be added (Function-as-a-Task): do not end yet
    close_error: str = ""  # whoever closed it says it failed (a workflow function raised)

    def latest(self) -> dict[str, WorkState]:
        out: dict[str, WorkState] = {}
        for w in self.works:
            if w.name not in out or w.iteration > out[w.name].iteration:
                out[w.name] = w
        return out


@dataclass(frozen=True)
class Start:
    work_id: int
    inputs: Mapping[str, Any]  # {"parameters": {...}, "map": {...} | None}


StopCause = Literal["condition", "upstream", "error", "finish"]


@dataclass(frozen=True)
class Stop:
    work_id: int
    status: WorkStatus  # SKIPPED or FAILED
    cause: StopCause
    message: str


# a nested workflow's verdict on its works: run (True), not known yet (None), or end them
Gate = tuple[WorkStatus, StopCause, str] | Literal[True] | None


@dataclass
class Decision:
    """What to write. Empty when nothing changes; the clerk applies and asks again."""

    workflow_status: WorkflowStatus | None = None
    message: str = ""
    start: list[Start] = field(default_factory=list)
    stop: list[Stop] = field(default_factory=list)
    create: list[tuple[str, int]] = field(default_factory=list)  # (work name, iteration)
    loops: dict[str, LoopState] = field(default_factory=dict)  # changed loop states

    def __bool__(self) -> bool:
        return bool(self.workflow_status or self.start or self.stop or self.create or self.loops)


def initial_works(t: Template) -> list[tuple[str, int]]:
    """The work rows a new workflow starts with: every work, loop works at iteration 0."""
    return [(w.name, 0) for w in t.works]


def work_view(w: WorkState | None, many: bool = False) -> dict[str, Any]:
    """A work as expressions see it: ``works.X.status``, ``.outputs``, ``.results``, ``.counts``.

    ``outputs`` is the one job's result for a single-job work, and the list of
    results for a work that maps or lists jobs, whatever their number (0, 1, …),
    so a downstream binding keeps its type when a sweep has one point.
    """
    if w is None:
        empty: Any = [] if many else None
        return {"status": "waiting", "outputs": empty, "results": [], "counts": {}, "iteration": 0}
    results = list(w.results or [])
    return {
        "status": str(w.status),
        "outputs": results if many else (results[0] if results else None),
        "results": results,
        "counts": {str(k): v for k, v in w.counts.items()},
        "iteration": w.iteration,
    }


class Planner:
    """Decides the next step of one workflow. One instance per template, reused."""

    def __init__(self, template: Template, analysis: Analysis, limits: Limits = DEFAULT) -> None:
        self.t = template
        self.a = analysis
        self.limits = limits
        self.specs = {w.name: w for w in template.works}
        # where each work and loop is in the template, for messages: works[0](sim)
        self.where = {w.name: f"works[{i}]({w.name})" for i, w in enumerate(template.works)}
        self.loop_where = {lp.name: f"loops[{i}]({lp.name})" for i, lp in enumerate(template.loops)}
        self.many = {
            w.name
            for w in template.works
            if w.map is not None or w.jobs is not None or w.input is not None
        }
        self.loop_of = {n: lp for lp in template.loops for n in lp.works}  # works and loops
        self.loops = {lp.name: lp for lp in template.loops}
        # nested workflows (core/nested.py): the scope of each work and loop inside one
        self.scopes: Mapping[str, Scope] = analysis.scopes
        self.scope_of = {
            flat: sc.name
            for sc in self.scopes.values()
            for flat in (*sc.works.values(), *sc.loops.values())
        }
        self.inherits = {n: sc.after for sc in self.scopes.values() for n in sc.roots}

    # --- context -------------------------------------------------------------------------

    def context(
        self,
        state: RunState,
        loop: LoopSpec | None = None,
        latest: Mapping[str, WorkState] | None = None,
    ) -> dict[str, Any]:
        """What expressions read: params, workflow, works, loops (and ``loop`` inside one)."""
        latest = state.latest() if latest is None else latest
        ctx: dict[str, Any] = {
            "params": dict(state.params),
            "workflow": {"id": state.workflow_id, "name": state.name},
            "works": {name: work_view(latest.get(name), name in self.many) for name in self.specs},
            "loops": {
                n: {"status": s.status, "iteration": s.iteration, "vars": dict(s.vars)}
                for n, s in state.loops.items()
            },
        }
        if loop is not None:
            ctx["loop"] = _current_loop(state, loop)
        return ctx

    # --- the decision ----------------------------------------------------------------------

    def decide(self, state: RunState) -> Decision:
        d = Decision()
        if state.status == WorkflowStatus.PENDING:
            d.workflow_status = WorkflowStatus.RUNNING
        if state.status not in (WorkflowStatus.PENDING, WorkflowStatus.RUNNING):
            return d
        latest = state.latest()
        failing = self._failing(state, latest)
        ctx = _Contexts(self, state, latest)
        for lp in self.t.loops:
            if lp.name not in d.loops:  # else its outer loop just started it afresh
                self._step_loop(lp, state, latest, failing, d, ctx)
        if d.loops or d.create:
            return d  # loop changes first; the next round sees them
        for name in self.a.order:
            w = latest.get(name)
            if w is not None and w.status == WorkStatus.WAITING:
                self._step_work(self.specs[name], w, state, latest, failing, d, ctx)
        if not d.start and not d.stop:
            self._finish(state, latest, failing, d)
        return d

    def _failing(self, state: RunState, latest: Mapping[str, WorkState]) -> str:
        """Why the workflow must fail (and start nothing new), or '' if it need not.

        Every iteration counts: a loop's earlier failure is not undone by a later pass.
        """
        if state.close_error:
            return state.close_error
        for w in state.works:
            name = w.name
            spec = self.specs[name]
            if w.status in FAILED_WORK and spec.on_failure == "fail":
                return f"work '{name}' {w.status}" + (f": {w.message}" if w.message else "")
            if w.status == WorkStatus.FAILED and w.message.startswith("otherwise"):
                return f"work '{name}': {w.message}"
        for n, ls in state.loops.items():
            if ls.status == "failed":
                return f"loop '{n}' failed: {ls.message}"
        return ""

    def _dep_status(self, dep: str, state: RunState, latest: Mapping[str, WorkState]) -> str:
        ls = state.loops.get(dep)
        if dep in self.a.loops:
            return ls.status if ls else "waiting"
        w = latest.get(dep)
        return str(w.status) if w else "waiting"

    def _step_work(
        self,
        spec: WorkSpec,
        w: WorkState,
        state: RunState,
        latest: Mapping[str, WorkState],
        failing: str,
        d: Decision,
        contexts: _Contexts,
    ) -> None:
        loop = self.loop_of.get(spec.name)
        if loop is not None:
            ls = state.loops.get(loop.name, LoopState())
            if ls.status in ("skipped", "failed", "cancelled") and w.iteration == ls.work_iteration:
                why = f"loop '{loop.name}' {ls.status}" + (f": {ls.message}" if ls.message else "")
                d.stop.append(Stop(w.id, WorkStatus.SKIPPED, "upstream", why))
                return
            if ls.status != "running" or w.iteration != ls.work_iteration:
                return  # the loop decides when (and whether) its works run
        if failing:
            d.stop.append(Stop(w.id, WorkStatus.SKIPPED, "upstream", f"not started: {failing}"))
            return
        if state.finishing:
            d.stop.append(Stop(w.id, WorkStatus.SKIPPED, "finish", FINISHED_BY_USER))
            return
        scope = self.scope_of.get(spec.name)
        gate = self._gate(scope, state, latest, contexts)
        if gate is not True:
            if gate is not None:
                d.stop.append(Stop(w.id, *gate))
            return
        deps = {dep: self._dep_status(dep, state, latest) for dep in spec.after}
        if any(s in UNFINISHED for s in deps.values()):
            return
        if spec.name in self.scopes:
            self._join(spec, w, deps, latest, d)
            return
        inherited = self.inherits.get(spec.name, ())  # waited for; the gate judged them
        ok, why = _trigger_holds(
            spec.trigger, {k: v for k, v in deps.items() if k not in inherited}
        )
        cause: Literal["condition", "upstream"] = "upstream"
        try:
            ctx = contexts.get(loop, scope)
        except InvalidInput as exc:
            d.stop.append(Stop(w.id, WorkStatus.FAILED, "error", f"cannot bind parameters: {exc}"))
            return
        if ok and spec.when is not None:
            try:
                ok = bool(expr.evaluate(spec.when, ctx))
            except ExpressionError as exc:
                d.stop.append(Stop(w.id, WorkStatus.FAILED, "error", f"condition failed: {exc}"))
                return
            why, cause = f"condition `{spec.when}` is false", "condition"
        if not ok:
            if spec.otherwise == "fail":
                d.stop.append(Stop(w.id, WorkStatus.FAILED, cause, f"otherwise fail: {why}"))
            else:
                d.stop.append(Stop(w.id, WorkStatus.SKIPPED, cause, why))
            return
        where, limits = self.where[spec.name], self.limits
        try:
            parameters = expr.interpolate(dict(spec.parameters), ctx, limits, f"{where}.parameters")
            check_args(parameters, limits, f"{where}.parameters")
            inputs = {
                "parameters": parameters,
                "map": expr.interpolate(
                    spec.map.model_dump(exclude_none=True), ctx, limits, f"{where}.map"
                )
                if spec.map
                else None,
            }
        except InvalidInput as exc:
            d.stop.append(Stop(w.id, WorkStatus.FAILED, "error", f"cannot bind parameters: {exc}"))
            return
        d.start.append(Start(w.id, inputs))

    def _gate(
        self,
        scope: str | None,
        state: RunState,
        latest: Mapping[str, WorkState],
        contexts: _Contexts,
    ) -> Gate:
        """Whether the nested workflows around a work or loop run: True; None: not known
        yet; else how the work or loop ends (status, cause, message). A nested workflow
        runs if its work would: its ``after`` ended as its ``trigger`` wants, and its
        ``when`` holds (read in the enclosing scope)."""
        for sc in chain(self.scopes, scope):
            deps = {dep: self._dep_status(dep, state, latest) for dep in sc.after}
            if any(s in UNFINISHED for s in deps.values()):
                return None
            ok, why = (True, "") if sc.inherits else _trigger_holds(sc.spec.trigger, deps)
            cause: StopCause = "upstream"
            if ok and sc.spec.when is not None:
                try:
                    where = contexts.get(self.loop_of.get(sc.name), sc.parent)
                    ok = bool(expr.evaluate(sc.spec.when, where))
                except InvalidInput as exc:
                    return WorkStatus.FAILED, "error", f"nested workflow '{sc.name}': {exc}"
                why, cause = f"condition `{sc.spec.when}` is false", "condition"
            if not ok:
                message = f"nested workflow '{sc.name}' not run: {why}"
                if sc.spec.otherwise == "fail":
                    return WorkStatus.FAILED, cause, f"otherwise fail: {message}"
                return WorkStatus.SKIPPED, cause, message
        return True

    def _join(
        self,
        spec: WorkSpec,
        w: WorkState,
        deps: Mapping[str, str],
        latest: Mapping[str, WorkState],
        d: Decision,
    ) -> None:
        """A nested workflow's work, once all its works and loops ended: its outcome.

        skipped if every one was skipped; failed if one failed or ended partial (a failure
        with ``on_failure: fail`` has already stopped the workflow, so these are failures
        that let it go on: it ends partial); else succeeded."""
        if all(s == "skipped" for s in deps.values()):
            why = next((m.message for n in deps if (m := latest.get(n)) and m.message), "")
            message = why or f"every work of nested workflow '{spec.name}' was skipped"
            d.stop.append(Stop(w.id, WorkStatus.SKIPPED, "upstream", message))
            return
        bad = sorted(n for n, s in deps.items() if s in ("failed", "partial"))
        if bad:
            message = f"nested workflow: {', '.join(bad)} failed"
            d.stop.append(Stop(w.id, WorkStatus.FAILED, "upstream", message))
            return
        d.start.append(Start(w.id, {"parameters": {}, "map": None}))

    def _step_loop(
        self,
        lp: LoopSpec,
        state: RunState,
        latest: Mapping[str, WorkState],
        failing: str,
        d: Decision,
        contexts: _Contexts,
    ) -> None:
        ls = state.loops.get(lp.name, LoopState())
        outer = self.loop_of.get(lp.name)
        if ls.status == "waiting" and outer is not None:
            # a loop inside a loop runs in an iteration of the outer one, or not at all
            os = state.loops.get(outer.name, LoopState())
            if os.status in ("skipped", "failed", "cancelled"):
                why = f"loop '{outer.name}' {os.status}" + (f": {os.message}" if os.message else "")
                cause: LoopCause = "finish" if os.cause == "finish" else "upstream"
                d.loops[lp.name] = replace(ls, status="skipped", message=why, cause=cause)
                return
            if os.status != "running":
                return
        if ls.status == "waiting" and state.finishing and not failing:
            d.loops[lp.name] = replace(
                ls, status="skipped", message=FINISHED_BY_USER, cause="finish"
            )
            return
        scope = self.scope_of.get(lp.name)
        if ls.status == "waiting":
            if failing:
                d.loops[lp.name] = replace(
                    ls, status="skipped", message=f"not started: {failing}", cause="upstream"
                )
                return
            gate = self._gate(scope, state, latest, contexts)
            if gate is None:
                return
            if gate is not True:
                status: LoopStatus = "failed" if gate[0] == WorkStatus.FAILED else "skipped"
                d.loops[lp.name] = LoopState(status, 0, ls.vars, gate[2], "upstream")
                return
            inherited = self.inherits.get(lp.name, ())
            deps = {
                dep: self._dep_status(dep, state, latest) for dep in self.a.needs.get(lp.name, ())
            }
            if any(s in UNFINISHED for s in deps.values()):
                return
            ok, why = _trigger_holds(
                "all_success", {k: v for k, v in deps.items() if k not in inherited}
            )
            if not ok:
                d.loops[lp.name] = replace(ls, status="skipped", message=why, cause="upstream")
                return
            try:
                first = expr.interpolate(
                    dict(lp.variables),
                    contexts.get(None, scope),
                    self.limits,
                    f"{self.loop_where[lp.name]}.variables",
                )
            except InvalidInput as exc:
                d.loops[lp.name] = LoopState(
                    "failed", 0, {}, f"cannot bind variables: {exc}", "error", ls.serial
                )
                return
            d.loops[lp.name] = LoopState("running", 0, first, serial=ls.serial)
            return
        if ls.status != "running":
            return
        if not self._iteration_over(lp, ls, state, latest):
            return
        if failing:
            d.loops[lp.name] = replace(ls, status="failed", message=failing, cause="upstream")
            return
        if state.finishing:
            d.loops[lp.name] = replace(ls, status=SUCCESS, message=FINISHED_BY_USER, cause="finish")
            return
        try:
            ctx = contexts.get(lp, scope)
            done = bool(expr.evaluate(lp.until, ctx))
            if done:
                d.loops[lp.name] = replace(
                    ls, status=SUCCESS, message=f"`{lp.until}` held at iteration {ls.iteration}"
                )
                return
            if ls.iteration + 1 >= lp.max_iterations:
                status = "succeeded" if lp.on_max_iterations == "succeed" else "failed"
                msg = f"reached max_iterations={lp.max_iterations} without `{lp.until}`"
                d.loops[lp.name] = replace(ls, status=status, message=msg, cause="max")
                return
            new_vars = dict(ls.vars)
            for var, text in lp.next.items():
                where = f"{self.loop_where[lp.name]}.next.{var}"
                new_vars[var] = expr.evaluate(text, ctx, self.limits, where)
        except InvalidInput as exc:
            d.loops[lp.name] = replace(ls, status="failed", message=str(exc), cause="error")
            return
        serial = None if ls.serial is None else ls.serial + 1
        d.loops[lp.name] = LoopState("running", ls.iteration + 1, new_vars, serial=serial)
        self._new_rows(lp, ls.work_iteration + 1, state, d)

    def _new_rows(self, lp: LoopSpec, row: int, state: RunState, d: Decision) -> None:
        """Create the rows of an iteration of ``lp`` (numbered ``row``); each loop inside
        it starts afresh (waiting, its first variables), its works' rows numbered on."""
        for name in lp.works:
            inner = self.loops.get(name)
            if inner is None:
                d.create.append((name, row))
                continue
            again = state.loops.get(name, LoopState()).work_iteration + 1
            d.loops[name] = LoopState("waiting", serial=again)
            self._new_rows(inner, again, state, d)

    def _iteration_over(
        self, lp: LoopSpec, ls: LoopState, state: RunState, latest: Mapping[str, WorkState]
    ) -> bool:
        """Whether every work of this iteration has ended, and every loop in it (with all
        the works in those, to the last of their iterations)."""
        for name in lp.works:
            if name in self.loops:
                if not self._settled(self.loops[name], state, latest):
                    return False
                continue
            w = latest.get(name)
            if w is None or w.iteration != ls.work_iteration:
                return False  # this iteration's works are being created
            if w.status not in TERMINAL_WORK:
                return False
        return True

    def _settled(self, lp: LoopSpec, state: RunState, latest: Mapping[str, WorkState]) -> bool:
        ls = state.loops.get(lp.name)
        if ls is None or ls.status in ("waiting", "running"):
            return False
        for name in lp.works:
            if name in self.loops:
                if not self._settled(self.loops[name], state, latest):
                    return False
            elif (w := latest.get(name)) is None or w.status not in TERMINAL_WORK:
                return False
        return True

    def _finish(
        self, state: RunState, latest: Mapping[str, WorkState], failing: str, d: Decision
    ) -> None:
        if any(w.status not in TERMINAL_WORK for w in state.works):
            return  # every iteration: a retry may have re-opened an earlier one
        if any(ls.status in ("waiting", "running") for ls in state.loops.values()):
            return
        if len(state.loops) < len(self.t.loops):
            return
        if state.open and not failing:
            return  # more works may come: whoever adds them closes it
        if failing:
            d.workflow_status, d.message = WorkflowStatus.FAILED, failing
        elif any(w.status in FAILED_WORK for w in state.works):
            bad = sorted({w.name for w in state.works if w.status in FAILED_WORK})
            d.workflow_status = WorkflowStatus.PARTIAL
            d.message = f"works {', '.join(bad)} failed (on_failure: continue)"
            note = skipped_note(state.works)
            d.message += f"; {note}" if note else ""
        else:
            # succeeded, yet some works may not have run (a branch not taken, and what
            # depends on it): the message says which, and why
            d.workflow_status, d.message = WorkflowStatus.SUCCEEDED, skipped_note(state.works)


def _current_loop(state: RunState, loop: LoopSpec) -> dict[str, Any]:
    ls = state.loops.get(loop.name, LoopState())
    return {"name": loop.name, "iteration": ls.iteration, "vars": dict(ls.vars)}


class _Contexts:
    """The expression context of one decision, built once when first needed: it holds a
    view of every work, so building it for each work that starts would make a decision
    O(works²). Expressions only read it (bound values are copied out)."""

    def __init__(self, planner: Planner, state: RunState, latest: Mapping[str, WorkState]):
        self._planner, self._state, self._latest = planner, state, latest
        self._base: dict[str, Any] | None = None

        self._scopes: dict[str, dict[str, Any]] = {}

    def get(self, loop: LoopSpec | None = None, scope: str | None = None) -> dict[str, Any]:
        """The context at the top, or inside nested workflow ``scope`` (raises
        InvalidInput if the parameters it is given cannot be bound)."""
        if self._base is None:
            self._base = self._planner.context(self._state, None, self._latest)
        base = self._base if scope is None else self._scope(scope)
        if loop is None:
            return base
        current = _current_loop(self._state, loop)
        if scope is not None and loop.name.startswith(scope + "."):
            current["name"] = loop.name[len(scope) + 1 :]
        return {**base, "loop": current}

    def _scope(self, name: str) -> dict[str, Any]:
        """A nested workflow's context: its own works, loops and parameters."""
        found = self._scopes.get(name)
        if found is not None:
            return found
        sc = self._planner.scopes[name]
        outer = self.get(self._planner.loop_of.get(sc.name), sc.parent)  # its work's scope
        where = f"{sc.where}.parameters"
        given = expr.interpolate(dict(sc.spec.parameters), outer, self._planner.limits, where)
        base = self._base or {}
        found = {
            "params": {**sc.defaults, **given},
            "workflow": base["workflow"],
            "works": {n: base["works"][flat] for n, flat in sc.works.items()},
            "loops": {
                n: base["loops"][flat] for n, flat in sc.loops.items() if flat in base["loops"]
            },
        }
        self._scopes[name] = found
        return found


def _trigger_holds(trigger: str, deps: Mapping[str, str]) -> tuple[bool, str]:
    """Whether the end states of the `after` works let a work run, and why not.

    A ``partial`` work (some of its jobs succeeded, some failed) counts as a success for
    ``one_success`` (there are results to use) and as a failure for ``one_failed``; it is
    not a success for ``all_success``.
    """
    if not deps:
        return True, ""
    some_good = [n for n, s in deps.items() if s in (SUCCESS, "partial")]
    bad = [n for n, s in deps.items() if s in ("failed", "partial")]
    not_ok = ", ".join(f"{n} {s}" for n, s in deps.items() if s != SUCCESS)
    every = ", ".join(f"{n} {s}" for n, s in deps.items())
    if trigger == "all_success":
        return not not_ok, f"upstream {not_ok}: trigger all_success needs all to succeed"
    if trigger == "one_success":
        return bool(some_good), f"no upstream succeeded ({every}): trigger one_success"
    if trigger == "one_failed":
        return bool(bad), f"no upstream failed ({every}): trigger one_failed"
    return True, ""  # all_done


SKIPPED_SHOWN = 5  # skipped works a workflow's final message names, with their reasons


def skipped_note(works: Sequence[WorkState]) -> str:
    """Which works were skipped and why (latest iterations), for the message of a workflow
    that ends without failing: ``skipped: b (condition `x` is false); c (upstream b ...)``."""
    latest: dict[str, WorkState] = {}
    for w in works:
        if w.name not in latest or w.iteration > latest[w.name].iteration:
            latest[w.name] = w
    skipped = [w for w in latest.values() if w.status == WorkStatus.SKIPPED]
    if not skipped:
        return ""
    shown = [f"{w.name} ({w.message or 'skipped'})" for w in skipped[:SKIPPED_SHOWN]]
    more = len(skipped) - SKIPPED_SHOWN
    return "skipped: " + "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
