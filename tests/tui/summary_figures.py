"""Read every figure the Summary step shows back as a number and compare it with `run_summary.json`."""

from __future__ import annotations

import itertools
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
        if not (fit["weights_fit"] and fit["activations_fit"]):
            verdict = "✗ does NOT fit"
        else:
            verdict = ("✓ " if fit["verdict"] == "fits" else "⚠ ") + fit["verdict"]
        assert _line(block, "Board  ") == f"Board           {fit['board']} ({fit['mcu']}): {verdict}"
        flash, ram = _line(block, "Board flash     ")[16:], _line(block, "Board RAM       ")[16:]
        assert_room(
            flash,
            fit["weights_fit"],
            fit["flash_headroom_kib"],
            fit["flash_headroom_pct"],
            foot["weights_flash_kib"],
            fit["flash_kib"],
        )
        assert_room(
            ram,
            fit["activations_fit"],
            fit["ram_headroom_kib"],
            fit["ram_headroom_pct"],
            foot["activation_ram_kib"],
            fit["ram_kib"],
        )
    time = fit["estimated_inference_ms"] if fit else foot["estimated_inference_ms"]
    if time is not None:
        line = _line(block, "Inference time")
        assert _close(_figures(line)[0], time, 2)
        if fit:
            assert f"on {fit['board']} ({fit['core']}, {fit['mhz']} MHz)" in line
    if expected["quantized_model"]:
        lines = block.splitlines()  # the path may go on over indented lines, broken after a "/"
        start = lines.index(_line(block, "Model"))
        rest = [
            line.strip() for line in itertools.takewhile(lambda line: line.startswith(" " * 16), lines[start + 1 :])
        ]
        assert "".join([lines[start].split(maxsplit=1)[1], *rest]) == expected["quantized_model"]
    warnings = [f"⚠ {warning['stage']}: {warning['message']}" for warning in expected["warnings"]]
    shown = [line for line in block.splitlines() if line.startswith("⚠")]
    if len(warnings) <= 2:
        assert shown == warnings
    else:  # collapsed to their count (`w` shows them all)
        assert shown == [f"⚠ {len(warnings)} warnings · w shows all {len(warnings)}"]


def assert_room(
    shown: str, fits: bool, headroom_kib: float, headroom_pct: float, needed_kib: float, capacity_kib: int
) -> None:
    """One memory on the board: "N KiB free of C (P%)", or "✗ needs N KiB, the board has C"."""
    numbers = _figures(shown)
    if fits:
        assert shown.endswith("%)") and " KiB free of " in shown, shown
        assert _close(numbers[0], headroom_kib, 1) and numbers[1] == capacity_kib, shown
        assert _close(numbers[2], headroom_pct, 1), shown
    else:
        assert shown.startswith("✗ needs ") and ", the board has " in shown, shown
        assert _close(numbers[0], needed_kib, 1) and numbers[1] == capacity_kib, shown


def assert_per_class(app, accuracy: dict | None) -> None:
    """The per-class table: one row per class, each model's accuracy and the change, largest drop first."""
    per_class = (accuracy or {}).get("per_class") or {}
    rows = _rows(app, "#summary-classes")
    models = [model for model in ("float", "quantized") if per_class.get(model)]
    names = {name for model in models for name in per_class[model]}
    assert {row[0] for row in rows} == names and len(rows) == len(names)
    for row in rows:
        figures = [_number(cell) for cell in row[1 : 1 + len(models)]]
        assert all(_close(shown, per_class[model][row[0]], 1) for shown, model in zip(figures, models)), row
        if len(models) == 2:
            change = _number(row[3].lstrip("▲▼= "))
            before, after = per_class["float"][row[0]], per_class["quantized"][row[0]]
            assert _close(change, None if before is None or after is None else after - before, 1), row
            assert row[3].startswith("▼" if change and change < 0 else "▲" if change and change > 0 else "="), row
    if len(models) == 2:
        changes = [_number(row[3].lstrip("▲▼= ")) for row in rows]
        known = [change for change in changes if change is not None]
        assert known == sorted(known), changes


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

    assert_per_class(app, expected["accuracy"])
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
