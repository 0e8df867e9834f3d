"""Read every figure the Summary step shows back as a number and compare it with `run_summary.json`."""

from __future__ import annotations

import re

from textual.widgets import DataTable, Static

NUMBER = r"[-+]?\d[\d,]*(?:\.\d+)?"


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
    return shown is not None and abs(shown - expected) <= 0.5 * 10**-digits + 1e-9


def _line(block: str, label: str) -> str:
    found = [line for line in block.splitlines() if line.startswith(label)]
    assert len(found) == 1, (label, block)
    return found[0]


def _figures(line: str) -> list[float]:
    return [float(n.replace(",", "")) for n in re.findall(NUMBER, line)]


def assert_key_figures(app, expected: dict) -> None:
    """The block shown first: each figure equals the summary's, to the digits shown."""
    block = str(app.query_one("#summary-status", Static).render())
    status = {"ok": "✓ ok", "failed": "✗ failed"}[expected["status"]]
    assert block.splitlines()[0].startswith(f"{status} · {expected['operation_mode']} · ")
    assert _close(_figures(block.splitlines()[0])[-1], sum(expected["timings"].values()), 1)
    acc, foot = expected["accuracy"], expected["footprint"]
    if acc:
        before, after, points, images = _figures(_line(block, "Accuracy"))
        assert _close(before, acc["float"], 1) and _close(after, acc["quantized"], 1)
        assert _close(points, acc["difference"], 1) and images == acc["images"]
        assert _close(_figures(_line(block, "Agreement"))[0], acc["agreement"], 1)
    for label, before, after in (
        ("Weights flash", "float_weights_kib", "weights_flash_kib"),
        ("Activation RAM", "float_activation_ram_kib", "activation_ram_kib"),
    ):
        shown_before, shown_after, ratio, *upper = _figures(_line(block, label))
        assert _close(shown_before, foot[before], 2) and _close(shown_after, foot[after], 2), label
        assert _close(ratio, foot[before] / foot[after], 1), label
        if label == "Activation RAM":
            assert len(upper) == 1 and _close(upper[0], foot["activation_ram_upper_kib"], 2)
    fit = foot["board_fit"]
    if fit:
        assert fit["verdict"] in ("fits", "fits only with in-place overlap (tight)", "does not fit")
        assert _line(block, "Board") == f"Board           {fit['board']}: {fit['verdict']}"
        numbers = _figures(_line(block, "Headroom"))
        assert _close(numbers[0], fit["flash_headroom_kib"], 1) and _close(numbers[1], fit["flash_headroom_pct"], 1)
        assert _close(numbers[2], fit["ram_headroom_kib"], 1) and _close(numbers[3], fit["ram_headroom_pct"], 1)
    time = fit["estimated_inference_ms"] if fit else foot["estimated_inference_ms"]
    if time is not None:
        line = _line(block, "Inference time")
        assert _close(_figures(line)[0], time, 2)
        if fit:
            assert f"on {fit['board']} ({fit['core']}, {fit['mhz']} MHz)" in line
    if expected["quantized_model"]:
        assert _line(block, "Model").split(maxsplit=1)[1] == expected["quantized_model"]
    for warning in expected["warnings"]:
        assert f"⚠ {warning['stage']}: {warning['message']}" in block


def assert_summary_shows(app, expected: dict) -> None:
    """`expected`: the run's `run_summary.json` as loaded JSON (not the wizard's own parse of it)."""
    assert_key_figures(app, expected)
    details = str(app.query_one("#summary-details", Static).render())
    calibration = expected["calibration"]
    match = re.search(r"Calibration: (\d+) images used, (\d+) skipped \((.*)\)", details)
    assert match and match.groups() == (str(calibration["images"]), str(calibration["skipped"]), calibration["source"])
    timings = dict(re.findall(r"(\w+) ([\d.]+)s", details.split("Timings: ")[1].splitlines()[0]))
    assert timings.keys() == expected["timings"].keys()
    assert all(_close(float(timings[k]), v, 1) for k, v in expected["timings"].items()), timings

    foot = expected["footprint"]
    layers = _rows(app, "#summary-layers")
    assert len(layers) == len(foot["layers"])
    for shown, layer in zip(layers, foot["layers"]):
        name = shown[0]
        assert name == layer["name"] or (name.startswith("…") and layer["name"].endswith(name[1:]))
        assert shown[1] == layer["op"][:14]
        assert [_number(cell) for cell in shown[2:5]] == [
            layer["macc"],
            layer["weight_bytes"],
            layer["live_activation_bytes"],
        ], (shown, layer)
        assert _close(_number(shown[5]), layer["time_share_pct"], 1)

    errors = _rows(app, "#summary-errors")
    assert len(errors) == len(expected["layer_errors"])
    for shown, row in zip(errors, expected["layer_errors"]):
        assert row["layer"].endswith(shown[0].lstrip("…")) and shown[1] == row["op"]
        assert _close(_number(shown[2]), row["sqnr_db"], 1)
