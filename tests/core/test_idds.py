"""iDDS requests read as data: the allow-list, and the translation into Orchid templates.

The descriptions are built here in the shape the iDDS 2.6 client sends (the DictClass
encoding: class, module, attributes); tests/idds checks the same against the real client.
"""

from __future__ import annotations

import base64
import contextlib
import json
import zlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchid.core.idds import (
    IddsError,
    check_classes,
    job_name,
    translate_request,
    translate_transform,
    work_name,
)
from orchid.core.template import parse_template
from orchid.core.validate import analyse
from orchid.errors import InvalidInput


def obj(module: str, cls: str, **attributes: Any) -> dict[str, Any]:
    return {"class": cls, "module": module, "attributes": attributes}


def enum(cls: str, name: str, value: int) -> dict[str, Any]:
    return obj("idds.common.constants", cls, _value_=value, _name_=name, _sort_order_=value)


def packed(value: Any) -> str:
    return "idds_zip:" + base64.b64encode(zlib.compress(json.dumps(value).encode())).decode()


def doma(task: str, deps: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
    return obj(
        "idds.doma.workflowv2.domapandawork",
        "DomaPanDAWork",
        task_name=task,
        executable="echo",
        arguments="run ${IN/L}",
        _dependency_map=packed(deps),
        core_count=1,
        num_retries=0,
        **more,
    )


def request(works: dict[str, Any], conditions: dict[str, Any] | None = None) -> dict[str, Any]:
    base = obj(
        "idds.workflowv2.workflow",
        "WorkflowBase",
        _works=works,
        _conditions=conditions or {},
        _name="rubin_run",
        _metadata=obj("idds.common.dict_class", "DictMetadata", works={}),
    )
    wf = obj("idds.workflowv2.workflow", "Workflow", template=base)
    return {
        "request_type": enum("RequestType", "Workflow", 0),
        "scope": "workflow",
        "name": "rubin_run",
        "request_metadata": {"version": "2.6.21", "workflow": wf},
    }


def job(name: str, *parents: tuple[str, str]) -> dict[str, Any]:
    deps = [{"task": t, "inputname": n, "available": False} for t, n in parents]
    return {"name": name, "order_id": 0, "dependencies": deps, "submitted": False}


def three_steps() -> dict[str, Any]:
    return request(
        {
            "a1": doma("step1", [job("j1"), job("j2")]),
            "a2": doma("step2", [job("k1", ("step1", "j1"), ("step1", "j2"))]),
            "a3": doma("step3", [job("m1", ("step2", "k1")), job("m2", ("step3", "m1"))]),
        }
    )


def test_a_doma_workflow_becomes_a_job_level_dag_across_works() -> None:
    t = translate_request(three_steps())
    analyse(parse_template(t))  # an ordinary, valid template
    works = {w["name"]: w for w in t["works"]}
    assert list(works) == ["step1", "step2", "step3"]
    assert works["step1"]["command"] == ["echo", "run", "{input}"]
    assert works["step2"]["jobs"] == [
        {"name": "k1", "args": {"input": "k1"}, "parents": ["step1/j1", "step1/j2"]}
    ]
    # a parent in the same task is named without its work
    assert works["step3"]["jobs"][1]["parents"] == ["m1"]
    assert works["step3"]["retries"] == 0


def transform(work: Any) -> dict[str, Any]:
    """What ClientManager.submit_work posts."""
    return {
        "transform_type": enum("TransformType", "Workflow", 2),
        "transform_tag": "work",
        "name": "late",
        "token": None,
        "status": enum("TransformStatus", "New", 0),
        "transform_metadata": {"version": "2.6.21", "work": work},
    }


def test_a_request_is_open_only_when_its_workflow_says_so() -> None:
    assert "open" not in translate_request(three_steps())
    body = three_steps()
    body["request_metadata"]["workflow"]["attributes"]["open"] = True
    assert translate_request(body)["open"] is True
    # an open request may start with no works at all
    body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]["_works"] = {}
    assert translate_request(body)["works"] == []


def test_an_added_work_waits_for_the_works_its_jobs_depend_on() -> None:
    t = translate_request(three_steps())
    deps = [job("n1", ("step1", "j2"), ("step3", "m2")), job("n2", ("late", "n1"))]
    w = translate_transform(transform(doma("late", deps)), t)
    # jobs of an added work have parents only in it: it waits for those works instead
    assert w["after"] == ["step1", "step3"] and w["trigger"] == "all_success"
    assert w["jobs"] == [
        {"name": "n1", "args": {"input": "n1"}, "parents": []},
        {"name": "n2", "args": {"input": "n2"}, "parents": ["n1"]},
    ]
    grown = {**t, "works": [*t["works"], w]}
    analyse(parse_template(grown))  # what engine/extend.py then checks


