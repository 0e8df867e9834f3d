"""Read every figure the Summary step shows back as a number and compare it with `run_summary.json`."""

from __future__ import annotations

import re

from textual.widgets import DataTable, Static


def _number(cell: str) -> float | None:
    """'1,234' -> 1234.0, '96.3%' -> 96.3, '+0.7 pt' -> 0.7, '–' -> None."""
    text = str(cell).replace(",", "").replace("%", "").replace("pt", "").strip()
    return None if text in ("–", "") else float(text)


def _rows(app, table_id: str) -> list[list[str]]:
    table = app.query_one(table_id, DataTable)
    return [[str(cell) for cell in table.get_row_at(row)] for row in range(table.row_count)]


def _close(shown: float | None, expected: float | None, digits: int) -> bool:
    if expected is None:
        return shown is None
    return shown is not None and abs(shown - expected) <= 0.5 * 10 ** -digits + 1e-9


def assert_summary_shows(app, expected: dict) -> None:
    """`expected`: the run's `run_summary.json` as loaded JSON (not the wizard's own parse of it)."""
    status = str(app.query_one("#summary-status", Static).render())
    assert f"Status: {expected['status']}" in status and f"mode {expected['operation_mode']}" in status
    assert f"Quantized model: {expected['quantized_model']}" in status
    calibration = expected["calibration"]
    match = re.search(r"Calibration: (\d+) images used, (\d+) skipped \((.*)\)", status)
    assert match and match.groups() == (str(calibration["images"]), str(calibration["skipped"]), calibration["source"])
    timings = dict(re.findall(r"(\w+) ([\d.]+)s", status.split("Timings: ")[1].splitlines()[0]))
    assert timings.keys() == expected["timings"].keys()
    assert all(_close(float(timings[k]), v, 1) for k, v in expected["timings"].items()), timings
    fit = expected["footprint"]["board_fit"]
    if fit:
        assert "Board fit: " + ", ".join(f"{key}: {value}" for key, value in fit.items()) in status
    for warning in expected["warnings"]:
        assert f"Warning ({warning['stage']}): {warning['message']}" in status

    compare = {row[0]: row[1:] for row in _rows(app, "#summary-compare")}
    foot, acc = expected["footprint"], expected["accuracy"]
    for label, before, after in (("Weights flash (KiB)", "float_weights_kib", "weights_flash_kib"),
                                 ("Activation RAM (KiB)", "float_activation_ram_kib", "activation_ram_kib")):
        assert _close(_number(compare[label][0]), foot[before], 1), (label, compare[label], foot[before])
        assert _close(_number(compare[label][1]), foot[after], 1), (label, compare[label], foot[after])
        assert _close(_number(compare[label][2]), (foot[after] - foot[before]) / foot[before] * 100, 0)
    assert _number(compare["MACC"][1]) == foot["macc"] and _number(compare["Parameters"][1]) == foot["params"]
    if acc:
        assert _close(_number(compare["Accuracy"][0]), acc["float"], 1), (compare["Accuracy"], acc)
        assert _close(_number(compare["Accuracy"][1]), acc["quantized"], 1), (compare["Accuracy"], acc)
        assert compare["Accuracy"][2].endswith(" pt")
        assert _close(_number(compare["Accuracy"][2]), acc["difference"], 1), (compare["Accuracy"], acc)
        assert _close(_number(compare["Agreement"][1]), acc["agreement"], 1), (compare["Agreement"], acc)

    layers = _rows(app, "#summary-layers")
    assert len(layers) == len(foot["layers"])
    for shown, layer in zip(layers, foot["layers"]):
        assert shown[:3] == [layer["op"], layer["name"], "x".join(map(str, layer["output_shape"]))]
        assert [_number(cell) for cell in shown[3:]] == [layer["macc"], layer["weight_bytes"],
                                                         layer["live_activation_bytes"]], (shown, layer)

    errors = _rows(app, "#summary-errors")
    assert len(errors) == len(expected["layer_errors"])
    for shown, row in zip(errors, expected["layer_errors"]):
        assert shown[:2] == [row["layer"], row["op"]] and _close(_number(shown[2]), row["sqnr_db"], 1)
