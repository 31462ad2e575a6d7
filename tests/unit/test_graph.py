from definitions.graph import step_order, validate_graph
from definitions.models import StepSpec


def steps(*triples: tuple[str, str | None]) -> list[StepSpec]:
    return [StepSpec(id=i, service="svc", action="act", next=n) for i, n in triples]


def messages(problems: list[dict]) -> str:
    return " | ".join(p["msg"] for p in problems)


def test_valid_chain_has_no_problems_and_runs_in_order():
    chain = steps(("b", "c"), ("a", "b"), ("c", None))
    assert validate_graph(chain) == []
    assert step_order(chain) == ["a", "b", "c"]


def test_duplicate_step_ids_are_reported_with_their_positions():
    problems = validate_graph(steps(("a", "b"), ("b", None), ("a", None)))
    assert problems[0]["loc"] == ["steps", 2, "id"]
    assert "used twice" in problems[0]["msg"]


def test_next_naming_no_step_is_reported():
    problems = validate_graph(steps(("a", "missing")))
    assert problems[0]["loc"] == ["steps", 0, "next"]
    assert "'missing'" in problems[0]["msg"]


def test_two_entry_steps_are_refused():
    assert "exactly one entry step" in messages(validate_graph(steps(("a", None), ("b", None))))


def test_a_cycle_without_entry_is_refused():
    assert "exactly one entry step" in messages(validate_graph(steps(("a", "b"), ("b", "a"))))


def test_a_cycle_beside_the_chain_is_refused():
    problems = validate_graph(steps(("a", None), ("b", "c"), ("c", "b")))
    assert "exactly one entry" in messages(problems) or "cannot be reached" in messages(problems)


def test_a_step_that_follows_two_steps_is_refused():
    assert "next of several steps" in messages(
        validate_graph(steps(("a", "c"), ("b", "c"), ("c", None)))
    )


def test_empty_steps_are_refused():
    assert "at least one step" in messages(validate_graph([]))
