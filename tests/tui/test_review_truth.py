"""Review's verdict is `stquant validate`'s: same exit code, same problems, ✓ only when validate passes."""

from __future__ import annotations

import pytest
from textual.widgets import OptionList, Static
from tui_helpers import DEMO_CONFIG, ROOT, settle, wait_until

from engine.cli import main
from stquant_tui.app import StquantApp
from stquant_tui.draft import step_of
from stquant_tui.engine_client import default_engine_cmd
from stquant_tui.widgets.fields import FieldRow

DEMO = DEMO_CONFIG.parent / "demo"
BROKEN = {  # name -> (text to replace, replacement) in the demo config
    "valid": ("", ""),
    "class_without_folder": ("digit_9]", "digit_99]"),
    "missing_model": ("demo/digits_cnn.h5", "demo/no_such_model.h5"),
    "not_a_model": ("demo/digits_cnn.h5", "demo/digits/digit_0/notes.txt"),
    "mode_not_run": ("operation_mode: quantization", "operation_mode: chain_tbqeb"),
    "schema_errors": ("quantization_split: 0.4", "quantization_split: 4\n  seed: twelve"),
    "colour_mode": ("color_mode: rgb", "color_mode: grayscale"),
}


def validate(path, capsys, monkeypatch) -> tuple[int, list[str]]:
    """`stquant validate PATH` from the repository folder, in this process (the app runs it as a child)."""
    for name in ("TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY", "ABSL_MIN_LOG_LEVEL"):  # main sets them: restored after
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(ROOT)
    capsys.readouterr()
    code = main(["validate", str(path)])
    return code, [line for line in capsys.readouterr().err.splitlines() if line.strip()]


def focused_key(app) -> str | None:
    """The config key of the field row holding the focus, if any."""
    focused = app.focused
    rows = [w for w in focused.ancestors_with_self if isinstance(w, FieldRow)] if focused else []
    return rows[0].key if rows else None


@pytest.mark.parametrize("case", BROKEN, ids=str)
async def test_review_says_what_validate_says(case, tmp_path, monkeypatch, capsys):
    old, new = BROKEN[case]
    text = DEMO_CONFIG.read_text().replace("demo/", f"{DEMO}/")
    if old:
        assert old.replace("demo/", f"{DEMO}/") in text
        text = text.replace(old.replace("demo/", f"{DEMO}/"), new.replace("demo/", f"{DEMO}/"))
    config = tmp_path / "config.yaml"
    config.write_text(text)
    code, lines = validate(config, capsys, monkeypatch)
    assert (code == 0) == (case == "valid"), lines
    app = StquantApp(config, engine_cmd=default_engine_cmd())
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        app.step = "review"
        await wait_until(pilot, lambda: app.verdict is not None, timeout=60)
        verdict = app.verdict
        assert verdict.exit_code == code
        assert [f"stquant: {p}" for p in verdict.problems] == [line for line in lines if ": warning: " not in line]
        assert [f"stquant: warning: {w}" for w in verdict.warnings] == [line for line in lines if ": warning: " in line]
        status = str(app.query_one("#review-status", Static).render())
        assert status.startswith("✓") == (code == 0), status
        listing = app.query_one("#review-problems", OptionList)
        assert listing.option_count == len(verdict.problems)
        if verdict.problems:  # Enter on a problem goes to its field (on a form step)
            listing.focus()
            listing.highlighted = 0
            await pilot.press("enter")
            key = verdict.problems[0].key
            # the step is shown, then its field focused after a refresh: wait for the focus to reach it
            await wait_until(pilot, lambda: app.step == step_of(key) and focused_key(app) == key)
            row = next(w for w in app.focused.ancestors_with_self if isinstance(w, FieldRow))
            assert row.has_class("-invalid")
