"""Dotted key paths in a nested config mapping: the one getter/setter the engine, the wizard and the tests use."""

from engine.config.keys import delete_key, get_key, set_key


def test_get_key_walks_sections_and_falls_back_to_the_default():
    data = {"quantization": {"granularity": "per_tensor", "optimize": None}, "dataset": "not a section"}
    assert get_key(data, "quantization.granularity") == "per_tensor"
    assert get_key(data, "quantization.optimize", "unset") is None  # an explicit None is a value
    assert get_key(data, "quantization.missing", "unset") == "unset"
    assert get_key(data, "dataset.name", "unset") == "unset"  # a scalar on the way is no section
    assert get_key(data, "quantization") == {"granularity": "per_tensor", "optimize": None}


def test_set_key_creates_or_replaces_the_sections_on_the_way():
    data = {"dataset": "not a section", "general": {"project_name": "p"}}
    set_key(data, "quantization.granularity", "per_channel")
    set_key(data, "dataset.name", "flowers")
    set_key(data, "general.model_path", "m.h5")
    set_key(data, "operation_mode", "quantization")
    assert data == {
        "dataset": {"name": "flowers"},
        "general": {"project_name": "p", "model_path": "m.h5"},
        "quantization": {"granularity": "per_channel"},
        "operation_mode": "quantization",
    }


def test_delete_key_removes_only_the_key():
    data = {"quantization": {"granularity": "per_tensor"}, "operation_mode": "quantization", "dataset": 3}
    delete_key(data, "quantization.granularity")
    delete_key(data, "operation_mode")
    delete_key(data, "dataset.name")  # not a section: nothing to remove
    delete_key(data, "missing.key")
    assert data == {"quantization": {}, "dataset": 3}
