"""The declarative workflow template: its structure, its JSON Schema, and how to load one.

A template is YAML or JSON. Its structure is checked here (types, required and
unknown fields); what depends on several parts at once (references, cycles,
loops, job-level parents) is checked in :mod:`orchid.core.validate`. Both report
every problem with the path of the offending field, through
:class:`~orchid.errors.TemplateError`.
"""

from __future__ import annotations

import json
import math
import shlex
from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from orchid.core.hpo import HpoSpec
from orchid.core.jsonvalues import MAX_DEPTH, TOO_DEEP
from orchid.core.retry import MAX_INTERVAL, RetryPolicy
from orchid.errors import TemplateError

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_\-]{0,99}$"
Name = Annotated[str, Field(pattern=NAME_PATTERN, description="letters, digits, _ and -")]
JOB_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.:+\-]{0,199}$"
MAX_RETRY_DELAY = 30 * 86400.0  # the longest `retry_max_delay`: 30 days
JobName = Annotated[
    str, Field(pattern=JOB_NAME_PATTERN, description="letters, digits and _ . : + - (no '/')")
]
JSONValue = Any

Trigger = Literal["all_success", "all_done", "one_success", "one_failed"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Resources(_Model):
    """What each job of the work asks of the machine."""

    cores: int = Field(1, ge=1)
    memory_mb: int | None = Field(None, ge=1)
    gpus: int = Field(0, ge=0)
    walltime: float | None = Field(None, gt=0, description="seconds before the job is killed")
    queue: str | None = None


class MapSpec(_Model):
    """How one work becomes many jobs: exactly one of ``items``, ``product`` or ``zip``.

    Lists may be literal or a ``${...}`` binding that yields a list at run time.
    """

    items: list[dict[str, JSONValue]] | str | None = Field(
        None, description="one job per item; each item is a dict of job arguments"
    )
    product: dict[str, list[JSONValue] | str] | None = Field(
        None, description="one job per combination of the lists (a parameter sweep)"
    )
    zip: dict[str, list[JSONValue] | str] | None = Field(
        None, description="one job per position; the lists must have the same length"
    )


class StaticJob(_Model):
    """A job named in the template (job-level DAG). ``parents`` are ``job`` or ``work/job``."""

    name: JobName
    args: dict[str, JSONValue] = Field(default_factory=dict)
    parents: list[str] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _share_gil(cls, value: Any) -> Any:
        # a Python call per job: a work may list 10^6, and pydantic checks them in one C
        # call that would hold the GIL (and a server's event loop) for seconds without it
        return value


class InputSpec(_Model):
    """A work's input: collections of a data manager, processed file by file as they arrive.

    The work's jobs are made from the files: one job per ``files_per_job`` files, each with
    the arguments ``collection``, ``files`` and ``urls`` (and ``file``, ``url`` when a job
    takes one file), besides the work's ``parameters``.
    """

    manager: Name = Field(description="the name of a configured data manager (tapesim, posix, ...)")
    collections: list[str] = Field(
        min_length=1,
        description="the collections to process: 'scope:name' (a dataset), or a folder path",
    )
    release: Literal["per-file", "per-collection"] = Field(
        "per-file",
        description="per-file: a job starts as soon as its files are on disk; per-collection: "
        "only once every file of the collection is",
    )
    files_per_job: int = Field(1, ge=1, le=100_000, description="files each job processes")
    delete_after: Literal["processed"] | None = Field(
        None, description="processed: release each file from disk once its job succeeded"
    )
    retries: int = Field(3, ge=0, le=100, description="extra staging attempts per failed file")

    @model_validator(mode="before")
    @classmethod
    def _one_collection(cls, value: Any) -> Any:
        if isinstance(value, dict) and "collection" in value:
            if "collections" in value:
                raise ValueError("give `collection` or `collections`, not both")
            value = {**value, "collections": [value["collection"]]}
            del value["collection"]
        return value


class WorkSpec(_Model):
    """One unit of the graph: a payload run by one job, or by many (``map``, ``jobs``)."""

    name: Name
    description: str = ""
    command: list[str] | None = Field(
        None, description="argv; items may hold {arg} placeholders. A string is split like a shell"
    )
    function: str | None = Field(
        None,
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="'package.module:function', called with the job's arguments",
    )
    noop: bool = Field(False, description="run nothing; each job succeeds at once")
    workflow: NestedWorkflow | None = Field(
        None,
        description="a nested workflow run as this work (its works, loops and parameters); "
        "`parameters` then give its parameters",
    )
    parameters: dict[str, JSONValue] = Field(
        default_factory=dict, description="arguments of every job; values may use ${...} bindings"
    )
    map: MapSpec | None = None
    jobs: list[StaticJob] | Literal["from_file"] | None = Field(
        None,
        description="explicit jobs with explicit parents (a job-level DAG), or 'from_file' "
        "to take them from the template's jobs_file",
    )
    input: InputSpec | None = Field(
        None, description="collections of a data manager whose files become the work's jobs"
    )
    after: list[Name] = Field(
        default_factory=list, description="works or loops that must end before this one starts"
    )
    trigger: Trigger = Field(
        "all_success", description="which end states of the `after` works let this work run"
    )
    when: str | None = Field(None, description="a condition; the work runs only if it holds")
    otherwise: Literal["skip", "fail"] = Field(
        "skip",
        description="if trigger or condition do not hold: skip the work or fail the workflow",
    )
    on_failure: Literal["fail", "continue"] = Field(
        "fail",
        description="fail: the workflow fails and starts nothing new; continue: it goes on "
        "and ends partial",
    )
    retries: int | None = Field(None, ge=0, le=100, description="extra attempts per failed job")
    retry_delay: float | None = Field(
        None,
        ge=0,
        allow_inf_nan=False,
        description="seconds before the first retry; each next wait is `retry_backoff` "
        "times longer, up to `retry_max_delay`",
    )
    retry_backoff: float | None = Field(
        None, ge=1, le=100, description="how many times longer each retry waits (default 2)"
    )
    retry_max_delay: float | None = Field(
        None,
        ge=0,
        le=MAX_RETRY_DELAY,
        description="the longest wait before a retry, in seconds (default 3600)",
    )
    resources: Resources = Resources()
    env: dict[str, str] = Field(
        default_factory=dict, description="environment of the jobs; values may hold {arg}"
    )
    api_token: bool = Field(
        False,
        description="give each job a token for Orchid's REST API (ORCHID_TOKEN in its "
        "environment): it acts as the workflow's owner, on this workflow only, while the "
        "attempt runs (Function-as-a-Task jobs fetch their code and report with it)",
    )
    hpo: HpoSpec | None = Field(
        None, description="hyperparameter optimisation: the payload runs once per trial"
    )
    executor: Name | None = Field(
        None,
        description="the executor its jobs run on: a name from the settings file "
        "([executors.NAME]), or local/null; default: defaults.executor, else the agents' own",
    )

    @field_validator("command", mode="before")
    @classmethod
    def _split_command(cls, value: Any) -> Any:
        if isinstance(value, str):
            try:
                return shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split the command like a shell would: {exc}") from exc
        return value


class LoopSpec(_Model):
    """Repeat a sub-graph of works until a condition holds or ``max_iterations`` is reached."""

    name: Name
    works: list[Name] = Field(
        min_length=1,
        description="the works repeated each iteration, and loops run to their end in each",
    )
    until: str = Field(description="condition checked after each iteration; true ends the loop")
    max_iterations: int = Field(ge=1, le=10_000)
    variables: dict[str, JSONValue] = Field(
        default_factory=dict, description="loop variables of the first iteration (loop.vars.X)"
    )
    next: dict[str, str] = Field(
        default_factory=dict,
        description="expressions giving each variable's value for the next iteration",
    )
    on_max_iterations: Literal["succeed", "fail"] = Field(
        "succeed", description="how the loop ends if `until` never held"
    )
    after: list[Name] = Field(default_factory=list)


class NestedWorkflow(_Model):
    """A workflow inside a work (``workflow:``): its works and loops run as part of the outer
    workflow, named ``<work>.<inner work>``; its expressions read its own works and
    parameters, which the nested work's ``parameters`` set (see docs/templates.md)."""

    description: str = ""
    parameters: dict[str, JSONValue] = Field(
        default_factory=dict, description="its parameters and defaults (params.X inside it)"
    )
    works: list[WorkSpec] = Field(min_length=1)
    loops: list[LoopSpec] = Field(default_factory=list)


WorkSpec.model_rebuild()


class Defaults(_Model):
    """Values every work takes unless it says otherwise."""

    retries: int = Field(0, ge=0, le=100)
    retry_delay: float = Field(1.0, ge=0, allow_inf_nan=False)
    retry_backoff: float = Field(2.0, ge=1, le=100)
    retry_max_delay: float = Field(MAX_INTERVAL, ge=0, le=MAX_RETRY_DELAY)
    executor: Name | None = Field(None, description="the executor of works that name none")


class Template(_Model):
    """A workflow: works, their dependencies, conditions, loops and parameters."""

    name: Name
    description: str = ""
    parameters: dict[str, JSONValue] = Field(
        default_factory=dict, description="workflow parameters and defaults (params.X)"
    )
    open: bool = Field(
        False,
        description="works are added while it runs (Function-as-a-Task: POST "
        "/workflows/{id}/works); it does not end before it is closed (POST .../close)",
    )
    priority: int = Field(
        0,
        ge=-1000,
        le=1000,
        description="among one user's workflows waiting for slots, higher goes first "
        "(fair share orders users; `orchid submit --priority` overrides it)",
    )
    defaults: Defaults = Defaults()
    works: list[WorkSpec] = Field(description="at least one, unless the workflow is `open`")
    loops: list[LoopSpec] = Field(default_factory=list)
    jobs_file: str | None = Field(
        None,
        description="JSON lines of static jobs: {work, name, args, parents}, for large job DAGs",
    )

    @field_validator("works")
    @classmethod
    def _some_work(cls, works: list[WorkSpec], info: ValidationInfo) -> list[WorkSpec]:
        if not works and not info.data.get("open"):
            raise ValueError(
                "List should have at least 1 item (only an `open: true` workflow may start "
                "with none, and have works added while it runs)"
            )
        return works

    # Lookups by name, built once per template: a template of 10^5 works is asked about
    # each of its works, and a scan per question would make that 10^10 comparisons.

    @cached_property
    def works_by_name(self) -> Mapping[str, WorkSpec]:
        """Each work by name (the first of a repeated name: validation refuses repeats)."""
        out: dict[str, WorkSpec] = {}
        for w in self.works:
            out.setdefault(w.name, w)
        return MappingProxyType(out)

    @cached_property
    def _loop_of(self) -> Mapping[str, LoopSpec]:
        out: dict[str, LoopSpec] = {}
        for lp in self.loops:
            for name in lp.works:
                out.setdefault(name, lp)
        return out

    @cached_property
    def _loops_by_name(self) -> Mapping[str, LoopSpec]:
        out: dict[str, LoopSpec] = {}
        for lp in self.loops:
            out.setdefault(lp.name, lp)
        return out

    @cached_property
    def positions(self) -> Mapping[int, int]:
        """Where each work and loop object stands in its list, by identity (two works may
        be equal or share a name in a template with mistakes): for naming fields."""
        out = {id(w): i for i, w in enumerate(self.works)}
        out.update({id(lp): i for i, lp in enumerate(self.loops)})
        return MappingProxyType(out)

    def work(self, name: str) -> WorkSpec:
        found = self.works_by_name.get(name)
        if found is None:
            raise KeyError(f"template {self.name!r} has no work {name!r}")
        return found

    def loop_of(self, work_name: str) -> LoopSpec | None:
        return self._loop_of.get(work_name)

    def loops_by_name(self) -> Mapping[str, LoopSpec]:
        return MappingProxyType(self._loops_by_name)

    def static_works(self) -> list[WorkSpec]:
        """Works whose jobs are listed up front (inline or in the jobs file)."""
        return [w for w in self.works if w.jobs is not None]


# A work's own keys win over the template's ``defaults`` (retries, their delays, the
# executor): a domain rule, merged here once for the engine, the API and the CLI.
def retry_policy(t: Template, work: str) -> RetryPolicy:
    """A work's retry policy: its own ``retries``/``retry_*`` keys, else ``defaults``."""
    spec, d = t.work(work), t.defaults

    def pick(own: Any, default: Any) -> Any:
        return default if own is None else own

    return RetryPolicy(
        initial_interval=pick(spec.retry_delay, d.retry_delay),
        backoff_coefficient=pick(spec.retry_backoff, d.retry_backoff),
        maximum_interval=pick(spec.retry_max_delay, d.retry_max_delay),
        maximum_attempts=1 + pick(spec.retries, d.retries),
    )


def executor_of(t: Template, work: str) -> str | None:
    """The executor a work names, else ``defaults.executor``; None: the agents' default."""
    return t.work(work).executor or t.defaults.executor


def json_schema() -> dict[str, Any]:
    """The published JSON Schema of templates (``orchid schema``)."""
    schema = Template.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Orchid workflow template"
    return schema


def _loc(loc: tuple[int | str, ...], raw: Any) -> str:
    """``('works', 1, 'retries')`` → ``works[1](simulate).retries``: name the work too."""
    out = ""
    node = raw
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            try:
                node = node[part]
                if isinstance(node, dict) and isinstance(node.get("name"), str):
                    out += f"({node['name']})"
            except (IndexError, KeyError, TypeError):
                node = None
        else:
            out += f".{part}" if out else part
            node = node.get(part) if isinstance(node, dict) else None
    return out


def _message(err: Any) -> str:
    kind = err["type"]
    got = err.get("input")
    shown = json.dumps(got, default=str)[:60] if got is not None else "nothing"
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return "is not a known field (check the spelling; `orchid schema` lists the fields)"
    return f"{err['msg'][0].lower()}{err['msg'][1:]}; got {shown}"


def _is_field(part: int | str) -> bool:
    """Pydantic puts union members ("list[StaticJob]", "literal['from_file']") in locations."""
    return isinstance(part, int) or (not any(c in part for c in "[]'-") and part not in _TYPE_NAMES)


def error_field(loc: tuple[int | str, ...]) -> str:
    """A pydantic error location as a dotted field path, without union member names."""
    return ".".join(str(p) for p in loc if _is_field(p))


_TYPE_NAMES = frozenset({"str", "int", "float", "bool", "dict", "list"})


def parse_template(raw: Any) -> Template:
    """Check the structure of a decoded template; raise TemplateError listing every problem."""
    if not isinstance(raw, dict):
        kind = type(raw).__name__
        raise TemplateError(
            [("", f"a template is a mapping with `name` and `works`; got a {kind}")]
        )
    try:
        return Template.model_validate(raw)
    except ValidationError as exc:
        by_path: dict[str, list[str]] = {}
        for err in exc.errors():
            path = _loc(tuple(p for p in err["loc"] if _is_field(p)), raw)
            msg = _message(err)
            if msg not in by_path.setdefault(path, []):
                by_path[path].append(msg)
        # a union that failed on every member: keep the member that got furthest in
        deeper = {p for p in by_path for q in by_path if q != p and q.startswith(p + ".")}
        deeper |= {p for p in by_path for q in by_path if q != p and q.startswith(p + "[")}
        problems = [(p, "; or ".join(m)) for p, m in by_path.items() if p not in deeper]
        # and what can be checked without a valid model: every problem in one pass
        from orchid.core.rawcheck import raw_problems

        given = set(problems)
        problems += [x for x in raw_problems(raw) if x not in given]
        raise TemplateError(problems) from None


MAX_TEMPLATE_BYTES = 64 * 1024 * 1024
MAX_TEMPLATE_VALUES = 2_000_000  # after YAML aliases are expanded


class _Loader(yaml.SafeLoader):
    """Safe YAML that refuses duplicate keys instead of silently keeping the last one."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping", mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


# dates stay text: YAML would turn 2026-11-22 into a date, which JSON cannot hold
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def decode(text: str, source: str = "<template>") -> Any:
    """Decode YAML (a superset of JSON) with a message that points at the line.

    Refuses what could exhaust the server: texts over 64 MiB, nesting too deep
    for a parser, and alias "bombs" that expand to millions of values.
    """
    if len(text) > MAX_TEMPLATE_BYTES:
        raise TemplateError([(source, "is larger than 64 MiB; put large job lists in a jobs_file")])
    try:
        value = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(exc, "problem", None) or str(exc)
        raise TemplateError([(source, f"not valid YAML/JSON at {where}: {problem}")]) from None
    except RecursionError:
        raise TemplateError([(source, "is nested too deeply to read")]) from None
    if value is None:
        raise TemplateError([(source, "is empty; a template needs at least `name` and `works`")])
    check_values(value, source)
    return value


NUL = (
    "holds a NUL character (\\u0000), which no command line, environment variable or "
    "database text can hold; remove it"
)


def nul_path(value: Any, source: str = "") -> str | None:
    """Where the first text holding a NUL character is in ``value``, after ``source``
    (``works[0](a).command[1]``, ``params.x[1]``); None if no text holds one."""
    stack: list[tuple[Any, tuple[int | str, ...]]] = [(value, ())]
    while stack:
        node, loc = stack.pop()
        if isinstance(node, str) and "\x00" in node:
            break
        if isinstance(node, dict):
            key = next((k for k in node if isinstance(k, str) and "\x00" in k), None)
            if key is not None:
                loc += (key.replace("\x00", "\\u0000"),)
                break
            stack.extend((v, (*loc, k)) for k, v in reversed(node.items()))
        elif isinstance(node, list):
            stack.extend((v, (*loc, i)) for i, v in reversed(list(enumerate(node))))
    else:
        return None
    where = _loc(loc, value)
    if source and source != "template":
        return f"{source}{'.' if where and not where.startswith('[') else ''}{where}"
    return where or source


def check_values(value: Any, source: str) -> None:
    """Refuse what is not JSON (dates, binary, sets, NaN, non-text keys), text with a NUL
    character, values nested more than ``MAX_DEPTH`` deep, and more than
    ``MAX_TEMPLATE_VALUES`` values as a reader would see them (aliases expanded)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    count = 0
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_TEMPLATE_VALUES:
            raise TemplateError(
                [
                    (
                        source,
                        f"holds more than {MAX_TEMPLATE_VALUES:,} values (YAML aliases count "
                        "each time they are used); put large job lists in a jobs_file",
                    )
                ]
            )
        if isinstance(node, dict | list) and depth >= MAX_DEPTH:
            raise TemplateError([(source, TOO_DEEP)])
        if isinstance(node, dict):
            bad = next((k for k in node if not isinstance(k, str)), None)
            if bad is not None:
                raise TemplateError(
                    [(source, f"mapping keys must be text; got {bad!r} (quote it: '{bad}')")]
                )
            if any("\x00" in k for k in node):
                raise TemplateError([(nul_path(value, source) or source, NUL)])
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, str):
            if "\x00" in node:
                raise TemplateError([(nul_path(value, source) or source, NUL)])
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise TemplateError([(source, "holds NaN or infinity, which JSON cannot hold")])
        elif not isinstance(node, str | int | float | bool) and node is not None:
            kind = type(node).__name__
            raise TemplateError(
                [
                    (
                        source,
                        f"holds a {kind} value ({str(node)[:40]!r}); templates hold JSON "
                        "values only: text, numbers, true/false, null, lists and mappings",
                    )
                ]
            )
