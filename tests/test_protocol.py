"""The JSON-lines protocol: every event the engine writes is one of `engine.run.protocol`'s models, exactly;
`stquant schema events` prints their union's schema; older recordings still parse."""

import json

import pytest
from pydantic import ValidationError

from engine.run.protocol import EVENTS, ComparisonEvent, ErrorEvent, ResultEvent, events_schema, parse_event, wire
from tests.conftest import DEMO, ROOT
from tests.test_cli_errors import demo_config, run_cli, write

KINDS = {
    "stage",
    "progress",
    "log",
    "result",
    "error",
    "variant",
    "comparison",
    "recovery_step",
    "recovery",
    "sweep_progress",
    "sweep_cell",
    "sweep",
}


def events_of(out: str) -> list:
    """Every JSON line of `out` as its event, checked to be exactly its model's line (no field added or lost)."""
    events = []
    for line in out.splitlines():
        if line.startswith("{"):
            event = parse_event(line)
            assert wire(event) == line, line
            events.append(event)
    return events


def test_schema_command_prints_the_union_of_every_event(capsys):
    code, out, _ = run_cli(capsys, "schema", "events")
    schema = json.loads(out)
    assert code == 0 and schema == events_schema() == EVENTS.json_schema(mode="serialization")
    assert schema["discriminator"]["propertyName"] == "event" and set(schema["discriminator"]["mapping"]) == KINDS
    for name in schema["discriminator"]["mapping"].values():
        definition = schema["$defs"][name.rsplit("/", 1)[1]]
        assert "event" in definition["required"] and definition["additionalProperties"] is False
    assert schema["$defs"]["ResultEvent"]["properties"]["summary"] == {"$ref": "#/$defs/RunSummary"}
    assert schema["$defs"]["ComparisonEvent"]["properties"]["comparison"] == {"$ref": "#/$defs/Comparison"}


def test_every_event_of_a_real_run_is_a_protocol_event(tmp_path, capsys):
    config = write(
        tmp_path, demo_config(tmp_path, operation_mode="chain_eqeb", dataset__test_path=str(DEMO / "digits"))
    )
    code, out, err = run_cli(
        capsys, "run", config, "--progress", "jsonl", "--output-dir", str(tmp_path / "run"), "benchmarking.board=NOPE"
    )  # an unknown board: a warning log event
    assert code == 0, err
    events = events_of(out)
    assert {event.event for event in events} == {"stage", "progress", "log", "result"}
    assert any(event.event == "log" and event.level == "WARNING" and "NOPE" in event.message for event in events)
    result = events[-1]
    assert isinstance(result, ResultEvent) and result.summary.status == "ok"
    assert result.summary.model_dump(mode="json") == json.loads((tmp_path / "run" / "run_summary.json").read_text())
    assert out.splitlines()[-1] == result.summary.run_dir


def test_every_event_of_a_real_compare_is_a_protocol_event(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path))
    code, out, err = run_cli(
        capsys, "compare", config, "--vary", "quantization.quantization_input_type=uint8,int8", "--progress", "jsonl"
    )
    assert code == 0, err
    events = events_of(out)
    assert {event.event for event in events} == {"stage", "progress", "log", "variant", "comparison"}
    assert [event.variant.index for event in events if event.event == "variant"] == [0, 1]
    assert isinstance(events[-1], ComparisonEvent) and events[-1].comparison.status == "ok"


def test_a_refused_config_ends_with_the_error_event(tmp_path, capsys):
    config = write(tmp_path, demo_config(tmp_path, quantization__granularity="per_layer"))
    code, out, err = run_cli(capsys, "run", config, "--progress", "jsonl")
    assert code == 2
    (event,) = events_of(out)
    assert isinstance(event, ErrorEvent) and event.exit_code == 2 and "quantization.granularity" in event.message
    assert err.strip() == f"stquant: {event.message}"


@pytest.mark.parametrize("recording", ["tests/tui/recorded_compare.jsonl"])
def test_recordings_of_earlier_engines_still_parse(recording):
    lines = [line for line in (ROOT / recording).read_text().splitlines() if line.startswith("{")]
    kinds = [parse_event(line).event for line in lines]
    assert {"stage", "log", "variant", "comparison"} <= set(kinds) and kinds[-1] == "comparison"


def test_an_unknown_or_incomplete_event_is_refused():
    for line in (
        '{"event": "stage"}',
        '{"event": "stages", "name": "x"}',
        '{"event": "progress", "stage": "c", "done": "many", "total": 3}',
        '{"event": "stage", "name": "x", "extra": 1}',
        '{"event": "sta',
    ):
        with pytest.raises(ValidationError):
            parse_event(line)