@pytest.mark.parametrize(
    ("deps", "message"),
    [
        ([job("n1", ("step1", "zz"))], "depends on 'zz' of task step1, which has no such job"),
        ([job("n1", ("nowhere", "j1"))], "task 'nowhere' is not a work of this workflow"),
    ],
)
def test_an_added_work_naming_what_is_not_there_is_refused(
    deps: list[dict[str, Any]], message: str
) -> None:
    with pytest.raises(IddsError, match=message):
        translate_transform(transform(doma("late", deps)), translate_request(three_steps()))


def test_an_added_work_is_read_as_data_too() -> None:
    t = translate_request(three_steps())
    with pytest.raises(IddsError, match=r"class os\.system is not supported"):
        translate_transform(transform(doma("late", [job("x")], extra=obj("os", "system"))), t)
    with pytest.raises(IddsError, match=r"transform_metadata\.work is missing"):
        translate_transform({"name": "late"}, t)
    nested = transform(three_steps()["request_metadata"]["workflow"])
    with pytest.raises(IddsError, match="a Workflow nested as a work"):
        translate_transform(nested, t)


@pytest.mark.parametrize(
    ("module", "cls"),
    [("os", "system"), ("subprocess", "Popen"), ("builtins", "eval"), ("pickle", "loads")],
)
def test_a_class_off_the_allow_list_is_refused_by_name_wherever_it_is(
    module: str, cls: str
) -> None:
    body = three_steps()
    evil = obj(module, cls, args=["touch /tmp/pwned"])
    body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]["x"] = evil
    with pytest.raises(IddsError, match=rf"class {module}\.{cls} is not supported"):
        translate_request(body)
    # as a work, too, and as a request's own field
    with pytest.raises(IddsError, match=rf"{module}\.{cls}"):
        translate_request(request({"w": evil}))
    with pytest.raises(IddsError, match=rf"{module}\.{cls}"):
        check_classes({"status": evil})


def test_an_unknown_iDDS_class_is_named_with_why() -> None:
    es_work = obj("idds.doma.workflowv2.domapandaeswork", "DomaPanDAESWork")
    with pytest.raises(IddsError, match=r"DomaPanDAESWork is not supported.*event service"):
        translate_request(request({"w": es_work}))


def test_a_half_named_class_is_refused() -> None:
    with pytest.raises(IddsError, match="without module"):
        check_classes({"x": {"class": "Popen", "attributes": {}}})


def generic(executable: str) -> dict[str, Any]:
    return obj("idds.workflowv2.work", "Work", executable=executable, arguments="")


def sub_workflow(cls: str, name: str, works: dict[str, Any], **more: Any) -> dict[str, Any]:
    base = obj("idds.workflowv2.workflow", "WorkflowBase", _works=works, _name=name, **more)
    return obj("idds.workflowv2.workflow", cls, template=base)


@pytest.mark.parametrize("cls", ["Workflow", "SubWorkflow", "LoopWorkflow"])
def test_a_workflow_nested_as_a_work_becomes_a_nested_workflow(cls: str) -> None:
    inner = sub_workflow(
        cls,
        "inner",
        {"i1": generic("true"), "i2": doma("s", [job("j1"), job("j2", ("s", "j1"))])},
        _conditions={"c": cond("is_finished", "i1", ["i2"])},
    )
    body = request(
        {"a": generic("true"), "w": inner, "z": generic("true")},
        {"c1": cond("is_finished", "a", ["w"]), "c2": cond("is_failed", "w", ["z"])},
    )
    t = translate_request(body)
    a = analyse(parse_template(t))  # a valid template, expanded for the engine
    works = {w["name"]: w for w in t["works"]}
    assert list(works) == ["work_a", "inner", "work_z"]
    nested = works["inner"]
    assert nested["after"] == ["work_a"] and nested["description"] == f"iDDS {cls}"
    inside = {w["name"]: w for w in nested["workflow"]["works"]}
    assert list(inside) == ["work_i1", "s"]
    assert inside["s"]["after"] == ["work_i1"]
    assert inside["s"]["jobs"][1]["parents"] == ["j1"]
    # z runs if the nested workflow failed: its works' failures must not end the workflow
    assert works["work_z"] == {**works["work_z"], "after": ["inner"], "trigger": "one_failed"}
    assert {w.get("on_failure") for w in inside.values()} == {"continue"}
    assert "on_failure" not in nested
    assert a.order == ("work_a", "inner.work_i1", "inner.s", "inner", "work_z")


