"""What expressions see in a chain, a parallel branch and a map iteration: the
interpreter's Scope, without a server (workflows/interpreter.py)."""

from __future__ import annotations

from workflows.interpreter import Scope


def test_a_branch_writes_outputs_where_its_parent_does_and_assigns_its_own_variables():
    top = Scope(outputs={"a": {"output": 1}}, variables={"n": 1})
    branch = top.branch(2)
    branch.outputs["b"] = {"output": 2}
    branch.variables["n"] = 5
    assert top.steps() == {"a": {"output": 1}, "b": {"output": 2}}
    assert top.variables == {"n": 1}
    assert (branch.branch_number, branch.prefix) == (2, "")


def test_an_iteration_sees_the_enclosing_outputs_and_keeps_its_own():
    top = Scope(outputs={"a": {"output": 1}})
    iteration = top.iteration("each", 3, {"x": 1})
    iteration.outputs["inner"] = {"output": "mine"}
    assert iteration.steps() == {"a": {"output": 1}, "inner": {"output": "mine"}}
    assert "inner" not in top.steps()
    assert (iteration.item, iteration.index, iteration.prefix) == ({"x": 1}, 3, "each[3].")


def test_nested_iterations_name_every_enclosing_map_in_their_prefix():
    inner = Scope().iteration("outer", 1, None).iteration("inner", 0, None)
    assert inner.prefix == "outer[1].inner[0]."


def test_an_inner_output_hides_an_enclosing_one_of_the_same_id():
    top = Scope(outputs={"s": {"output": "outer"}})
    iteration = top.iteration("m", 0, None)
    iteration.outputs["s"] = {"output": "inner"}
    assert iteration.steps()["s"] == {"output": "inner"}
