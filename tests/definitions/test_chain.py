from definitions.chain import step_input


def test_declared_properties_take_the_latest_value():
    data = {"document_url": "u", "text": "from step 2", "extra": 1}
    schema = {"type": "object", "properties": {"text": {}, "language": {}}}
    assert step_input(schema, data) == {"text": "from step 2"}


def test_schema_without_properties_gets_all_accumulated_data():
    data = {"a": 1, "b": 2}
    assert step_input({"type": "object"}, data) == data
    assert step_input({"type": "object"}, data) is not data