def test_a_nested_workflow_with_a_loop_condition() -> None:
    """A loop inside a nested workflow translates; inside an outer loop it is a loop
    inside that loop."""
    inner = sub_workflow(
        "SubWorkflow", "again", {"i": generic("true")}, _loop_condition=cond("is_finished", "i", [])
    )
    body = request({"w": inner})
    t = translate_request(body)
    (nested,) = t["works"]
    (loop,) = nested["workflow"]["loops"]
    assert loop["works"] == ["work_i"]
    analyse(parse_template(t))
    top = body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]
    top["_loop_condition"] = cond("is_finished", "w", [])
    t = translate_request(body)
    assert t["loops"][0]["works"] == ["again"]
    flat = analyse(parse_template(t)).flat
    assert flat is not None
    loops = {lp.name: lp.works for lp in flat.loops}
    assert loops == {"again.idds_loop": ["again.work_i"], "idds_loop": ["again.idds_loop", "again"]}
    # the loops inside loops share MAX_NESTED_ITERATIONS: 1,000 outside, 100 inside
    bounds = {lp.name: lp.max_iterations for lp in flat.loops}
    assert bounds == {"idds_loop": 1_000, "again.idds_loop": 100}


def test_loops_nested_past_what_they_can_share_are_refused() -> None:
    node: dict[str, Any] = generic("true")
    for level in range(3):  # three looping workflows, each inside the next
        node = sub_workflow(
            "SubWorkflow", f"n{level}", {f"k{level}": node},
            _loop_condition=cond("is_finished", f"k{level}", []),
        )  # fmt: skip
    with pytest.raises(IddsError, match="loops inside loops this deep could not repeat"):
        translate_request(request({"top": node}))


def test_workflows_nest_to_a_bounded_depth() -> None:
    node: dict[str, Any] = generic("true")
    for level in range(10):
        node = sub_workflow("SubWorkflow", f"n{level}", {f"k{level}": node})
    with pytest.raises(IddsError, match="nest more than 8 deep"):
        translate_request(request({"top": node}))


def test_a_dependency_on_an_unknown_task_is_refused() -> None:
    with pytest.raises(IddsError, match="task 'nope' is not a work"):
        translate_request(request({"a": doma("s", [job("j", ("nope", "x"))])}))


def test_a_packed_value_that_inflates_too_far_is_refused(monkeypatch: Any) -> None:
    monkeypatch.setattr("orchid.core.idds._data.MAX_UNZIPPED", 100)
    big = [job(f"j{i}") for i in range(50)]
    with pytest.raises(IddsError, match="unpacks to more than"):
        translate_request(request({"a": doma("s", big)}))
    bad = obj("idds.doma.workflowv2.domapandawork", "DomaPanDAWork", task_name="s",
              executable="echo", _dependency_map="idds_zip:!!!")  # fmt: skip
    with pytest.raises(IddsError, match="does not unpack"):
        translate_request(request({"a": bad}))


def test_names_outside_orchid_patterns_are_made_to_fit_and_stay_unique() -> None:
    assert work_name("step1") == "step1"
    assert job_name("isr:+903342/10") != job_name("isr:+903342_10")
    assert "/" not in job_name("isr:+903342/10")
    assert len(job_name("x" * 400)) <= 200
    t = translate_request(
        request({"a": doma("my task/1", [job("a/b"), job("c", ("my task/1", "a/b"))])})
    )
    analyse(parse_template(t))
    (w,) = t["works"]
    assert w["jobs"][0]["args"] == {"input": "a/b"}  # the job still gets its iDDS name
    assert w["jobs"][1]["parents"] == [w["jobs"][0]["name"]]


def test_braces_in_commands_stay_literal() -> None:
    w = doma("s", [job("j")])
    w["attributes"]["arguments"] = "awk '{print $1}' ${IN/L}"
    (out,) = translate_request(request({"a": w}))["works"]
    assert out["command"] == ["echo", "awk", "{{print $1}}", "{input}"]


def test_a_generic_work_becomes_a_command_work() -> None:
    w = obj("idds.workflowv2.work", "Work", executable="echo", arguments="hi", parameters={"x": 1})
    (out,) = translate_request(request({"a": w}))["works"]
    assert out["command"] == ["echo", "hi"] and out["parameters"] == {"x": 1}


def cond(method: str, src: str, true: list[str], false: tuple[str, ...] = (), op: int = 0) -> Any:
    return obj(
        "idds.workflowv2.workflow",
        "Condition",
        _conditions=[{"idds_method": method, "idds_method_internal_id": src}],
        _true_works=true,
        _false_works=list(false),
        operator=obj("idds.workflowv2.workflow", "ConditionOperator", _value_=op, _name_="And"),
    )


def test_conditions_become_after_and_trigger() -> None:
    works = {
        "a": doma("first", [job("j")]),
        "b": doma("then", [job("k")]),
        "c": doma("else", [job("l")]),
    }
    t = translate_request(request(works, {"c1": cond("is_finished", "a", ["b"], ("c",))}))
    analyse(parse_template(t))
    by = {w["name"]: w for w in t["works"]}
    assert (by["then"]["after"], by["then"]["trigger"]) == (["first"], "all_success")
    assert (by["else"]["after"], by["else"]["trigger"]) == (["first"], "one_failed")
    assert by["first"]["on_failure"] == "continue"  # else its failure ends the workflow


def test_a_condition_orchid_cannot_say_is_refused() -> None:
    works = {"a": doma("first", [job("j")]), "b": doma("then", [job("k")])}
    with pytest.raises(IddsError, match="is_started is not supported"):
        translate_request(request(works, {"c1": cond("is_started", "a", ["b"])}))


def test_a_loop_condition_becomes_a_loop_over_every_work() -> None:
    w = obj("idds.workflowv2.work", "Work", executable="echo", arguments="again")
    body = request({"a": w})
    base = body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]
    base["_loop_condition"] = cond("is_finished", "a", [])
    t = translate_request(body)
    analyse(parse_template(t))
    (loop,) = t["loops"]
    assert loop["works"] == ["work_a"]
    assert loop["until"] == "not (works['work_a'].status == 'succeeded')"
    base["_loop_condition"] = cond("is_started", "a", [])
    with pytest.raises(IddsError, match="loop_condition: the condition is_started"):
        translate_request(body)
    base["_loop_condition_position"] = "begin"
    with pytest.raises(IddsError, match="checked at the end"):
        translate_request(body)


def test_parameter_links_are_refused_until_templates_can_say_them() -> None:
    body = three_steps()
    base = body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]
    base["parameter_links"] = {"l": 1}
    with pytest.raises(IddsError, match="parameter links"):
        translate_request(body)


def test_an_hpo_request_becomes_a_pull_mode_hpo_work() -> None:
    meta = {
        "workload_id": "20525135",
        "method": "nevergrad",
        "opt_space": {
            "A": {"type": "Choice", "params": {"choices": [1, 4]}},
            "B": {"type": "Scalar", "bounds": [0, 5]},
            "C": [1, 10],
        },
        "max_points": 20,
        "num_points_per_generation": 10,
    }
    body = {"request_type": enum("RequestType", "HyperParameterOpt", 4), "request_metadata": meta}
    t = translate_request(body)
    analyse(parse_template(t))
    (w,) = t["works"]
    assert w["hpo"]["mode"] == "pull" and w["hpo"]["max_trials"] == 20
    assert w["hpo"]["space"] == {
        "A": {"type": "categorical", "choices": [1, 4]},
        "B": {"type": "float", "low": 0, "high": 5},
        "C": {"type": "int", "low": 1, "high": 10},
    }
    with pytest.raises(IddsError, match="method 'magic'"):
        translate_request({**body, "request_metadata": {**meta, "method": "magic"}})


def test_a_stagein_request_becomes_a_work_fed_by_the_rucio_manager() -> None:
    body = {
        "request_type": 2,
        "scope": "data18",
        "name": "data18.RAW",
        "request_metadata": {"src_rse": "TAPE", "dest_rse": "DISK", "rule_id": "abc"},
    }
    t = translate_request(body, rucio_manager="cern-rucio")
    analyse(parse_template(t))
    (w,) = t["works"]
    assert w["input"] == {"manager": "cern-rucio", "collections": ["data18:data18.RAW"]}


def test_atlas_stagein_and_hpo_works_inside_a_workflow() -> None:
    coll = obj("idds.workflowv2.work", "Collection", scope="data18", name="ds")
    stagein = obj(
        "idds.atlas.workflowv2.atlasstageinwork",
        "ATLASStageinWork",
        _collections={"c1": coll},
        _primary_input_collection="c1",
        src_rse="TAPE",
    )
    hpo = obj(
        "idds.atlas.workflowv2.atlashpowork",
        "ATLASHPOWork",
        method="random",
        opt_space={"x": [0.0, 1.0]},
        max_points=4,
        num_points_per_iteration=2,
    )
    t = translate_request(request({"s": stagein, "h": hpo}), rucio_manager="atlas")
    analyse(parse_template(t))
    by = {w["name"]: w for w in t["works"]}
    assert by["stagein_s"]["input"] == {"manager": "atlas", "collections": ["data18:ds"]}
    assert by["hpo_h"]["hpo"]["parallel"] == 2 and by["hpo_h"]["hpo"]["strategy"] == "random"
    stagein["attributes"]["_primary_input_collection"] = "nope"
    with pytest.raises(IddsError, match="names its dataset as its primary input"):
        translate_request(request({"s": stagein}))


@pytest.mark.parametrize("kind", [1, 3, 6, enum("RequestType", "iWorkflow", 6), 42])
def test_other_request_types_are_refused_by_name(kind: Any) -> None:
    with pytest.raises(IddsError, match=r"request_type .* is not supported"):
        translate_request({"request_type": kind, "request_metadata": {}})


def test_build_requests_are_refused() -> None:
    with pytest.raises(IddsError, match="build requests"):
        translate_request({"request_type": 0, "request_metadata": {"build_workflow": {}}})


def test_conditions_over_several_works_only_where_a_trigger_says_exactly_that() -> None:
    works = {
        "a": doma("first", [job("j")]),
        "b": doma("second", [job("k")]),
        "c": doma("then", [job("l")]),
    }
    both = obj(
        "idds.workflowv2.workflow",
        "Condition",
        _conditions=[
            {"idds_method": "is_finished", "idds_method_internal_id": "a"},
            {"idds_method": "is_finished", "idds_method_internal_id": "b"},
        ],
        _true_works=["c"],
        _false_works=[],
        operator=obj("idds.workflowv2.workflow", "ConditionOperator", _value_=1, _name_="Or"),
    )
    t = translate_request(request(works, {"c1": both}))
    then = next(w for w in t["works"] if w["name"] == "then")
    assert (then["after"], then["trigger"]) == (["first", "second"], "one_success")
    both["attributes"]["_false_works"], both["attributes"]["_true_works"] = ["c"], []
    with pytest.raises(IddsError, match="false branch of is_finished over 2"):
        translate_request(request(works, {"c1": both}))


# --- whatever the shape, an IddsError or a template: never another exception ---------------


def _nested(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    )


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    _nested,
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_mutation_of_a_request_is_a_template_or_an_idds_error(data: st.DataObject) -> None:
    body = three_steps()
    works = body["request_metadata"]["workflow"]["attributes"]["template"]["attributes"]
    for work in works["_works"].values():  # unpacked, so that the jobs are mutated too
        packed_map = work["attributes"]["_dependency_map"]
        work["attributes"]["_dependency_map"] = json.loads(
            zlib.decompress(base64.b64decode(packed_map[len("idds_zip:") :]))
        )
    node: Any = body
    for _ in range(data.draw(st.integers(0, 16))):
        if isinstance(node, dict) and node:
            key = data.draw(st.sampled_from(sorted(node)))
        elif isinstance(node, list) and node:
            key = data.draw(st.integers(0, len(node) - 1))
        else:
            break
        if not isinstance(node[key], dict | list) or data.draw(st.booleans()):
            node[key] = data.draw(JSON)
            break
        node = node[key]
    try:
        t = translate_request(body)
    except IddsError:
        return
    with contextlib.suppress(InvalidInput):  # what the template checks refuse is refused
        analyse(parse_template(t))


def test_every_status_orchid_shows_is_an_idds_enum_member_it_knows() -> None:
    from orchid.core.idds import CONTENT_STATUS, ENUMS, REQUEST_STATUS, TRANSFORM_STATUS
    from orchid.core.states import JobStatus, WorkflowStatus, WorkStatus

    for cls, table, statuses in (
        ("RequestStatus", REQUEST_STATUS, WorkflowStatus),
        ("TransformStatus", TRANSFORM_STATUS, WorkStatus),
        ("ContentStatus", CONTENT_STATUS, JobStatus),
    ):
        assert set(table) == {str(s) for s in statuses}, cls  # every Orchid status shown
        assert set(table.values()) <= set(ENUMS[cls]), cls
